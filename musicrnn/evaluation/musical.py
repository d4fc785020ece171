"""Objective musical statistics of a piece: MusPy's implementations of the metrics the field reports
(Dong et al., "MusPy", ISMIR 2020; definitions in muspy.metrics), computed on the beat grid.

pitch_in_scale_rate needs a scale: `scale_root` (0 = C) and `scale_mode` ("major" or "minor") say which;
scale_consistency is the same rate for the best-fitting major or minor scale, so it needs none.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicrnn.evaluation.summary import summarise

RESOLUTION = 24  # time steps per beat: sixteenths and triplets land on the grid
BEATS_PER_MEASURE = 4  # groove consistency compares 4/4 bars (what write_midi writes)

METRICS = (
    "pitch_range",
    "n_pitches_used",
    "n_pitch_classes_used",
    "polyphony",
    "polyphony_rate",
    "pitch_in_scale_rate",
    "scale_consistency",
    "pitch_entropy",
    "pitch_class_entropy",
    "empty_beat_rate",
    "groove_consistency",
)


def to_muspy(notes: np.ndarray):
    import muspy  # imported here: it is slow to import and only the evaluation needs it

    start = np.rint(notes["start_beat"] * RESOLUTION).astype(np.int64)
    length = np.maximum(np.rint(notes["end_beat"] * RESOLUTION).astype(np.int64) - start, 1)
    track = muspy.Track(
        notes=[
            muspy.Note(time=int(t), pitch=int(p), duration=int(d), velocity=int(v))
            for t, p, d, v in zip(start, notes["pitch"], length, notes["velocity"])
        ]
    )
    return muspy.Music(resolution=RESOLUTION, tracks=[track])


def musical_metrics(notes: np.ndarray, scale_root: int = 0, scale_mode: str = "major") -> dict[str, float]:
    import muspy

    music = to_muspy(notes)
    values = {
        "pitch_range": muspy.pitch_range(music),
        "n_pitches_used": muspy.n_pitches_used(music),
        "n_pitch_classes_used": muspy.n_pitch_classes_used(music),
        "polyphony": muspy.polyphony(music),
        "polyphony_rate": muspy.polyphony_rate(music),
        "pitch_in_scale_rate": muspy.pitch_in_scale_rate(music, scale_root, scale_mode),
        "scale_consistency": muspy.scale_consistency(music),
        "pitch_entropy": muspy.pitch_entropy(music),
        "pitch_class_entropy": muspy.pitch_class_entropy(music),
        "empty_beat_rate": muspy.empty_beat_rate(music),
        "groove_consistency": muspy.groove_consistency(music, BEATS_PER_MEASURE * RESOLUTION),
    }
    return {name: float(value) for name, value in values.items()}


def mean_metrics(pieces: Sequence[np.ndarray], **scale) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of every metric over a set of pieces (NaNs, e.g. a piece too short for
    a metric, are left out)."""
    return summarise([musical_metrics(p, **scale) for p in pieces], METRICS)


VELOCITY_HISTOGRAM_WIDTH = 8  # velocities per bar of the velocity histogram (16 bars over 0..127)


def velocity_histogram(pieces: Sequence[np.ndarray], width: int = VELOCITY_HISTOGRAM_WIDTH) -> list[float]:
    """Share of all the pieces' notes in each range of `width` MIDI velocities (0..width-1, ...)."""
    velocities = np.concatenate([np.asarray(p["velocity"], dtype=np.int64) for p in pieces]) if pieces else []
    counts = np.bincount(np.clip(velocities, 0, 127) // width, minlength=128 // width).astype(np.float64)
    return (counts / max(counts.sum(), 1.0)).tolist()
