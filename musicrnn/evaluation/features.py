"""Per-piece histograms of a note array, on the beat grid (quarter notes), the units a score shows.

Every measure in `musicrnn.evaluation` reads notes through these helpers, so generated pieces (whatever
the model's time unit) and real pieces are measured the same way.
"""

from __future__ import annotations

import numpy as np

# Step and duration bins (beats), centred on the note values music uses: 0 (a chord), 1/8, 1/6, 1/4, 1/3,
# 1/2, 2/3, 3/4, 1, 3/2, 2, 3, 4 beats, and anything longer. Edges are the midpoints between neighbours.
TIME_BIN_CENTRES = np.array([0, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 1.5, 2, 3, 4, 8])
TIME_BIN_EDGES = np.concatenate([[-np.inf], (TIME_BIN_CENTRES[:-1] + TIME_BIN_CENTRES[1:]) / 2, [np.inf]])
TIME_BIN_LABELS = ["0", "1/8", "1/6", "1/4", "1/3", "1/2", "2/3", "3/4", "1", "3/2", "2", "3", "4", ">6"]
INTERVAL_LIMIT = 12  # melodic intervals are clipped to +-1 octave: 25 bins


def ordered(notes: np.ndarray) -> np.ndarray:
    """Notes by onset (beats), then pitch: the reading order of the note representation."""
    return notes[np.lexsort((notes["pitch"], notes["start_beat"]))]


def steps(notes: np.ndarray) -> np.ndarray:
    """Onset differences in beats between consecutive notes (0 inside a chord); the first note has none."""
    return np.diff(ordered(notes)["start_beat"])


def durations(notes: np.ndarray) -> np.ndarray:
    return notes["end_beat"] - notes["start_beat"]


def intervals(notes: np.ndarray) -> np.ndarray:
    """Signed pitch differences between consecutive notes in reading order."""
    return np.diff(ordered(notes)["pitch"].astype(np.int64))


def normalised(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts.astype(np.float64)


def pitch_histogram(notes: np.ndarray) -> np.ndarray:
    return normalised(np.bincount(notes["pitch"].astype(np.int64), minlength=128)[:128].astype(np.float64))


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    return normalised(np.bincount(notes["pitch"].astype(np.int64) % 12, minlength=12).astype(np.float64))


def interval_histogram(notes: np.ndarray) -> np.ndarray:
    clipped = np.clip(intervals(notes), -INTERVAL_LIMIT, INTERVAL_LIMIT) + INTERVAL_LIMIT
    return normalised(np.bincount(clipped, minlength=2 * INTERVAL_LIMIT + 1).astype(np.float64))


def time_histogram(values: np.ndarray) -> np.ndarray:
    """Counts of `values` (beats) in the note-value bins `TIME_BIN_CENTRES`, normalised."""
    return normalised(np.histogram(values, bins=TIME_BIN_EDGES)[0].astype(np.float64))


def novelty_features(notes: np.ndarray) -> np.ndarray:
    """The piece's feature vector for novelty: its pitch, pitch-class, interval, step and duration
    histograms, each normalised to sum 1, side by side (128 + 12 + 25 + 14 + 14 = 193 values)."""
    return np.concatenate(
        [
            pitch_histogram(notes),
            pitch_class_histogram(notes),
            interval_histogram(notes),
            time_histogram(steps(notes)),
            time_histogram(durations(notes)),
        ]
    )
