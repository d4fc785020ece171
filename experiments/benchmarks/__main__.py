"""musicrnn's benchmark suite: every measurement side by side in one run, a table, and JSON.

    python -m experiments.benchmarks                     # the full suite (about 2 minutes on 2 cores)
    python -m experiments.benchmarks --quick             # a tiny setting (what the test suite runs)
    python -m experiments.benchmarks --out results.json --corpus ~/midis --pop909 /path/to/POP909

Each measurement runs in a fresh subprocess (its own peak RSS, no shared warm caches); with --quick, which
checks that everything runs and measures nothing, they run in this process. Targets are those of the
performance issue; see experiments/benchmarks/README.md for the latest table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_one(name: str, kwargs: dict, in_process: bool = False) -> dict:
    """One measurement in a fresh subprocess (its own peak RSS, no warm caches from the others); with
    `in_process` (the --quick check, where nothing is measured) here, which saves ~5 s of imports each."""
    if in_process:
        from experiments.benchmarks.suite import measure

        return measure(name, kwargs)
    command = [sys.executable, "-m", "experiments.benchmarks.one", name, json.dumps(kwargs)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"benchmark {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks that everything runs, measures nothing"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where the JSON goes (default: experiments/benchmarks/results.json, "
        "the published table's; with --quick: experiments/benchmarks/results-quick.json, untracked)",
    )
    parser.add_argument(
        "--corpus", help="a MIDI folder for the training measurements (default: the built-in Bach chorales)"
    )
    parser.add_argument(
        "--pop909",
        default=os.environ.get("MUSICRNN_POP909"),
        help="the POP909 folder for data preparation (default: $MUSICRNN_POP909; without it those rows are left out)",
    )
    parser.add_argument(
        "--jsb",
        default=os.environ.get("MUSICRNN_JSB_CHORALES"),
        help="the JSB Chorales pickle for the piano-roll training rows (default: $MUSICRNN_JSB_CHORALES)",
    )
    parser.add_argument(
        "--device",
        help="also measure training (fp32, bf16) and generation on this device: cuda, cuda:1, or cpu (the same rows on the CPU)",
    )
    args = parser.parse_args()
    args.out = args.out or Path("experiments/benchmarks", "results-quick.json" if args.quick else "results.json")

    from experiments.benchmarks.suite import lstm_flops_per_step, machine

    results = {"machine": machine(), "quick": args.quick}
    common = {"quick": args.quick}
    train = {**common, "corpus": args.corpus}
    results["matmul_peak"] = run_one("matmul_peak", common)  # a subprocess even with --quick: that path runs too
    results["plain_training"] = run_one("plain_training", train, in_process=args.quick)
    results["lightning_training"] = run_one("lightning_training", train, in_process=args.quick)
    results["generation"] = run_one("generation", common, in_process=args.quick)
    results["ensemble_generation"] = run_one("ensemble_generation", common, in_process=args.quick)
    results["controlled_generation"] = run_one("controlled_generation", common, in_process=args.quick)
    results["cli_startup"] = run_one("cli_startup", common, in_process=args.quick)
    if args.device:
        results["device_training"] = run_one("device_training", {**train, "device": args.device}, in_process=args.quick)
    if args.jsb and Path(args.jsb).is_file():
        for output in ("bernoulli", "nade"):
            results[f"pianoroll_training_{output}"] = run_one(
                "pianoroll_training", {**common, "jsb": args.jsb, "output": output}, in_process=args.quick
            )
    if args.pop909 and Path(args.pop909).is_dir():
        results["pianoroll_training_pop909"] = run_one(
            "pianoroll_training", {**common, "midi": args.pop909}, in_process=args.quick
        )
        for parser in ("symusic", "miditoolkit"):
            for workers in (1, 2):
                results[f"data_preparation_{parser}_{workers}"] = run_one(
                    "data_preparation",
                    {"corpus": args.pop909, "workers": workers, "parser": parser},
                    in_process=args.quick,
                )

    rows = table(results, lstm_flops_per_step())
    results["table"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results, rows))
    print(f"\nwrote {args.out}")


def table(r: dict, flops_per_step: float) -> list[dict]:
    """(measurement, value, target, met) rows."""
    peak = r["matmul_peak"]["matmul_gflops"] * 1e9
    plain, lightning = r["plain_training"], r["lightning_training"]
    gen, ens = r["generation"], r["ensemble_generation"]
    rows = [
        ("training: plain PyTorch loop (time steps/s)", plain["plain_steps_per_s"], None),
        (
            "training: musicrnn DataModule + LightningModule + Trainer (time steps/s)",
            lightning["lightning_steps_per_s"],
            None,
        ),
        ("training: musicrnn / plain", lightning["lightning_steps_per_s"] / plain["plain_steps_per_s"], (">=", 0.97)),
        ("training: share of step time waiting for data", lightning["data_wait_fraction"], ("<=", 0.05)),
        ("fp32 matmul peak (GFLOP/s)", peak / 1e9, None),
        ("training FLOP/s / peak, plain loop", plain["plain_steps_per_s"] * flops_per_step / peak, None),
        ("training FLOP/s / peak, musicrnn", lightning["lightning_steps_per_s"] * flops_per_step / peak, (">=", 0.55)),
        ("generation, batch 1: musicrnn, compiled loop (notes/s)", gen["carried_notes_per_s_b1"], (">=", 10_000)),
        ("generation, batch 1: musicrnn, torch loop (notes/s)", gen["torch_loop_notes_per_s_b1"], None),
        ("generation, batch 1: window re-run, the tutorial (notes/s)", gen["window_notes_per_s_b1"], None),
        (
            "generation, batch 16: musicrnn, compiled loop (notes/s, total)",
            gen["carried_notes_per_s_b16"],
            (">=", 100_000),
        ),
        ("generation, batch 16: musicrnn, torch loop (notes/s, total)", gen["torch_loop_notes_per_s_b16"], None),
        ("generation, batch 16: window re-run (notes/s, total)", gen["window_notes_per_s_b16"], None),
        ("ensemble generation, compiled loop: time of K=5 / one model", ens["compiled_ensemble5_ratio"], ("<=", 2.0)),
        ("ensemble generation, compiled loop: K=5 (notes/s)", ens["compiled_ensemble5_notes_per_s"], None),
        ("ensemble generation, torch loop: time of K=5 / one model", ens["torch_loop_ensemble5_ratio"], None),
        ("ensemble generation, torch loop: K=5 (notes/s)", ens["torch_loop_ensemble5_notes_per_s"], None),
    ]
    device = r.get("device_training")
    if device:
        name = f"{device['device']} ({device['device_name']})"
        rows += [
            (f"{name}: training, seed model, fp32 (steps/s of 64 x 100)", device["training_fp32_steps_per_s"], None),
            (f"{name}: training, seed model, bf16 autocast (steps/s)", device["training_bf16_steps_per_s"], None),
            (f"{name}: generation, default note_lstm, batch 1 (notes/s)", device["generation_b1_notes_per_s"], None),
            (
                f"{name}: generation, default note_lstm, batch 64 (notes/s, total)",
                device["generation_b64_notes_per_s"],
                None,
            ),
        ]
    startup = r.get("cli_startup")
    if startup:
        rows += [
            ("CLI: `musicrnn-train model.hiden_size=3` prints its error (s)", startup["typo_seconds"], ("<", 1.5)),
            ("CLI: `musicrnn-generate` without ckpt_path (s)", startup["no_checkpoint_seconds"], ("<", 1.5)),
            ("CLI: `musicrnn-train --help` (s)", startup["help_seconds"], ("<", 1.5)),
            ("CLI: the typo's time / `python -c 'import pytorch_lightning'`", startup["typo_over_import"], None),
        ]
    control = r.get("controlled_generation")
    if control:
        rows += [
            (
                "default note_lstm, batch 1: sampling, compiled loop (notes/s)",
                control["plain_notes_per_s"],
                (">=", 15_000),
            ),
            (
                "default note_lstm, batch 16: sampling, compiled loop (notes/s, total)",
                control["plain_b16_notes_per_s"],
                (">=", 100_000),
            ),
            ("default note_lstm, batch 1: sampling, torch loop (notes/s)", control["torch_loop_notes_per_s"], None),
            (
                "default note_lstm, batch 16: sampling, torch loop (notes/s, total)",
                control["torch_loop_b16_notes_per_s"],
                None,
            ),
            (
                "default note_lstm, batch 1: repetition_penalty=1.2, compiled loop (notes/s)",
                control["penalty_notes_per_s"],
                (">=", 15_000),
            ),
            (
                "default note_lstm, batch 1: top_p=0.9, compiled loop (notes/s)",
                control["top_p_notes_per_s"],
                (">=", 15_000),
            ),
            (
                "default note_lstm, batch 1: beam search 4 x 2 (notes of the result/s)",
                control["beam_4x2_notes_per_s"],
                None,
            ),
            (
                "default note_lstm, batch 1: time of beam 4 x 2 / sampling, both the torch loop",
                control["beam_4x2_cost"],
                None,
            ),
        ]
    for output, what in (("bernoulli", "independent keys"), ("nade", "RNN-NADE")):
        if f"pianoroll_training_{output}" in r:
            roll = r[f"pianoroll_training_{output}"]
            rows += [
                (f"piano-roll training, JSB recipe, {what} (target frames/s)", roll["frames_per_s"], None),
                (
                    f"piano-roll training, JSB recipe, {what}: FLOP/s / peak",
                    roll["frames_per_s"] * roll["flops_per_frame"] / peak,
                    (">=", 0.45),
                ),
            ]
    if "pianoroll_training_pop909" in r:
        roll = r["pianoroll_training_pop909"]
        rows += [
            (
                "piano-roll training, POP909 whole pieces, independent keys (target frames/s)",
                roll["frames_per_s"],
                None,
            ),
            (
                "piano-roll training, POP909 whole pieces, independent keys: FLOP/s / peak",
                roll["frames_per_s"] * roll["flops_per_frame"] / peak,
                (">=", 0.45),
            ),
        ]
    if "data_preparation_symusic_1" in r:
        fast, fast_one = r["data_preparation_symusic_2"], r["data_preparation_symusic_1"]
        slow, slow_one = r["data_preparation_miditoolkit_2"], r["data_preparation_miditoolkit_1"]
        rows += [
            (f"data preparation, symusic, 1 worker, {fast['files']} files (files/s)", fast_one["files_per_s"], None),
            ("data preparation, symusic, 2 workers (files/s)", fast["files_per_s"], None),
            ("data preparation, miditoolkit (data.parser=miditoolkit), 2 workers (files/s)", slow["files_per_s"], None),
            (
                "cold preparation, 2 workers: symusic / miditoolkit",
                fast["files_per_s"] / slow["files_per_s"],
                (">=", 10),
            ),
            (
                "data preparation, miditoolkit: 2 workers / 1 (symusic's is bound by writing the cache)",
                slow["files_per_s"] / slow_one["files_per_s"],
                (">=", 1.8),
            ),
            ("symusic: 2 workers / 1", fast["files_per_s"] / fast_one["files_per_s"], None),
            ("reload a prepared corpus from the cache (s)", fast["reload_seconds"], ("<", 0.5)),
            ("peak RSS of preparation, 2 workers (MiB, parent process)", fast["peak_rss_mib"], None),
        ]
    rows += [
        ("peak RSS of training, batch 64 (MiB)", lightning["peak_rss_mib"], None),
        ("peak RSS of generation (MiB)", gen["peak_rss_mib"], None),
    ]
    out = []
    for name, value, target in rows:
        met = None
        if target and not r["quick"]:  # tiny sizes measure nothing: no verdict
            op, bound = target
            met = {">=": value >= bound, "<=": value <= bound, "<": value < bound}[op]
        out.append(
            {"measurement": name, "value": value, "target": f"{target[0]} {target[1]:g}" if target else "", "met": met}
        )
    return out


def markdown(r: dict, rows: list[dict]) -> str:
    m = r["machine"]
    lines = [
        f"{m['cpu']}, {m['cpu_count']} cores, torch {m['torch']} ({m['torch_threads']} threads), Python {m['python']}"
        + (" — QUICK: tiny sizes, not measurements" if r["quick"] else ""),
        "",
        "| measurement | value | target | met |",
        "|---|---|---|---|",
    ]
    for row in rows:
        value = row["value"]
        text = f"{value:,.0f}" if value >= 100 else f"{value:.3f}"
        met = "" if row["met"] is None else ("yes" if row["met"] else "**no**")
        lines.append(f"| {row['measurement']} | {text} | {row['target']} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
