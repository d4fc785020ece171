"""`musicrnn-evaluate`: test a checkpoint (or an ensemble), generate samples and measure them.

    musicrnn-evaluate ckpt_path=logs/train/runs/X/checkpoints/best.ckpt num_samples=32 num_notes=256
    musicrnn-evaluate experiment=jsb_lstm ckpt_path=.../best.ckpt num_frames=128 output_dir=eval/jsb
    musicrnn-evaluate ckpt_path='logs/x/multirun/*/checkpoints/best.ckpt'      # an ensemble

Writes to output_dir: metrics.json, report.md, figures/*.png, samples/*.mid (and .wav when FluidSynth is
installed). The test-split metrics come from the same callbacks as training; the data config must be the
one the checkpoint was trained on (data=..., or the experiment=... it was trained with).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.cli.config_validation import validate_generation
from musicrnn.cli.errors import errors_as_one_line, run_hydra_cli
from musicrnn.cli.generate import LENGTH_SETTINGS, sampling_from
from musicrnn.cli.train import checkpoints_of, route_lightning_logs, test
from musicrnn.errors import MusicrnnError, one_line

if TYPE_CHECKING:
    from musicrnn.generation.sampling import BeamSearch
    from musicrnn.nets.heads import SamplingSettings
# The evaluation's own modules (torch, matplotlib, MusPy) are imported when the work starts, after the
# config and the checkpoint paths are checked.

log = logging.getLogger(__name__)
MIN_HELD_OUT = 8


def generate_samples(
    module, folder: Path, *, num_samples: int, length: int, settings: SamplingSettings, seed,
    beam: BeamSearch | None = None,
) -> list[Path]:  # fmt: skip
    """`num_samples` samples spread over the checkpoint's held-out primers (one batch per primer)."""
    from musicrnn.generation.samples import sample_checkpoint
    from musicrnn.generation.sampling import BeamSearch

    beam = beam or BeamSearch()
    primers = max(1, min(len(module.primers), num_samples))
    paths: list[Path] = []
    for index in range(primers):
        count = num_samples // primers + (index < num_samples % primers)
        written = sample_checkpoint(
            module,
            folder / f"primer{index}.mid",
            length=length,
            primer_index=index,
            num_samples=count,
            settings=settings,
            seed=None if seed is None else seed + index,
            beam=beam,
        )
        if count == 1:  # one sample is written without a number: name it like the others
            written = [written[0].replace(written[0].with_name(f"primer{index}_00.mid"))]
        paths += written
    return paths


def evaluate(cfg: DictConfig) -> dict:
    output_dir = Path(cfg.paths.output_dir)
    if not cfg.get("ckpt_path"):
        raise MusicrnnError(
            "ckpt_path is not set: musicrnn-evaluate ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt (or a list or glob of them)"
        )
    validate_generation(OmegaConf.to_container(cfg, resolve=False))  # before any checkpoint or data is read
    paths = checkpoints_of(cfg)
    checkpoints = [str(p) for p in paths]
    from musicrnn.evaluation.likelihood import log_likelihood_per_step
    from musicrnn.evaluation.musical import VELOCITY_HISTOGRAM_WIDTH, mean_metrics, velocity_histogram
    from musicrnn.evaluation.novelty import TrainingReference, novelty_summary
    from musicrnn.evaluation.repetition import mean_repetition
    from musicrnn.evaluation.report import markdown_report, write_metrics_json
    from musicrnn.evaluation.samples import read_samples
    from musicrnn.evaluation.summary import summarise
    from musicrnn.evaluation.voicing import voicing
    from musicrnn.evaluation.yang_lerch import yang_lerch

    # The checkpoint (or ensemble) tested as loaded.
    test_metrics, objects = test(cfg, paths, command="musicrnn-evaluate: the test split")
    module, datamodule = objects["model"], objects["datamodule"]
    representation = module.representation
    length_setting = representation.length_setting
    length = int(cfg[length_setting])
    if length < 1 or int(cfg.num_samples) < 1:
        raise MusicrnnError(f"num_samples and {length_setting} must be >= 1")
    others = [f"{name} is for other models" for name in LENGTH_SETTINGS if name != length_setting]
    unit = f"{length_setting} {representation.step_noun} ({'; '.join(others)})"
    print(f"musicrnn-evaluate: generating {cfg.num_samples} samples of {length} {unit}", flush=True)

    sampling, beam = sampling_from(OmegaConf.to_container(cfg, resolve=True))
    sample_paths = generate_samples(
        module,
        output_dir / "samples",
        num_samples=int(cfg.num_samples),
        length=length,
        settings=sampling,
        seed=cfg.seed,
        beam=beam,
    )
    sample_paths, generated = read_samples(sample_paths)
    if not generated:
        raise MusicrnnError("every generated sample is empty: nothing to measure")
    training = datamodule.pieces("train")
    # Real music the model never trained on: the test split, and the validation split too when the test
    # split is small (the distance distributions of Yang & Lerch need several pieces).
    held_out_full = datamodule.pieces("test")
    held_out_splits = ["test"]
    if len(held_out_full) < MIN_HELD_OUT:
        held_out_splits.append("val")
        held_out_full = held_out_full + datamodule.pieces("val")
    if not held_out_full:
        raise MusicrnnError("the data has no test or validation pieces to compare the samples with")
    # Counts and ranges grow with length: real pieces are cut to the samples' length, in notes for a note
    # model, in beats (the frames' span) for a piano-roll model.
    held_out, held_out_cut = representation.cut_like_samples(held_out_full, generated, length)
    grid = int(representation.settings().get("steps_per_quarter", 4))
    held_out = [p for p in held_out if len(p)]
    scale = {"scale_root": int(cfg.scale_root), "scale_mode": str(cfg.scale_mode)}

    log.info(
        "measuring %d samples against %d training and %d held-out pieces", len(generated), len(training), len(held_out)
    )
    sides = {"generated": generated, "held_out": held_out}
    reference = TrainingReference(training)  # built once, for both sides
    results = {
        "setup": {
            "checkpoints": checkpoints,
            "data": OmegaConf.select(cfg, "data._target_"),
            "training_pieces": len(training),
            "held_out_pieces": len(held_out),
            "held_out_splits": held_out_splits,
            "held_out_cut": held_out_cut,
            "num_samples": int(cfg.num_samples),
            "samples_written": len(sample_paths),
            "length": length,
            "length_unit": representation.step_noun,
            "temperature": float(cfg.temperature),
            "sampling": {**vars(sampling), **vars(beam)},
            "seed": cfg.seed,
            "num_primers": max(1, min(len(module.primers), int(cfg.num_samples))),
            "scale": f"{['C', 'C#', 'D', 'Eb', 'E', 'F', 'F#', 'G', 'Ab', 'A', 'Bb', 'B'][scale['scale_root'] % 12]} {scale['scale_mode']}",
        },
        "test": {k[len("test/") :]: v for k, v in test_metrics.items() if k.startswith("test/")},
        "novelty": {side: novelty_summary(pieces, reference) for side, pieces in sides.items()},
        "musical": {"generated": mean_metrics(generated, **scale), "held_out": mean_metrics(held_out, **scale)},
        "repetition": {"generated": mean_repetition(generated), "held_out": mean_repetition(held_out)},
        "log_likelihood": {
            side: summarise([{"per_step": v} for v in log_likelihood_per_step(module, pieces)], ["per_step"])[
                "per_step"
            ]
            for side, pieces in sides.items()
        },
        "velocity": {
            "width": VELOCITY_HISTOGRAM_WIDTH,
            "generated": velocity_histogram(generated),
            "held_out": velocity_histogram(held_out),
        },
        # On the model's own grid where it has one (piano rolls), else on sixteenths.
        "voicing": {
            "steps_per_quarter": grid,
            "generated": voicing(generated, grid),
            "held_out": voicing(held_out, grid),
        },
        "yang_lerch": yang_lerch(held_out, generated) if len(held_out) >= 2 else {},
        "samples": [p.relative_to(output_dir).as_posix() for p in sample_paths],
    }
    results["figures"] = write_figures(
        output_dir, generated, training, checkpoints[0] if len(checkpoints) == 1 else None, results["velocity"]
    )
    results["audio"] = render_samples(output_dir, sample_paths[: int(cfg.audio_samples)])

    write_metrics_json(results, output_dir / "metrics.json")
    (output_dir / "report.md").write_text(markdown_report(results))
    print(f"musicrnn-evaluate: wrote {output_dir / 'report.md'} and {output_dir / 'metrics.json'}", flush=True)
    return results


def write_figures(
    output_dir: Path, generated: list[np.ndarray], training: list[np.ndarray], checkpoint: str | None,
    velocity: dict | None = None,
) -> dict[str, str]:  # fmt: skip
    from musicrnn.evaluation import figures

    folder = output_dir / "figures"
    written = {
        "First 100 notes of sample 0": figures.save(
            figures.piano_roll_figure(generated[0], count=100), folder / "first_100_notes.png"
        ),
        "Whole track of sample 0": figures.save(figures.piano_roll_figure(generated[0]), folder / "whole_track.png"),
        "Pitch, step and duration: generated over training": figures.save(
            figures.histograms_figure(generated, training), folder / "histograms.png"
        ),
    }
    if velocity is not None:
        histograms = {"generated": velocity["generated"], "held-out real": velocity["held_out"]}
        written["Velocity: generated beside held-out real"] = figures.save(
            figures.velocity_figure(histograms, velocity["width"]), folder / "velocity.png"
        )
    run_logs = Path(checkpoint).resolve().parent.parent / "tensorboard" if checkpoint else None
    if run_logs is None:
        log.info(
            "no loss curves for an ensemble: its members were trained in runs of their own (musicrnn-plot run_dir=...)"
        )
    elif run_logs.is_dir():
        try:
            written["Training and validation loss"] = figures.save(
                figures.loss_curves_figure(run_logs), folder / "loss_curves.png"
            )
        except MusicrnnError as error:
            log.warning("no loss curves: %s", one_line(error))
    return {title: path.relative_to(output_dir).as_posix() for title, path in written.items()}


def render_samples(output_dir: Path, midi_paths: list[Path]) -> dict:
    from musicrnn.midi.audio import AudioUnavailable, audio_unavailable_reason, render_wav

    reason = audio_unavailable_reason()
    if reason:
        print(f"musicrnn-evaluate: {reason}", flush=True)
        return {"unavailable": reason, "wav": []}
    wavs = []
    for path in midi_paths:
        try:
            wavs.append(render_wav(path).relative_to(output_dir).as_posix())
        except AudioUnavailable as error:
            log.warning("%s", one_line(error))
    return {"wav": wavs}


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    route_lightning_logs()
    with errors_as_one_line("musicrnn-evaluate", ValueError):
        evaluate(cfg)


def cli() -> None:
    """The `musicrnn-evaluate` console script: `main` with Hydra's own errors on one line too."""
    run_hydra_cli("musicrnn-evaluate", main)


if __name__ == "__main__":
    cli()
