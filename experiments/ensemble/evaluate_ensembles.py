"""Evaluate every member checkpoint and the ensembles of the first k members (k = 1..K) on a test split, and
time generation from one member against the K-member ensemble. Prints Markdown tables.

    python experiments/ensemble/evaluate_ensembles.py 'logs/jsb_lstm/multirun/lstm*/*/checkpoints/best.ckpt' experiment=jsb_lstm
    python experiments/ensemble/evaluate_ensembles.py 'logs/note/multirun/x/*/checkpoints/best.ckpt' model=note_lstm

The first argument is a checkpoint glob (or several paths, comma-separated); the rest are `musicrnn-train`
overrides that select the data (its test split is what is scored).
"""

from __future__ import annotations

import statistics
import sys
import time

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir

from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.generation.sampling import generate_steps
from musicrnn.training.callbacks import Metrics
from musicrnn.training.checkpoint import expand_checkpoints, load_module
from musicrnn.training.ensemble import ensemble_from_modules

PIANOROLL_COLUMNS = ["frame_nll", "frame_accuracy"]
NOTE_COLUMNS = ["pitch_perplexity", "pitch_acc_top1", "pitch_acc_top5", "step_mse", "duration_mse"]


def test_metrics(module, datamodule, callback) -> dict[str, float]:
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.test(module, datamodule=datamodule, verbose=False)
    return {k[len("test/") :]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def time_generation(module, steps: int, repeats: int = 3) -> float:
    """Best of `repeats` wall times to generate `steps` frames / notes (one sample) from the stored primer."""
    primer = module.primers[0]
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        generate_steps(module.net, module.head, module.representation.as_primer(primer), steps, seed=0)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    pattern, overrides = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(2)
    paths = expand_checkpoints(pattern.split(",") if "," in pattern else pattern)
    members = [load_module(p) for p in paths]
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir=."])
    datamodule = hydra.utils.instantiate(cfg.data)
    pianoroll = members[0].representation.name == "pianoroll"
    columns = PIANOROLL_COLUMNS if pianoroll else NOTE_COLUMNS
    make_callback = Metrics

    rows = []
    for path, member in zip(paths, members):
        rows.append((f"member `{path}`", test_metrics(member, datamodule, make_callback())))
    mean = {c: statistics.mean(r[c] for _, r in rows) for c in columns}
    rows.append(("mean member", mean))
    for k in range(1, len(members) + 1):
        rows.append(
            (
                f"ensemble of the first {k}",
                test_metrics(ensemble_from_modules(members[:k]), datamodule, make_callback()),
            )
        )
    print("| model | " + " | ".join(f"test {c}" for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, values in rows:
        print(f"| {name} | " + " | ".join(f"{values[c]:.4f}" for c in columns) + " |")

    steps = 256
    one = time_generation(members[0], steps)
    fused = time_generation(ensemble_from_modules(members), steps)
    one_by_one = sum(time_generation(m, steps) for m in members)
    unit = "frames" if pianoroll else "notes"
    print(f"\ngeneration of {steps} {unit}, one sample, 2 threads (best of 3):")
    print(f"| K = 1 (one member) | {one:.3f} s |")
    print(f"| K = {len(members)} fused ensemble | {fused:.3f} s ({fused / one:.2f} x one member) |")
    print(f"| K = {len(members)} members one after another | {one_by_one:.3f} s ({one_by_one / one:.2f} x) |")


if __name__ == "__main__":
    main()
