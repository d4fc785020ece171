"""Notes <-> binary piano rolls on a beat grid: the polyphonic representation of the piano-roll benchmarks.

A roll is a (frames, keys) boolean array: frame t covers beats [t, t + 1) / steps_per_quarter, key k is MIDI
pitch lowest_pitch + k. The grid is in beats, computed from the notes' ticks (beat = tick / ticks_per_beat),
so a tempo change does not move notes off it. A note occupies the frames from its rounded start to its
rounded end, at least one. Going back, every run of consecutive active frames of a key becomes one held
note, so two notes of the same pitch that abut on the grid come back as one longer note (the binary roll
cannot tell them apart; the benchmark datasets share that limit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicrnn.errors import MusicrnnError
from musicrnn.midi.io import DEFAULT_TEMPO_BPM, empty_notes, read_midi, write_midi

PIANO_LOWEST_PITCH = 21  # A0
PIANO_KEYS = 88  # A0..C8: MIDI 21..108


def check_key_range(lowest_pitch: int, num_keys: int) -> None:
    if num_keys < 1 or lowest_pitch < 0 or lowest_pitch + num_keys > 128:
        raise ValueError(f"keys must lie in MIDI 0..127, got lowest_pitch={lowest_pitch}, num_keys={num_keys}")


def pianoroll_frames(notes: np.ndarray, steps_per_quarter: int) -> int:
    """How many frames `notes_to_pianoroll` gives the notes by default (the last note's rounded end), computed
    without allocating anything, so that a caller can refuse a piece before its roll is built. Raises
    ValueError for a non-finite or negative beat."""
    if len(notes) == 0:
        return 0
    beats = np.concatenate([notes["start_beat"], notes["end_beat"]])
    if not np.all(np.isfinite(beats)) or beats.min() < 0:
        raise ValueError("note times must be finite, non-negative beats")
    last_start = float(np.rint(notes["start_beat"].max() * steps_per_quarter))
    last_end = float(np.rint(notes["end_beat"].max() * steps_per_quarter))
    return int(max(last_end, last_start + 1))


def notes_to_pianoroll(
    notes: np.ndarray,
    steps_per_quarter: int = 4,
    lowest_pitch: int = PIANO_LOWEST_PITCH,
    num_keys: int = PIANO_KEYS,
    num_frames: int | None = None,
    max_frames: int | None = None,
) -> np.ndarray:
    """A (frames, num_keys) bool roll of a note array (musicrnn.midi.io.NOTE_DTYPE, times from start_beat /
    end_beat). Notes outside the key range are dropped. `num_frames` defaults to the last note's end.
    `max_frames` refuses (ValueError) a roll that would be longer, before allocating it: a file whose notes
    claim to end at tick 2^30 must not become a multi-gigabyte array."""
    if steps_per_quarter < 1:
        raise ValueError(f"steps_per_quarter must be >= 1, got {steps_per_quarter}")
    check_key_range(lowest_pitch, num_keys)
    key = notes["pitch"].astype(np.int64) - lowest_pitch
    inside = (key >= 0) & (key < num_keys)
    frames = pianoroll_frames(notes[inside], steps_per_quarter) if num_frames is None else num_frames
    if max_frames is not None and frames > max_frames:
        raise ValueError(f"a roll of {frames} frames is over the {max_frames}-frame limit")
    start = np.rint(notes["start_beat"][inside] * steps_per_quarter).astype(np.int64)
    end = np.maximum(np.rint(notes["end_beat"][inside] * steps_per_quarter).astype(np.int64), start + 1)
    key = key[inside]
    # A difference array: +1 where a note starts, -1 where it ends; a running sum marks the held frames. The
    # sum runs in place in int32, so the roll costs 5 bytes per cell at its peak rather than 14.
    delta = np.zeros((frames + 1, num_keys), dtype=np.int32)
    np.add.at(delta, (np.minimum(start, frames), key), 1)
    np.add.at(delta, (np.minimum(end, frames), key), -1)
    np.cumsum(delta, axis=0, dtype=np.int32, out=delta)
    return delta[:frames] > 0


def pianoroll_to_notes(
    roll: np.ndarray,
    steps_per_quarter: int = 4,
    lowest_pitch: int = PIANO_LOWEST_PITCH,
    velocity: int = 90,
    program: int = 0,
    tempo_bpm: float = DEFAULT_TEMPO_BPM,
) -> np.ndarray:
    """The note array of a roll: one note per run of active frames of a key. Beats come from the grid;
    seconds assume a constant `tempo_bpm`."""
    roll = np.asarray(roll, dtype=bool)
    if roll.ndim != 2:
        raise ValueError(f"a piano roll is (frames, keys), got shape {roll.shape}")
    check_key_range(lowest_pitch, roll.shape[1])
    padded = np.zeros((roll.shape[0] + 2, roll.shape[1]), dtype=np.int8)
    padded[1:-1] = roll
    edges = np.diff(padded, axis=0)  # +1 at a run's first frame, -1 one past its last
    start_frame, start_key = np.nonzero(edges == 1)
    end_frame, end_key = np.nonzero(edges == -1)
    # nonzero walks row by row; order both by (key, frame) so the i-th start pairs with the i-th end.
    starts = np.lexsort((start_frame, start_key))
    ends = np.lexsort((end_frame, end_key))
    notes = empty_notes(len(starts))
    notes["pitch"] = start_key[starts] + lowest_pitch
    notes["velocity"] = velocity
    notes["program"] = program
    notes["start_beat"] = start_frame[starts] / steps_per_quarter
    notes["end_beat"] = end_frame[ends] / steps_per_quarter
    seconds_per_beat = 60.0 / tempo_bpm
    notes["start"] = notes["start_beat"] * seconds_per_beat
    notes["end"] = notes["end_beat"] * seconds_per_beat
    return sort_notes_by_beat(notes)


def sort_notes_by_beat(notes: np.ndarray) -> np.ndarray:
    """Order by start beat, then pitch (notes built from a grid have no ticks to sort by)."""
    return notes[np.lexsort((notes["end_beat"], notes["pitch"], notes["start_beat"]))]


def pitch_lists_to_pianoroll(
    frames: Sequence[Sequence[int]],
    lowest_pitch: int = PIANO_LOWEST_PITCH,
    num_keys: int = PIANO_KEYS,
) -> np.ndarray:
    """The benchmark pickles' format (a piece is a list of frames, a frame a list of MIDI pitches) as a roll.
    Raises ValueError naming the first pitch outside the key range."""
    check_key_range(lowest_pitch, num_keys)
    roll = np.zeros((len(frames), num_keys), dtype=bool)
    for t, pitches in enumerate(frames):
        for pitch in pitches:
            key = int(pitch) - lowest_pitch
            if not 0 <= key < num_keys:
                raise ValueError(
                    f"frame {t}: pitch {pitch} outside the keys {lowest_pitch}..{lowest_pitch + num_keys - 1}"
                )
            roll[t, key] = True
    return roll


def pianoroll_to_pitch_lists(roll: np.ndarray, lowest_pitch: int = PIANO_LOWEST_PITCH) -> list[list[int]]:
    return [[int(k) + lowest_pitch for k in np.flatnonzero(frame)] for frame in np.asarray(roll, dtype=bool)]


class PianoRoll:
    """The `Representation` of notes as binary piano-roll frames: `num_keys` keys from `lowest_pitch`, on a
    grid of `steps_per_quarter` frames per quarter note. Written MIDI holds one note per run of active frames,
    at 120 BPM."""

    name = "pianoroll"
    length_setting = "num_frames"
    primer_setting = "primer_frames"
    step_noun = "frames"
    data_noun = "piano rolls"
    model_noun = "piano-roll"

    def __init__(self, steps_per_quarter: int = 1, lowest_pitch: int = PIANO_LOWEST_PITCH, num_keys: int = PIANO_KEYS):
        if steps_per_quarter < 1:
            raise ValueError(f"steps_per_quarter must be >= 1, got {steps_per_quarter}")
        check_key_range(lowest_pitch, num_keys)
        self.steps_per_quarter = steps_per_quarter
        self.lowest_pitch = lowest_pitch
        self.num_keys = num_keys

    def encode(self, notes: np.ndarray) -> np.ndarray:
        return notes_to_pianoroll(notes, self.steps_per_quarter, self.lowest_pitch, self.num_keys)

    def decode(self, steps: np.ndarray) -> np.ndarray:
        return pianoroll_to_notes(steps, self.steps_per_quarter, self.lowest_pitch)

    def primer_from_midi(self, path, length: int) -> np.ndarray:
        roll = self.encode(read_midi(path))
        if not roll.any():
            last = self.lowest_pitch + self.num_keys - 1
            raise MusicrnnError(f"{path}: no notes inside the model's keys {self.lowest_pitch}..{last}")
        return roll[-length:] if length > 0 else roll

    def as_primer(self, steps) -> np.ndarray:
        return np.asarray(steps, dtype=bool)

    def write_midi(self, steps: np.ndarray, path, primer: np.ndarray | None = None):
        if primer is not None:
            steps = np.concatenate([np.asarray(primer, dtype=bool), steps])
        return write_midi(self.decode(steps), path, time_unit="beats")

    def settings(self) -> dict:
        return {
            "num_keys": self.num_keys,
            "lowest_pitch": self.lowest_pitch,
            "steps_per_quarter": self.steps_per_quarter,
        }

    def cut_like_samples(self, pieces, samples, length):
        beats = length / self.steps_per_quarter  # the frames' span
        return [p[p["start_beat"] < beats] for p in pieces], f"its first {beats:g} beats (the samples' {length} frames)"


__all__ = [
    "PIANO_KEYS",
    "PIANO_LOWEST_PITCH",
    "PianoRoll",
    "notes_to_pianoroll",
    "pianoroll_frames",
    "pianoroll_to_notes",
    "pianoroll_to_pitch_lists",
    "pitch_lists_to_pianoroll",
]
