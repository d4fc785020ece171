#!/usr/bin/env bash
# The runs behind experiments/note_model/README.md, one after another (2 CPU cores).
# Usage: MUSICRNN_POP909=/path/to/POP909 bash experiments/note_model/run.sh [run name ...]
set -uo pipefail
COMMON="trainer.enable_progress_bar=false seed=1234"
run() {  # run NAME ARGS...: logs to logs/note_model/NAME.log
    local name=$1; shift
    if [ -n "${SELECTED:-}" ] && [[ " $SELECTED " != *" $name "* ]]; then return; fi
    mkdir -p logs/note_model
    echo "== $name: musicrnn-train $* $COMMON task_name=note_model_$name"
    /usr/bin/time -f "wall %e s, peak %M KiB" musicrnn-train "$@" $COMMON task_name="note_model_$name" \
        > "logs/note_model/$name.log" 2>&1
    grep -A 20 "musicrnn-train finished" "logs/note_model/$name.log"; tail -1 "logs/note_model/$name.log"
}
SELECTED="$*"
# POP909: 909 pop-piano arrangements, all tracks merged, step/duration in seconds.
run pop909_note_lstm   data=pop909 model=note_lstm trainer.max_epochs=1000 trainer.max_time=00:00:25:00
run pop909_seed_paper  data=pop909 model=seed_paper trainer.max_epochs=1000 trainer.max_time=00:00:08:00
run pop909_tf_tutorial data=pop909 model=tf_tutorial trainer.max_epochs=1000 trainer.max_time=00:00:08:00 \
    trainer.val_check_interval=1000 trainer.limit_val_batches=200
# The built-in Bach chorales (the default corpus).
run bach_note_lstm     model=note_lstm
run bach_seed_paper    model=seed_paper
run bach_tf_tutorial   model=tf_tutorial trainer.max_epochs=1000 trainer.max_time=00:00:05:00 \
    trainer.val_check_interval=500 trainer.limit_val_batches=100
