#!/usr/bin/env bash
# The runs behind experiments/jsb_chorales/README.md, one after another (2 CPU cores).
# Usage: MUSICRNN_JSB_CHORALES="/path/to/JSB Chorales.pickle" bash experiments/jsb_chorales/run.sh
set -euo pipefail
: "${MUSICRNN_JSB_CHORALES:?set it to the JSB Chorales pickle}"
mkdir -p logs
# The recipe (conf/experiment/jsb_lstm.yaml), three seeds.
/usr/bin/time -f "wall %e s" musicrnn-train -m experiment=jsb_lstm seed=1,2,3 trainer.enable_progress_bar=false \
    hydra.sweep.dir=logs/jsb_lstm/multirun/lstm 2>&1 | tee logs/jsb_lstm_seeds.log | grep -E "finished|frame_|wall"
# The same recipe with a GRU cell.
/usr/bin/time -f "wall %e s" musicrnn-train -m experiment=jsb_lstm model.cell=gru seed=1,2,3 trainer.enable_progress_bar=false \
    hydra.sweep.dir=logs/jsb_lstm/multirun/gru 2>&1 | tee logs/jsb_gru_seeds.log | grep -E "finished|frame_|wall"
python experiments/summarize_multirun.py logs/jsb_lstm/multirun/lstm logs/jsb_lstm/multirun/gru
