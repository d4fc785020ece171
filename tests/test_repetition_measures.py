"""The repetition and structure measures, each against a value worked out by hand, on MIDI written here."""

from __future__ import annotations

from pathlib import Path

import miditoolkit
import numpy as np
import pytest

from musicrnn.evaluation.repetition import (
    MEASURES,
    back_to_back_repeat_rate,
    bar_self_similarity,
    longest_self_repeat,
    mean_repetition,
    ordered_pitches,
    repeated_ngram_share,
    repetition_measures,
)
from musicrnn.midi.io import read_midi


def write_melody(path: Path, pitches, beats=None, ticks_per_beat: int = 480) -> np.ndarray:
    """One note per entry, a quarter note each (or at the given onsets in beats); read back through musicrnn."""
    midi = miditoolkit.MidiFile(ticks_per_beat=ticks_per_beat)
    track = miditoolkit.Instrument(program=0)
    beats = range(len(pitches)) if beats is None else beats
    for pitch, beat in zip(pitches, beats):
        start = int(round(beat * ticks_per_beat))
        track.notes.append(miditoolkit.Note(80, int(pitch), start, start + ticks_per_beat // 2))
    midi.instruments = [track]
    midi.dump(str(path))
    return read_midi(path)


def test_repeated_ngram_share_counts_ngrams_seen_earlier():
    # 2-grams: (60,62) (62,60) (60,62) (62,60) (60,64): positions 2 and 3 repeat earlier ones -> 2 of 5.
    assert repeated_ngram_share(np.array([60, 62, 60, 62, 60, 64]), 2) == pytest.approx(2 / 5)
    # A phrase played twice: 4-grams at positions 0..4; only the last, (1,2,3,4), repeats an earlier one.
    assert repeated_ngram_share(np.array([1, 2, 3, 4, 1, 2, 3, 4]), 4) == pytest.approx(1 / 5)
    assert np.isnan(repeated_ngram_share(np.array([1, 2, 3]), 4))


def test_longest_self_repeat_finds_the_longest_run_occurring_twice():
    assert longest_self_repeat(np.array([5, 1, 2, 3, 9, 1, 2, 3, 7])) == 3
    assert longest_self_repeat(np.array([1, 2, 3, 4])) == 0
    # Overlapping copies count: 7 7 7 7 holds 7 7 7 at positions 0 and 1.
    assert longest_self_repeat(np.array([7, 7, 7, 7])) == 3


def test_back_to_back_rate_is_the_share_of_equal_neighbours():
    assert back_to_back_repeat_rate(np.array([60, 60, 62, 62, 62])) == pytest.approx(3 / 4)
    assert np.isnan(back_to_back_repeat_rate(np.array([60])))


def test_bar_self_similarity_on_written_midi(tmp_path):
    # Bar 1: C D E F; bar 2 the same; bar 3: C D G A (2 shared onsets of 6 distinct with bar 1 or 2).
    pitches = [60, 62, 64, 65] * 2 + [60, 62, 67, 69]
    notes = write_melody(tmp_path / "bars.mid", pitches)
    # bar 2: max overlap 4/4 = 1; bar 3: |{C@0, D@4}| / |{C,D,E,F,G,A}| = 2/6.
    assert bar_self_similarity(notes) == pytest.approx((1 + 2 / 6) / 2)
    # Shifting the same notes by one beat moves every onset within its bar: bars are counted from the first
    # note's bar, so a piece starting on beat 1 is cut at beats 4, 8, ...
    shifted = write_melody(tmp_path / "shifted.mid", pitches, beats=[b + 1 for b in range(12)])
    assert bar_self_similarity(shifted) < 1.0
    assert np.isnan(bar_self_similarity(write_melody(tmp_path / "one_bar.mid", [60, 62])))


def test_notes_are_read_by_onset_then_pitch(tmp_path):
    # A chord written top-down reads bottom-up, so chords of the same notes count as repeats.
    notes = write_melody(tmp_path / "chords.mid", [67, 64, 60, 67, 64, 60], beats=[0, 0, 0, 1, 1, 1])
    assert ordered_pitches(notes).tolist() == [60, 64, 67, 60, 64, 67]
    values = repetition_measures(notes)
    assert set(values) == set(MEASURES)
    assert values["longest_self_repeat"] == 3 and values["back_to_back_repeat_rate"] == 0.0


def test_a_looping_piece_measures_more_repetitive_than_a_real_chorale(tmp_path):
    from music21 import corpus  # the bundled Bach chorales, written by music21 as MIDI

    chorale = read_midi(Path(corpus.parse("bach/bwv269").write("midi")))
    loop = write_melody(tmp_path / "loop.mid", [60, 64, 67, 72] * 40)  # 160 notes
    real, looping = mean_repetition([chorale]), mean_repetition([loop])
    for name in ("repeated_4gram_share", "repeated_8gram_share", "longest_self_repeat", "bar_self_similarity"):
        assert looping[name]["mean"] > real[name]["mean"], name
    assert looping["bar_self_similarity"]["mean"] == pytest.approx(1.0)
    assert looping["longest_self_repeat"]["mean"] == 160 - 4  # the loop repeats itself one bar later
    # The chorale repeats its opening (the two Stollen of a bar form), so its longest self-repeat is long too.
    assert real["longest_self_repeat"]["mean"] >= 40
