#!/usr/bin/env bash
# The runs behind experiments/generation/README.md, one after another (2 CPU cores; never two at once).
# Usage: MUSICRNN_POP909=/path/to/POP909 bash experiments/generation/run.sh
set -euo pipefail
COMMON="trainer.enable_progress_bar=false"
mkdir -p logs/generation
# 1. The models: the default note_lstm (with velocity) on the default corpus and on POP909 (8 epochs), and
#    the default without velocity (what velocity costs or buys on the chorales).
musicrnn-train $COMMON task_name=generation_bach > logs/generation/bach.log 2>&1
musicrnn-train data=pop909 trainer.max_epochs=8 $COMMON task_name=generation_pop909 > logs/generation/pop909.log 2>&1
musicrnn-train model.velocity=false $COMMON task_name=generation_bach_novelocity > logs/generation/bach_novelocity.log 2>&1
# 2. The sweep: 12 settings x 32 samples of 256 notes, on the validation split (where the recommendation is
#    chosen) and the test split, beside the split's real pieces.
for corpus in bach pop909; do
    run=$(ls -d logs/generation_$corpus/runs/* | tail -1)
    python -m experiments.generation.sweep "$run" --out experiments/generation/results_$corpus.json \
        --figure experiments/generation/figures/velocity_$corpus.png > logs/generation/sweep_$corpus.log 2>&1
done
