"""Notes <-> (pitch, step, duration[, velocity]) rows: the seed paper's note representation.

step = start minus the previous note's start (0 for the first note, and 0 inside a chord, since notes are
ordered by start then pitch); duration = end minus start. Times are in seconds or in beats (quarter notes).
With `velocity`, a fourth column holds each note's MIDI velocity (1..127) as it is; models read and predict
it in `VELOCITY_BINS` bins (Performance RNN's 32). The encoding is invertible up to the absolute start of
the first note (and, for generated velocities, up to the bin).
"""

from __future__ import annotations

import numpy as np

from musicrnn.midi.io import empty_notes, read_midi, sort_notes, write_midi

TIME_UNITS = ("seconds", "beats")
PITCH, STEP, DURATION, VELOCITY = 0, 1, 2, 3
NUM_FEATURES = 3  # without velocity; with it, 4
NUM_PITCHES = 128
VELOCITY_BINS = 32  # Performance RNN's: bins of 4 MIDI velocities
DEFAULT_VELOCITY = 90  # what notes are written at when the model has no velocity


def _time_columns(time_unit: str) -> tuple[str, str]:
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit must be one of {TIME_UNITS}, got {time_unit!r}")
    return ("start", "end") if time_unit == "seconds" else ("start_beat", "end_beat")


def num_features(velocity: bool) -> int:
    return NUM_FEATURES + 1 if velocity else NUM_FEATURES


def notes_to_events(notes: np.ndarray, time_unit: str = "seconds", velocity: bool = False) -> np.ndarray:
    """Encode a note array as float32 rows (pitch, step, duration[, velocity]), ordered by start then pitch."""
    start_col, end_col = _time_columns(time_unit)
    notes = sort_notes(notes)
    start = notes[start_col]
    events = np.empty((len(notes), num_features(velocity)), dtype=np.float32)
    events[:, PITCH] = notes["pitch"]
    events[:, STEP] = np.diff(start, prepend=start[:1]) if len(notes) else start
    events[:, DURATION] = notes[end_col] - start
    if velocity:
        events[:, VELOCITY] = notes["velocity"]
    return events


def events_to_notes(
    events: np.ndarray,
    time_unit: str = "seconds",
    *,
    start: float = 0.0,
    velocity: int = DEFAULT_VELOCITY,
    program: int = 0,
) -> np.ndarray:
    """Decode (pitch, step, duration[, velocity]) rows to notes; negative steps or durations are clamped to 0.

    `start` is the onset the first row's step counts from: the first note's own onset for an encoded
    piece (whose first step is 0), or the last primer note's onset for a continuation. Only the columns
    of `time_unit` are filled. Rows without a velocity column get `velocity`.
    """
    start_col, end_col = _time_columns(time_unit)
    events = np.asarray(events, dtype=np.float64)
    steps = np.maximum(events[:, STEP], 0.0)
    onsets = start + np.cumsum(steps)
    notes = empty_notes(len(events))
    notes["pitch"] = np.clip(np.rint(events[:, PITCH]), 0, NUM_PITCHES - 1)
    notes["velocity"] = np.clip(np.rint(events[:, VELOCITY]), 1, 127) if events.shape[1] > VELOCITY else velocity
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


def velocity_bin(velocity, bins: int = VELOCITY_BINS):
    """MIDI velocity (0..127) -> its bin: `bins` equal bins of 128 / bins velocities (32 bins: 0-3, 4-7, ...,
    124-127). Works on torch tensors and numpy arrays."""
    scaled = velocity * bins / 128
    if isinstance(scaled, np.ndarray):
        return np.clip(np.floor(scaled), 0, bins - 1).astype(np.int64)
    return scaled.floor().clamp(0, bins - 1).long()


def bin_velocity(classes, bins: int = VELOCITY_BINS):
    """The velocity a bin is written at: its middle, rounded down (32 bins: 2, 6, ..., 90, ..., 126), so a
    corpus at one velocity such as 90 comes back at it."""
    width = 128 // bins
    return classes * width + width // 2


class NoteEvents:
    """The `Representation` of notes as (pitch, step, duration[, velocity]) rows, times in `time_unit`."""

    name = "notes"
    length_setting = "num_notes"
    primer_setting = "primer_notes"
    step_noun = "notes"
    data_noun = "notes"
    model_noun = "note"

    def __init__(self, time_unit: str = "seconds", velocity: bool = False):
        _time_columns(time_unit)  # validates it
        self.time_unit = time_unit
        self.velocity = bool(velocity)

    def encode(self, notes: np.ndarray) -> np.ndarray:
        return notes_to_events(notes, self.time_unit, self.velocity)

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
        return {"time_unit": self.time_unit, "velocity": self.velocity}

    def cut_like_samples(self, pieces, samples, length):
        notes = int(np.median([len(p) for p in samples]))
        return [p[:notes] for p in pieces], f"its first {notes} notes (the samples' length)"
