"""Mean ± std of test metrics over the jobs of `musicrnn-train -m` runs, grouped by their overrides without
the seed. Reads each job's TensorBoard events and `.hydra/overrides.yaml`; prints a Markdown table.

    python experiments/summarize_multirun.py logs/jsb_lstm/multirun/<date> [more dirs] --metrics test/frame_nll test/frame_accuracy
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def job_metrics(job: Path, names: list[str]) -> dict[str, float]:
    values = {}
    for events_dir in sorted(job.glob("tensorboard*")):
        events = EventAccumulator(str(events_dir))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        values.update({name: events.Scalars(name)[-1].value for name in names if name in tags})
        if "val/loss" in tags:
            values["epochs"] = float(len(events.Scalars("val/loss")))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path, help="multirun folders (each holds job folders 0/, 1/, ...)")
    parser.add_argument("--metrics", nargs="+", default=["test/frame_nll", "test/frame_accuracy"])
    args = parser.parse_args()

    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for sweep in args.sweeps:
        for overrides_file in sorted(sweep.glob("*/.hydra/overrides.yaml")):
            job = overrides_file.parent.parent
            overrides = [o for o in yaml.safe_load(overrides_file.read_text()) if not o.startswith("seed=")]
            metrics = job_metrics(job, args.metrics)
            if all(name in metrics for name in args.metrics):
                groups[" ".join(overrides)].append(metrics)
    columns = [*args.metrics, "epochs"]
    print("| overrides | seeds | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for overrides, runs in groups.items():
        cells = []
        for name in columns:
            xs = [run[name] for run in runs if name in run]
            spread = f" ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else ""
            cells.append(
                f"{statistics.mean(xs):.3f}{spread}" if name != "epochs" else " / ".join(f"{x:.0f}" for x in xs)
            )
        print(f"| `{overrides}` | {len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
