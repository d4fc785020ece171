"""How chords are voiced: measured on a piano-roll grid, so the same numbers describe generated and real music.

- `notes_per_frame`: the share of frames holding 0, 1, ..., 5 and 6 or more notes (sounding keys), over
  every frame from a piece's first onset to its last note's end;
- `mean_notes_per_frame`: their mean;
- `semitone_clash_rate`: the share of frames of two or more notes in which two of the sounding pitch
  classes are a semitone apart (a minor second or major seventh between any two voices, in any octave).

JSB Chorales are four voices: nearly every real frame holds four notes and few clash; independently
sampled keys give frames of any size and many clashes (experiments/jsb_chorales/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicrnn.representations.pianoroll import notes_to_pianoroll

MAX_COUNTED = 6  # frames with this many notes or more share one bin


def frame_counts(notes: np.ndarray, steps_per_quarter: int) -> tuple[np.ndarray, np.ndarray]:
    """(notes per frame, whether each frame has a semitone clash) of one piece, from its first onset on."""
    if len(notes) == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    roll = notes_to_pianoroll(notes, steps_per_quarter, lowest_pitch=0, num_keys=128)
    first = int(np.rint(notes["start_beat"].min() * steps_per_quarter))
    roll = roll[first:]
    counts = roll.sum(axis=1)
    classes = np.zeros((len(roll), 12), dtype=bool)
    for pitch_class in range(12):
        classes[:, pitch_class] = roll[:, pitch_class::12].any(axis=1)
    clash = (classes & np.roll(classes, -1, axis=1)).any(axis=1)  # pitch classes c and c + 1 (mod 12) both on
    return counts, clash


def voicing(pieces: Sequence[np.ndarray], steps_per_quarter: int = 4) -> dict[str, float | list[float]]:
    """The voicing measures over all frames of `pieces` (a frame counts once, so long pieces weigh more)."""
    counts, clashes = [], []
    for notes in pieces:
        c, k = frame_counts(notes, steps_per_quarter)
        counts.append(c)
        clashes.append(k)
    counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    clashes = np.concatenate(clashes) if clashes else np.zeros(0, bool)
    if len(counts) == 0:
        return {"notes_per_frame": [float("nan")] * (MAX_COUNTED + 1), "mean_notes_per_frame": float("nan"),
                "semitone_clash_rate": float("nan")}  # fmt: skip
    histogram = np.bincount(np.minimum(counts, MAX_COUNTED), minlength=MAX_COUNTED + 1) / len(counts)
    chords = counts >= 2
    return {
        "notes_per_frame": [float(share) for share in histogram],
        "mean_notes_per_frame": float(counts.mean()),
        "semitone_clash_rate": float(clashes[chords].mean()) if chords.any() else float("nan"),
    }
