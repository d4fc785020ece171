"""The tables of experiments/generation/README.md: sampling settings against the repetition and structure of
held-out real music, from one trained note checkpoint.

    python -m experiments.generation.sweep RUN_DIR --out experiments/generation/results_bach.json

RUN_DIR is a `musicrnn-train` run folder (its checkpoints/best.ckpt and .hydra/config.yaml, which says the
data). For each split (validation, then test) it primes the model with the first `--primer-notes` notes of
the split's first `--primers` pieces, draws `--samples` samples of `--notes` notes for every setting of the
grid (temperature 0.8 / 1.0 x repetition_penalty 1.0 / 1.2 / 1.5 x beam search off / 4 x 2), writes them to
MIDI, reads them back and measures them as `musicrnn-evaluate` does (`musicrnn.evaluation`): the repetition
measures, the log-likelihood per note under the model, novelty and copy rate against the training split,
the velocity histogram; beside the split's real pieces cut to the same number of notes.

The recommended setting is chosen on the validation split only: of the settings whose samples' mean
log-likelihood per note is not below that of the real pieces, the one whose repetition measures are closest
to real music (the mean over measures of |generated - real| / the real pieces' standard deviation).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import OmegaConf

from musicrnn.evaluation.likelihood import log_likelihood_per_step
from musicrnn.evaluation.musical import velocity_histogram
from musicrnn.evaluation.novelty import TrainingReference, novelty_summary
from musicrnn.evaluation.repetition import MEASURES, mean_repetition
from musicrnn.evaluation.samples import read_samples
from musicrnn.generation.sampling import BeamSearch, generate_steps
from musicrnn.nets.heads import SamplingSettings
from musicrnn.training.checkpoint import load_module

TEMPERATURES = (0.8, 1.0)
PENALTIES = (1.0, 1.2, 1.5)
BEAM = BeamSearch(beam_size=4, branch_factor=2, steps_per_iteration=1)


def grid() -> list[dict]:
    return [
        {"temperature": t, "repetition_penalty": p, "beam": beam}
        for t in TEMPERATURES
        for p in PENALTIES
        for beam in (False, True)
    ]


def label(setting: dict) -> str:
    beam = f"beam {BEAM.beam_size}x{BEAM.branch_factor}" if setting["beam"] else "sampling"
    return f"T {setting['temperature']}, penalty {setting['repetition_penalty']}, {beam}"


def measure(module, pieces: list[np.ndarray], training: TrainingReference) -> dict:
    likelihood = np.array(log_likelihood_per_step(module, pieces))
    return {
        "pieces": len(pieces),
        "repetition": mean_repetition(pieces),
        "log_likelihood_per_note": {"mean": float(np.nanmean(likelihood)), "std": float(np.nanstd(likelihood))},
        "novelty": novelty_summary(pieces, training),
        "velocity_histogram": velocity_histogram(pieces),
    }


def repetition_distance(generated: dict, real: dict) -> float:
    """Mean over the measures of |generated mean - real mean| / the real pieces' standard deviation."""
    gaps = [
        abs(generated[name]["mean"] - real[name]["mean"]) / max(real[name]["std"], 1e-3)
        for name in MEASURES
        if np.isfinite(generated[name]["mean"]) and np.isfinite(real[name]["mean"])
    ]
    return float(np.mean(gaps))


def run_split(module, datamodule, split: str, args, folder: Path) -> dict:
    representation = module.representation
    events, offsets = datamodule.split_events(split)
    starts = offsets[:-1][: args.primers]
    primers = [events[a : a + args.primer_notes] for a in starts]
    training = TrainingReference(datamodule.pieces("train"))
    real_full = datamodule.pieces(split)
    rows = []
    real = None
    for setting in grid():
        began = time.perf_counter()
        sampling = SamplingSettings(setting["temperature"], repetition_penalty=setting["repetition_penalty"])
        beam = BEAM if setting["beam"] else BeamSearch()
        paths = []
        per_primer = args.samples // len(primers)
        for index, primer in enumerate(primers):
            samples = generate_steps(
                module.net, module.head, primer, args.notes, num_samples=per_primer, settings=sampling,
                seed=args.seed + index, beam=beam,
            )  # fmt: skip
            for number, steps in enumerate(samples):
                path = folder / split / label(setting).replace(" ", "_").replace(",", "") / f"{index}_{number}.mid"
                path.parent.mkdir(parents=True, exist_ok=True)
                paths.append(representation.write_midi(steps, path))
        seconds = time.perf_counter() - began
        _, generated = read_samples(paths)
        if real is None:
            cut, how = representation.cut_like_samples(real_full, generated, args.notes)
            real = {**measure(module, [p for p in cut if len(p)], training), "cut": how}
        row = {**setting, "label": label(setting), "seconds": round(seconds, 1), **measure(module, generated, training)}
        row["repetition_distance"] = repetition_distance(row["repetition"], real["repetition"])
        rows.append(row)
        print(f"{split} {row['label']}: distance {row['repetition_distance']:.3f}, "
              f"log-likelihood {row['log_likelihood_per_note']['mean']:.3f} ({seconds:.1f} s)", flush=True)  # fmt: skip
    return {"real": real, "settings": rows}


def recommend(result: dict) -> dict | None:
    floor = result["real"]["log_likelihood_per_note"]["mean"]
    allowed = [row for row in result["settings"] if row["log_likelihood_per_note"]["mean"] >= floor]
    return min(allowed, key=lambda row: row["repetition_distance"]) if allowed else None


def markdown(result: dict, recommended: str | None) -> str:
    names = list(MEASURES)
    head = ["setting", *names, "log-lik / note", "novelty", "copy rate", "distance"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cells(row):
        rep = row["repetition"]
        return [
            *(f"{rep[n]['mean']:.3f}" if "share" in n or "rate" in n or "similarity" in n else f"{rep[n]['mean']:.1f}" for n in names),
            f"{row['log_likelihood_per_note']['mean']:.3f}",
            f"{row['novelty']['novelty_mean']:.3f}",
            f"{row['novelty']['copy_rate_mean']:.3f}",
        ]  # fmt: skip

    lines.append("| held-out real | " + " | ".join(cells(result["real"])) + " | 0 |")
    for row in result["settings"]:
        name = f"**{row['label']}**" if row["label"] == recommended else row["label"]
        lines.append(f"| {name} | " + " | ".join(cells(row)) + f" | {row['repetition_distance']:.3f} |")
    return "\n".join(lines)


def combine(paths: list[Path]) -> None:
    """One recommendation for several corpora, chosen on their validation splits: of the settings whose
    samples are not less likely than real music on any corpus, the one of lowest mean repetition distance."""
    results = {path.stem.removeprefix("results_"): json.loads(path.read_text()) for path in paths}
    names = list(results)
    lines = ["| setting | " + " | ".join(f"{n} val distance" for n in names) + " | mean | likelihood >= real on all |"]
    lines.append("|" + "---|" * (len(names) + 3))
    best, best_mean = None, float("inf")
    for index, setting in enumerate(grid()):
        rows = [results[n]["val"]["settings"][index] for n in names]
        assert all(row["label"] == label(setting) for row in rows)
        distances = [row["repetition_distance"] for row in rows]
        allowed = all(
            row["log_likelihood_per_note"]["mean"] >= results[n]["val"]["real"]["log_likelihood_per_note"]["mean"]
            for row, n in zip(rows, names)
        )
        mean = float(np.mean(distances))
        if allowed and mean < best_mean:
            best, best_mean = label(setting), mean
        cells = " | ".join(f"{d:.3f}" for d in distances)
        lines.append(f"| {label(setting)} | {cells} | {mean:.3f} | {'yes' if allowed else 'no'} |")
    print("\n".join(lines))
    print(f"\nrecommended for all of {', '.join(names)} (chosen on val): {best}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--out", type=Path, help="results JSON (a markdown table is printed)")
    parser.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        help="results JSONs of several corpora: the setting of lowest mean validation distance",
    )
    parser.add_argument("--primers", type=int, default=8)
    parser.add_argument("--primer-notes", type=int, default=100)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--notes", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--figure", type=Path, help="a PNG of the test split's velocity histograms (T 1.0 sampling beside real)"
    )
    args = parser.parse_args()
    if args.combine:
        combine(args.combine)
        return
    if args.run_dir is None or args.out is None:
        parser.error("give RUN_DIR and --out (or --combine RESULTS.json ...)")
    torch.set_grad_enabled(False)
    module = load_module(args.run_dir / "checkpoints" / "best.ckpt")
    config = OmegaConf.load(args.run_dir / ".hydra" / "config.yaml")
    datamodule = hydra.utils.instantiate(config.data, _convert_="all")
    datamodule.setup()
    results = {
        "run_dir": str(args.run_dir),
        "settings": vars(args) | {"run_dir": str(args.run_dir), "out": str(args.out)},
    }
    with tempfile.TemporaryDirectory() as folder:
        for split in ("val", "test"):
            results[split] = run_split(module, datamodule, split, args, Path(folder))
    chosen = recommend(results["val"])
    results["recommended"] = chosen["label"] if chosen else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    for split in ("val", "test"):
        print(f"\n{split} ({results[split]['real']['pieces']} real pieces, {results[split]['real']['cut']})\n")
        print(markdown(results[split], results["recommended"]))
    print(f"\nrecommended (chosen on val): {results['recommended']}")
    if args.figure:
        from musicrnn.evaluation import figures
        from musicrnn.evaluation.musical import VELOCITY_HISTOGRAM_WIDTH

        plain = next(row for row in results["test"]["settings"] if row["label"] == label(grid()[6]))
        histograms = {"generated (T 1.0, sampling)": plain["velocity_histogram"]}
        histograms["held-out real (test)"] = results["test"]["real"]["velocity_histogram"]
        figures.save(figures.velocity_figure(histograms, VELOCITY_HISTOGRAM_WIDTH), args.figure)
        print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
