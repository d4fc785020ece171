"""`musicrnn-sweep-report MULTIRUN_DIR`: one row per job of a sweep (`musicrnn-train -m ...` or an Optuna
search) — the overrides that differ between jobs, the objective, the final test metrics, the epochs and
seconds it took and its best checkpoint — sorted by the objective, best first. Writes
`sweep_report.csv` and `sweep_report.md` into the folder and prints the markdown table.

    musicrnn-sweep-report logs/train/multirun/2026-11-25_14-00-00
    musicrnn-sweep-report logs/jsb_lstm/multirun/x --metrics test/frame_nll test/frame_accuracy
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Shown by default, when the jobs have them: the headline test metrics of either kind of model.
DEFAULT_METRICS = (
    "test/pitch_perplexity",
    "test/pitch_acc_top1",
    "test/pitch_acc_top5",
    "test/step_mse",
    "test/duration_mse",
    "test/frame_nll",
    "test/frame_accuracy",
)


@dataclass
class Job:
    name: str
    folder: Path
    overrides: list[str]
    objective: float = math.nan
    diverged: bool = False
    status: str = "ok"
    seconds: float = math.nan
    epochs: int | str = ""
    best_checkpoint: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    mode: str = "min"


def read_job(folder: Path) -> Job:
    overrides = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) or []
    config = (
        yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
        if (folder / ".hydra" / "config.yaml").is_file()
        else {}
    )
    mode = (((config or {}).get("callbacks") or {}).get("model_checkpoint") or {}).get("mode", "min")
    job = Job(folder.name, folder, [str(o) for o in overrides], mode=mode)
    summary_file = folder / "metrics.json"
    if not summary_file.is_file():
        job.status = "no metrics.json (failed, or still running)"
        return job
    summary = json.loads(summary_file.read_text())
    job.diverged = bool(summary.get("diverged"))
    objective = summary.get("objective")
    # null: a diverged run (the worst value) or a run without an objective (not a number)
    job.objective = (
        float(objective)
        if objective is not None
        else (math.inf if mode == "min" else -math.inf)
        if job.diverged
        else math.nan
    )
    job.status = "diverged" if job.diverged else "ok"
    job.seconds = float(summary.get("seconds", math.nan))
    job.epochs = summary.get("epochs", "")
    job.best_checkpoint = summary.get("best_checkpoint") or ""
    job.metrics = {k: float(v) if v is not None else math.nan for k, v in (summary.get("metrics") or {}).items()}
    return job


def read_sweep(multirun_dir: Path) -> list[Job]:
    folders = [p.parent.parent for p in multirun_dir.glob("*/.hydra/overrides.yaml")]
    if not folders:
        raise SystemExit(
            f"musicrnn-sweep-report: error: {multirun_dir}: no job folders (*/.hydra/overrides.yaml) here; "
            "give one sweep's folder, logs/<task>/multirun/<date>"
        )
    return [
        read_job(f)
        for f in sorted(folders, key=lambda f: (not f.name.isdigit(), int(f.name) if f.name.isdigit() else f.name))
    ]


def varying_overrides(jobs: list[Job]) -> tuple[list[str], dict[str, str]]:
    """The overrides shared by every job, and for each job the ones that are its own."""
    common = set(jobs[0].overrides).intersection(*(set(j.overrides) for j in jobs[1:]))
    shared = [o for o in jobs[0].overrides if o in common]
    return shared, {j.name: " ".join(o for o in j.overrides if o not in common) for j in jobs}


def sort_key(job: Job):
    bad = not math.isfinite(job.objective)
    return (bad, -job.objective if (job.mode == "max" and not bad) else job.objective if not bad else 0.0)


def _fmt(value, column: str) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if column == "seconds":
        return f"{value:.1f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _short_overrides(text: str) -> str:
    """Sampled floats (0.4790696768418526) to 4 significant digits, for reading; the CSV keeps them whole."""

    def short(override: str) -> str:
        key, _, value = override.partition("=")
        try:
            return f"{key}={float(value):.4g}" if "." in value or "e" in value.lower() else override
        except ValueError:
            return override

    return " ".join(short(o) for o in text.split())


def report(multirun_dir: Path, metric_names: list[str] | None = None) -> tuple[str, list[dict]]:
    jobs = sorted(read_sweep(multirun_dir), key=sort_key)
    names = metric_names or [m for m in DEFAULT_METRICS if any(m in j.metrics for j in jobs)]
    shared, own = varying_overrides(jobs)
    rows = []
    for rank, job in enumerate(jobs, 1):
        best = Path(job.best_checkpoint)
        try:
            best_text = best.resolve().relative_to(multirun_dir.resolve()).as_posix() if job.best_checkpoint else ""
        except ValueError:
            best_text = job.best_checkpoint
        rows.append(
            {
                "rank": rank,
                "job": job.name,
                "overrides": own[job.name],
                "objective": job.objective,
                **{name: job.metrics.get(name, math.nan) for name in names},
                "epochs": job.epochs,
                "seconds": job.seconds,
                "status": job.status,
                "best_checkpoint": best_text,
            }
        )
    monitor = (
        json.loads((jobs[0].folder / "metrics.json").read_text()).get("monitor")
        if (jobs[0].folder / "metrics.json").is_file()
        else None
    )
    lines = [
        f"# Sweep {multirun_dir}",
        "",
        f"{len(jobs)} jobs, sorted by the objective (best {monitor or 'monitored metric'}, {jobs[0].mode}imised).",
    ]
    if shared:
        lines.append(f"Overrides of every job: `{' '.join(shared)}`.")
    results = multirun_dir / "optimization_results.yaml"
    if results.is_file():
        optuna = yaml.safe_load(results.read_text())
        lines.append(
            f"Optuna's best value {optuna.get('best_value')} with `{' '.join(f'{k}={v}' for k, v in (optuna.get('best_params') or {}).items())}`."
        )
    columns = list(rows[0])
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            f"`{_short_overrides(row[c]) if c == 'overrides' else row[c]}`"
            if c in ("overrides", "best_checkpoint") and row[c]
            else _fmt(row[c], c)
            for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="musicrnn-sweep-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("multirun_dir", type=Path, help="a multirun folder (it holds the job folders 0/, 1/, ...)")
    parser.add_argument(
        "--metrics", nargs="+", help=f"metric columns (default: those of {', '.join(DEFAULT_METRICS)} the jobs have)"
    )
    args = parser.parse_args(argv)
    if not args.multirun_dir.is_dir():
        print(f"musicrnn-sweep-report: error: {args.multirun_dir}: folder not found", file=sys.stderr)
        raise SystemExit(1)
    markdown, rows = report(args.multirun_dir, args.metrics)
    (args.multirun_dir / "sweep_report.md").write_text(markdown)
    with open(args.multirun_dir / "sweep_report.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(markdown, end="")
    print(f"\nwrote {args.multirun_dir / 'sweep_report.md'} and {args.multirun_dir / 'sweep_report.csv'}")


if __name__ == "__main__":
    main()
