"""How much a piece repeats itself, and at what scale: measures computed the same way for generated and for
held-out real pieces, so a sampling setting can be judged by how close its samples come to real music.

Each works on a note array (`musicrnn.midi.io.NOTE_DTYPE`) with its notes ordered by onset, then pitch
(a chord bottom-up, the order of the note representation). `DEFINITIONS` holds the one-sentence definition
of each, which the evaluation report prints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicrnn.evaluation.summary import summarise

NGRAM_SIZES = (4, 8)
BEATS_PER_BAR = 4  # generated MIDI is written in 4/4
POSITIONS_PER_BEAT = 4  # a bar's piano roll is on sixteenths

DEFINITIONS = {
    **{
        f"repeated_{n}gram_share": f"share of a piece's pitch {n}-grams (one per note) that already occurred earlier in the piece"
        for n in NGRAM_SIZES
    },
    "longest_self_repeat": "length in notes of the longest run of pitches that occurs twice in the piece (the two may overlap)",
    "back_to_back_repeat_rate": "share of consecutive note pairs with the same pitch",
    "bar_self_similarity": (
        "mean over the bars after the first of the highest Jaccard overlap between the bar's onsets "
        "(pitch, sixteenth of the bar) and those of any earlier bar (4/4 bars counted from the first note)"
    ),
}
MEASURES = tuple(DEFINITIONS)


def ordered_pitches(notes: np.ndarray) -> np.ndarray:
    """The pitches by onset (in beats), then pitch."""
    order = np.lexsort((notes["pitch"], notes["start_beat"]))
    return np.asarray(notes["pitch"][order], dtype=np.int64)


def repeated_ngram_share(pitches: np.ndarray, n: int) -> float:
    """Share of the n-grams at positions 0..len-n whose pitches equal those of an n-gram at an earlier position."""
    if len(pitches) < n:
        return float("nan")
    grams = np.lib.stride_tricks.sliding_window_view(np.asarray(pitches), n)
    _, first = np.unique(grams, axis=0, return_index=True)
    return 1.0 - len(first) / len(grams)


def longest_self_repeat(pitches: np.ndarray) -> int:
    """The longest k with pitches[i:i + k] == pitches[j:j + k] for some i < j."""
    pitches = np.asarray(pitches)
    longest = 0
    for lag in range(1, len(pitches)):
        same = pitches[lag:] == pitches[:-lag]
        if not same.any():
            continue
        # Longest run of True: positions of the False values bound the runs.
        bounds = np.flatnonzero(np.concatenate([[False], same, [False]]) == False)  # noqa: E712
        longest = max(longest, int(np.diff(bounds).max()) - 1)
    return longest


def back_to_back_repeat_rate(pitches: np.ndarray) -> float:
    if len(pitches) < 2:
        return float("nan")
    pitches = np.asarray(pitches)
    return float(np.mean(pitches[1:] == pitches[:-1]))


def bar_onsets(notes: np.ndarray) -> list[set[tuple[int, int]]]:
    """Each 4/4 bar's set of (pitch, sixteenth within the bar) onsets, bars counted from the first note's."""
    if len(notes) == 0:
        return []
    beats = np.asarray(notes["start_beat"], dtype=np.float64)
    beats = beats - np.floor(beats.min() / BEATS_PER_BAR) * BEATS_PER_BAR
    sixteenth = np.floor(beats * POSITIONS_PER_BEAT + 1e-6).astype(np.int64)
    per_bar = BEATS_PER_BAR * POSITIONS_PER_BEAT
    bars: list[set[tuple[int, int]]] = [set() for _ in range(int(sixteenth.max()) // per_bar + 1)]
    for pitch, position in zip(notes["pitch"], sixteenth):
        bars[position // per_bar].add((int(pitch), int(position % per_bar)))
    return bars


def bar_self_similarity(notes: np.ndarray) -> float:
    """Mean over bars 2.. (those with notes) of max over earlier bars with notes of |A & B| / |A | B|."""
    bars = [bar for bar in bar_onsets(notes) if bar]
    if len(bars) < 2:
        return float("nan")
    scores = [max(len(bar & earlier) / len(bar | earlier) for earlier in bars[:i]) for i, bar in enumerate(bars) if i]
    return float(np.mean(scores))


def repetition_measures(notes: np.ndarray) -> dict[str, float]:
    pitches = ordered_pitches(notes)
    values = {f"repeated_{n}gram_share": repeated_ngram_share(pitches, n) for n in NGRAM_SIZES}
    values["longest_self_repeat"] = float(longest_self_repeat(pitches))
    values["back_to_back_repeat_rate"] = back_to_back_repeat_rate(pitches)
    values["bar_self_similarity"] = bar_self_similarity(notes)
    return values


def mean_repetition(pieces: Sequence[np.ndarray]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of every measure over a set of pieces."""
    return summarise([repetition_measures(p) for p in pieces], MEASURES)
