"""Notes <-> (pitch, step, duration) rows: the seed paper's note representation.

step = start minus the previous note's start (0 for the first note, and 0 inside a chord, since notes are
ordered by start then pitch); duration = end minus start. Times are in seconds or in beats (quarter notes).
The encoding is invertible up to the absolute start of the first note.
"""

from __future__ import annotations

import numpy as np

from musicrnn.midi.io import empty_notes, read_midi, sort_notes, write_midi

TIME_UNITS = ("seconds", "beats")
PITCH, STEP, DURATION = 0, 1, 2
NUM_FEATURES = 3
NUM_PITCHES = 128


def _time_columns(time_unit: str) -> tuple[str, str]:
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {TIME_UNITS}, got {time_unit!r}")
    return ("start", "end") if time_unit == "seconds" else ("start_beat", "end_beat")


def notes_to_events(notes: np.ndarray, time_unit: str = "seconds") -> np.ndarray:
    """Encode a note array as float32 rows (pitch, step, duration), ordered by start then pitch."""
    start_col, end_col = _time_columns(time_unit)
    notes = sort_notes(notes)
    start = notes[start_col]
    events = np.empty((len(notes), NUM_FEATURES), dtype=np.float32)
    events[:, PITCH] = notes["pitch"]
    events[:, STEP] = np.diff(start, prepend=start[:1]) if len(notes) else start
    events[:, DURATION] = notes[end_col] - start
    return events


def events_to_notes(
    events: np.ndarray,
    time_unit: str = "seconds",
    *,
    start: float = 0.0,
    velocity: int = 90,
    program: int = 0,
) -> np.ndarray:
    """Decode (pitch, step, duration) rows to notes; negative steps or durations are clamped to 0.

    `start` is the onset the first row's step counts from: the first note's own onset for an encoded
    piece (whose first step is 0), or the last primer note's onset for a continuation. Only the columns
    of `time_unit` are filled.
    """
    start_col, end_col = _time_columns(time_unit)
    events = np.asarray(events, dtype=np.float64)
    steps = np.maximum(events[:, STEP], 0.0)
    onsets = start + np.cumsum(steps)
    notes = empty_notes(len(events))
    notes["pitch"] = np.clip(np.rint(events[:, PITCH]), 0, NUM_PITCHES - 1)
    notes["velocity"] = velocity
    notes["program"] = program
    notes[start_col] = onsets
    notes[end_col] = onsets + np.maximum(events[:, DURATION], 0.0)
    return notes


def quantise_time(values, resolution: float, num_classes: int):
    """Step or duration -> the class of the nearest multiple of `resolution`, clipped to num_classes - 1.

    Decoding (`class * resolution`) is within half a bin of the value for values below
    (num_classes - 0.5) * resolution. Works on torch tensors and numpy arrays.
    """
    scaled = values / resolution
    if isinstance(scaled, np.ndarray):
        return np.clip(np.rint(scaled), 0, num_classes - 1).astype(np.int64)
    return scaled.round().clamp(0, num_classes - 1).long()


def dequantise_time(classes, resolution: float):
    """The value a timing class stands for."""
    return classes * resolution


class NoteEvents:
    """The `Representation` of notes as (pitch, step, duration) rows, times in `time_unit`."""

    name = "notes"
    length_setting = "num_notes"
    primer_setting = "primer_notes"
    step_noun = "notes"
    data_noun = "notes"
    model_noun = "note"

    def __init__(self, time_unit: str = "seconds"):
        _time_columns(time_unit)  # validates it
        self.time_unit = time_unit

    def encode(self, notes: np.ndarray) -> np.ndarray:
        return notes_to_events(notes, self.time_unit)

    def decode(self, steps: np.ndarray) -> np.ndarray:
        return events_to_notes(steps, self.time_unit)

    def primer_from_midi(self, path, length: int) -> np.ndarray:
        events = self.encode(read_midi(path))
        return events[-length:] if length > 0 else events

    def as_primer(self, steps) -> np.ndarray:
        return np.asarray(steps, dtype=np.float32)

    def write_midi(self, steps: np.ndarray, path, primer: np.ndarray | None = None):
        if primer is not None:
            steps = np.concatenate([primer, steps])
        return write_midi(self.decode(steps), path, time_unit=self.time_unit)

    def settings(self) -> dict:
        return {"time_unit": self.time_unit}

    def cut_like_samples(self, pieces, samples, length):
        notes = int(np.median([len(p) for p in samples]))
        return [p[:notes] for p in pieces], f"its first {notes} notes (the samples' length)"
