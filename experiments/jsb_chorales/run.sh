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

# RNN-NADE (conf/experiment/jsb_nade.yaml): seeds 1-3 (mean ± sd), two more seeds, then the five as an ensemble.
/usr/bin/time -f "wall %e s" musicrnn-train -m experiment=jsb_nade seed=1,2,3 trainer.enable_progress_bar=false \
    hydra.sweep.dir=logs/jsb_nade/multirun/nade 2>&1 | tee logs/jsb_nade_seeds.log | grep -E "finished|frame_|wall"
/usr/bin/time -f "wall %e s" musicrnn-train -m experiment=jsb_nade seed=4,5 trainer.enable_progress_bar=false \
    hydra.sweep.dir=logs/jsb_nade/multirun/nade_more 2>&1 | tee logs/jsb_nade_more.log | grep -E "finished|frame_|wall"
python experiments/summarize_multirun.py logs/jsb_nade/multirun/nade
musicrnn-train experiment=jsb_nade train=false trainer.enable_progress_bar=false \
    "ckpt_path=[logs/jsb_nade/multirun/nade/*/checkpoints/best.ckpt,logs/jsb_nade/multirun/nade_more/*/checkpoints/best.ckpt]" \
    2>&1 | tee logs/jsb_nade_ensemble.log | grep -E "frame_"
# 32 samples of 64 frames from the independent-keys model and from RNN-NADE (seed 1 each), measured beside the
# held-out chorales: musical statistics, voicing, figures.
musicrnn-evaluate experiment=jsb_lstm ckpt_path=logs/jsb_lstm/multirun/lstm/0/checkpoints/best.ckpt \
    num_samples=32 num_frames=64 output_dir=eval/jsb_lstm
musicrnn-evaluate experiment=jsb_nade ckpt_path=logs/jsb_nade/multirun/nade/0/checkpoints/best.ckpt \
    num_samples=32 num_frames=64 output_dir=eval/jsb_nade
