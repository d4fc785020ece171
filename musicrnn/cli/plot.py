"""`musicrnn-plot`: the evaluation's figures on their own.

    musicrnn-plot run_dir=logs/train/runs/X                    # loss curves from the run's TensorBoard files
    musicrnn-plot midi=generated.mid                           # first 100 notes, whole track, histograms
    musicrnn-plot midi='samples/*.mid' reference=~/midis       # histograms of the files over a MIDI folder

Figures go to output_dir (default: RUN_DIR/figures, or a `figures` folder beside the first MIDI file).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.cli.config_validation import validate_known_keys
from musicrnn.cli.errors import errors_as_one_line, run_hydra_cli
from musicrnn.errors import MusicrnnError
from musicrnn.evaluation import figures
from musicrnn.midi.io import find_midi_files, read_midi


def _midi_files(spec: str) -> list[Path]:
    text = os.path.expanduser(str(spec))
    if Path(text).is_dir():
        files = find_midi_files(text)
        if not files:
            raise MusicrnnError(f"{text}: no MIDI file (.mid, .midi) in this folder")
        return files
    paths = sorted(Path(p) for p in glob.glob(text, recursive=True)) if any(c in text for c in "*?[") else [Path(text)]
    if not paths:
        raise MusicrnnError(f"{text}: no MIDI file matches")
    return paths


def plot(cfg: DictConfig) -> list[Path]:
    if not cfg.run_dir and not cfg.midi:
        raise MusicrnnError("nothing to plot: give run_dir=A_RUN_FOLDER and/or midi=FILE_OR_GLOB")
    written = []
    if cfg.run_dir:
        run_dir = Path(cfg.run_dir).expanduser()
        if not run_dir.is_dir():
            raise MusicrnnError(f"{run_dir}: run folder not found")
        out = Path(cfg.output_dir) if cfg.output_dir else run_dir / "figures"
        logs = run_dir / "tensorboard" if (run_dir / "tensorboard").is_dir() else run_dir
        written.append(figures.save(figures.loss_curves_figure(logs), out / "loss_curves.png"))
    if cfg.midi:
        paths = _midi_files(cfg.midi)
        pieces = [read_midi(p) for p in paths]  # a bad file stops here with a one-line MidiReadError
        out = Path(cfg.output_dir) if cfg.output_dir else paths[0].parent / "figures"
        written.append(
            figures.save(
                figures.piano_roll_figure(pieces[0], count=100, title=f"{paths[0].name}: first 100 notes"),
                out / f"{paths[0].stem}_first_100_notes.png",
            )
        )
        written.append(
            figures.save(
                figures.piano_roll_figure(pieces[0], title=f"{paths[0].name}: whole track"),
                out / f"{paths[0].stem}_whole_track.png",
            )
        )
        reference = [read_midi(p) for p in _midi_files(cfg.reference)] if cfg.reference else []
        labels = ("midi", "reference")
        written.append(figures.save(figures.histograms_figure(pieces, reference, labels), out / "histograms.png"))
    for path in written:
        print(f"wrote {path}")
    return written


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="plot")
def main(cfg: DictConfig) -> None:
    with errors_as_one_line("musicrnn-plot", FileNotFoundError):
        validate_known_keys(cfg, CONFIG_DIR / "plot.yaml", "musicrnn-plot")
        plot(cfg)


def cli() -> None:
    """The `musicrnn-plot` console script: `main` with Hydra's own errors on one line too."""
    run_hydra_cli("musicrnn-plot", main)


if __name__ == "__main__":
    cli()
