"""The seed paper's figures, with matplotlib (Agg: no screen needed): the first notes and the whole track
as a piano roll (time x pitch), histograms of pitch, step and duration (generated over training), and the
train/validation loss curves of a run read from its TensorBoard event files."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from musicrnn.errors import MusicrnnError  # noqa: E402
from musicrnn.evaluation.features import TIME_BIN_EDGES, TIME_BIN_LABELS, durations, ordered, steps  # noqa: E402


def piano_roll_figure(notes: np.ndarray, count: int | None = None, title: str = "") -> plt.Figure:
    """Each note a horizontal line from its start to its end at its pitch (the TensorFlow tutorial's
    plot_piano_roll); `count` keeps the first notes only (the paper shows the first 100)."""
    notes = ordered(notes)[:count] if count else ordered(notes)
    figure, axes = plt.subplots(figsize=(12 if count is None else 8, 4))
    start, end = notes["start_beat"], notes["end_beat"]
    axes.plot(
        np.stack([start, end]), np.stack([notes["pitch"], notes["pitch"]]), color="tab:blue", linewidth=2.5, marker="|"
    )
    axes.set_xlabel("time (beats)")
    axes.set_ylabel("pitch (MIDI)")
    axes.set_title(title or (f"first {len(notes)} notes" if count else f"whole track ({len(notes)} notes)"))
    figure.tight_layout()
    return figure


def _density(ax, values: Sequence[np.ndarray], bins, labels: Sequence[str]) -> None:
    for data, label, colour in zip(values, labels, ("tab:orange", "tab:blue")):
        if len(data):
            ax.hist(data, bins=bins, density=True, alpha=0.55, label=label, color=colour)
    ax.legend()


def histograms_figure(
    generated: Sequence[np.ndarray], training: Sequence[np.ndarray], labels: tuple[str, str] = ("generated", "training")
) -> plt.Figure:
    """Pitch, step and duration distributions of the generated pieces over those of the training pieces.
    Steps and durations are counted in note-value bins (the novelty features' bins)."""
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))

    def gather(pieces, fn):
        return np.concatenate([fn(p) for p in pieces]) if pieces else np.zeros(0)

    pitches = [gather(s, lambda p: p["pitch"].astype(np.float64)) for s in (generated, training)]
    _density(axes[0], pitches, np.arange(0, 129) - 0.5, labels)
    axes[0].set_xlim(
        min((p.min() for p in pitches if len(p)), default=0) - 2,
        max((p.max() for p in pitches if len(p)), default=127) + 2,
    )
    axes[0].set_title("pitch")
    axes[0].set_xlabel("MIDI pitch")
    for ax, name, fn in ((axes[1], "step", steps), (axes[2], "duration", durations)):
        # Bin index on the x axis, so 0, 1/8, 1/4 and 8 beats get equal room.
        index = [np.digitize(gather(s, fn), TIME_BIN_EDGES[1:-1]).astype(np.float64) for s in (generated, training)]
        _density(ax, index, np.arange(len(TIME_BIN_LABELS) + 1) - 0.5, labels)
        ax.set_xticks(range(len(TIME_BIN_LABELS)), TIME_BIN_LABELS, rotation=45)
        ax.set_title(f"{name} (beats)")
    figure.tight_layout()
    return figure


def velocity_figure(histograms: dict[str, Sequence[float]], width: int) -> plt.Figure:
    """Bars of the share of notes in each velocity range, one colour per set (generated, held-out real)."""
    figure, axes = plt.subplots(figsize=(8, 3.5))
    bars = len(next(iter(histograms.values())))
    offsets = np.linspace(-0.2, 0.2, len(histograms))
    for offset, (label, shares), colour in zip(offsets, histograms.items(), ("tab:orange", "tab:blue")):
        axes.bar(np.arange(bars) + offset, shares, width=0.4, label=label, color=colour, alpha=0.8)
    axes.set_xticks(range(bars), [f"{i * width}" for i in range(bars)], rotation=45)
    axes.set_xlabel(f"MIDI velocity (bars of {width})")
    axes.set_ylabel("share of notes")
    axes.legend()
    figure.tight_layout()
    return figure


def read_scalars(event_dir: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar series in a TensorBoard log folder: {tag: (steps, values)}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.WARNING)  # its directory watcher logs every file at INFO
    event_dir = Path(event_dir)
    if not any(event_dir.rglob("events.out.tfevents.*")):
        raise MusicrnnError(f"{event_dir}: no TensorBoard event files here")
    accumulator = EventAccumulator(str(event_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    series = {}
    for tag in accumulator.Tags()["scalars"]:
        events = accumulator.Scalars(tag)
        series[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return series


def loss_curves_figure(event_dir: str | os.PathLike) -> plt.Figure:
    """Training and validation loss per epoch (by optimizer step) of one run."""
    series = read_scalars(event_dir)
    curves = {tag: series[tag] for tag in ("train/loss_epoch", "val/loss") if tag in series}
    if not curves:
        raise MusicrnnError(f"{event_dir}: no train/loss_epoch or val/loss scalars in its event files")
    figure, axes = plt.subplots(figsize=(8, 4))
    for tag, (step, value) in curves.items():
        axes.plot(step, value, marker="o", markersize=3, label=tag)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.set_title("training and validation loss")
    axes.legend()
    figure.tight_layout()
    return figure


def save(figure: plt.Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path
