"""metrics.json and a readable report.md from the numbers of one evaluation."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from musicrnn.evaluation import likelihood, repetition
from musicrnn.evaluation.musical import METRICS


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def write_metrics_json(results: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def _sampling_note(setup: dict) -> str:
    """The sampling settings that differ from plain sampling, as ', name value' pairs."""
    plain = {"repetition_penalty": 1.0, "no_repeat_ngram": 0, "beam_size": 1, "branch_factor": 1}
    sampling = setup.get("sampling", {})
    changed = [name for name, value in plain.items() if sampling.get(name, value) != value]
    if sampling.get("repetition_penalty", 1.0) != 1.0 or sampling.get("no_repeat_ngram", 0):
        changed.append("repetition_window")
    if sampling.get("beam_size", 1) * sampling.get("branch_factor", 1) > 1:
        changed.append("steps_per_iteration")
    changed += [
        name
        for name in ("top_k", "top_p", "timing_temperature", "velocity_temperature")
        if sampling.get(name) is not None
    ]
    return "".join(f", {name} {sampling[name]}" for name in changed)


def markdown_report(results: dict) -> str:
    setup = results["setup"]
    lines = ["# musicrnn evaluation", ""]
    lines += [f"- checkpoint: {', '.join(f'`{c}`' for c in setup['checkpoints'])}"]
    lines += [
        f"- data: `{setup['data']}` ({setup['training_pieces']} training pieces, {setup['held_out_pieces']} held-out pieces: "
        f"the {' and '.join(setup['held_out_splits'])} split{'s' if len(setup['held_out_splits']) > 1 else ''})"
    ]
    lines += [
        f"- samples: {setup['samples_written']} of {setup['num_samples']} requested, {setup['length']} {setup['length_unit']} each "
        f"(temperature {setup['temperature']}, seed {setup['seed']}{_sampling_note(setup)}), primed with {setup['num_primers']} held-out pieces",
        f"- held-out real music is cut to {setup['held_out_cut']}, since counts and ranges grow with length",
        "",
    ]
    test = results.get("test") or {}
    if test:
        lines += ["## Test split", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {_fmt(value)} |" for name, value in test.items()]
        lines.append("")

    novelty = results["novelty"]
    lines += [
        "## Novelty and copying",
        "",
        "Similarity: cosine of each piece's feature vector (pitch, pitch-class, interval, step and duration histograms) "
        "to its nearest training piece; novelty = 1 - similarity. Copy rate: share of the piece's 8-grams of "
        "(pitch, step) found in the training set; longest copied run in notes.",
        "",
        "| measure | generated | held-out real |",
        "|---|---|---|",
    ]
    for name in novelty["generated"]:
        lines.append(f"| {name} | {_fmt(novelty['generated'][name])} | {_fmt(novelty['held_out'][name])} |")
    lines.append("")

    musical = results["musical"]
    lines += [
        "## Musical statistics (MusPy definitions)",
        "",
        f"pitch_in_scale_rate is for {setup['scale']}; mean ± standard deviation over pieces.",
        "",
        "| metric | generated | held-out real |",
        "|---|---|---|",
    ]
    for name in METRICS:
        g, r = musical["generated"][name], musical["held_out"][name]
        lines.append(
            f"| {name} | {_fmt(g['mean'], 3)} ± {_fmt(g['std'], 3)} | {_fmt(r['mean'], 3)} ± {_fmt(r['std'], 3)} |"
        )
    lines.append("")

    repeats = results.get("repetition")
    if repeats:
        lines += [
            "## Repetition and structure",
            "",
            "Mean ± standard deviation over pieces. Notes are ordered by onset, then pitch.",
            "",
        ]
        lines += [f"- **{name}**: {definition}." for name, definition in repetition.DEFINITIONS.items()]
        lines += [f"- **log_likelihood_per_step**: {likelihood.DEFINITION}.", ""]
        lines += ["| measure | generated | held-out real |", "|---|---|---|"]
        rows = dict(repeats["generated"]), dict(repeats["held_out"])
        if results.get("log_likelihood"):
            rows[0]["log_likelihood_per_step"] = results["log_likelihood"]["generated"]
            rows[1]["log_likelihood_per_step"] = results["log_likelihood"]["held_out"]
        for name in rows[0]:
            g, r = rows[0][name], rows[1][name]
            lines.append(
                f"| {name} | {_fmt(g['mean'], 3)} ± {_fmt(g['std'], 3)} | {_fmt(r['mean'], 3)} ± {_fmt(r['std'], 3)} |"
            )
        lines.append("")

    velocity = results.get("velocity")
    if velocity:
        width = velocity["width"]
        lines += ["## Velocity", "", "Share of notes in each range of MIDI velocities.", ""]
        lines += ["| velocity | generated | held-out real |", "|---|---|---|"]
        for i, (g, r) in enumerate(zip(velocity["generated"], velocity["held_out"])):
            if g or r:
                lines.append(f"| {i * width}-{i * width + width - 1} | {_fmt(g, 3)} | {_fmt(r, 3)} |")
        lines.append("")

    voicing = results.get("voicing")
    if voicing:
        sizes = [str(n) for n in range(len(voicing["generated"]["notes_per_frame"]))]
        sizes[-1] += "+"
        lines += [
            "## Voicing",
            "",
            f"On a grid of {voicing['steps_per_quarter']} frames per quarter note: the share of frames holding each "
            "number of notes, the mean, and the share of frames of two or more notes in which two pitch classes "
            "are a semitone apart.",
            "",
            "| measure | generated | held-out real |",
            "|---|---|---|",
        ]
        for i, size in enumerate(sizes):
            g, r = voicing["generated"]["notes_per_frame"][i], voicing["held_out"]["notes_per_frame"][i]
            lines.append(f"| frames of {size} notes | {_fmt(g, 3)} | {_fmt(r, 3)} |")
        for name in ("mean_notes_per_frame", "semitone_clash_rate"):
            lines.append(f"| {name} | {_fmt(voicing['generated'][name], 3)} | {_fmt(voicing['held_out'][name], 3)} |")
        lines.append("")

    lines += [
        "## Yang & Lerch (2018): generated vs held-out real",
        "",
        "Overlapping area (1 is best) and KL divergence (0 is best) between the real set's intra-set distance "
        "distribution and the real-to-generated inter-set one.",
        "",
        "| feature | overlap area | KL divergence | mean intra-set distance (real) | mean inter-set distance |",
        "|---|---|---|---|---|",
    ]
    if not results["yang_lerch"]:
        lines.append("| (needs at least 2 held-out pieces) | | | | |")
    for name, row in results["yang_lerch"].items():
        lines.append(
            f"| {name} | {_fmt(row['overlap_area'], 3)} | {_fmt(row['kl_divergence'], 3)} | {_fmt(row['intra_real_mean'], 3)} | {_fmt(row['inter_mean'], 3)} |"
        )
    lines.append("")

    lines += ["## Figures", ""]
    if len(setup["checkpoints"]) > 1:
        lines += [
            "(No loss curves for an ensemble: its members' runs have their own, `musicrnn-plot run_dir=...`.)",
            "",
        ]
    for title, figure in results["figures"].items():
        lines += [f"### {title}", "", f"![{title}]({figure})", ""]
    lines += ["## Samples", ""]
    audio = results["audio"]
    if audio.get("unavailable"):
        lines += [f"{audio['unavailable']}.", ""]
    for midi in results["samples"][: max(len(audio.get("wav", [])), 4)]:
        wav = Path(midi).with_suffix(".wav")
        lines.append(
            f"- [{Path(midi).name}]({midi})"
            + (f" · [{wav.name}]({wav.as_posix()})" if wav.as_posix() in audio.get("wav", []) else "")
        )
    if len(results["samples"]) > 4:
        lines.append(f"- ... {len(results['samples'])} MIDI files in `samples/`")
    lines.append("")
    return "\n".join(lines)
