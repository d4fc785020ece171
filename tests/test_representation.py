from __future__ import annotations

import numpy as np

from musicrnn.midi.io import read_midi
from musicrnn.representations.notes import DURATION, PITCH, STEP, events_to_notes, notes_to_events
from tests.helpers import write_piece


def test_chords_have_step_zero_and_read_bottom_up(tmp_path):
    notes = read_midi(write_piece(tmp_path / "a.mid", seed=2))
    events = notes_to_events(notes, "beats")
    assert events[0, STEP] == 0
    # Beat 0: a triad plus the melody's first note, all starting together.
    first_onset = notes["start_beat"] == notes["start_beat"][0]
    assert np.all(events[first_onset, STEP] == 0)
    assert np.all(np.diff(events[first_onset, PITCH]) > 0)
    assert np.all(events[:, STEP] >= 0) and np.all(events[:, DURATION] > 0)


def test_events_round_trip_to_notes(tmp_path):
    notes = read_midi(write_piece(tmp_path / "a.mid", seed=5))
    for unit, (start, end) in {"seconds": ("start", "end"), "beats": ("start_beat", "end_beat")}.items():
        events = notes_to_events(notes, unit)
        back = events_to_notes(events, unit, start=float(notes[start][0]))
        assert np.array_equal(back["pitch"], notes["pitch"])
        np.testing.assert_allclose(back[start], notes[start], atol=1e-4)
        np.testing.assert_allclose(back[end], notes[end], atol=1e-4)


def test_decoding_clamps_negative_steps_and_durations():
    events = np.array([[60, 0.0, 0.5], [62, -0.3, -1.0], [64, 0.25, 0.25]], dtype=np.float32)
    notes = events_to_notes(events, "seconds", start=1.0)
    np.testing.assert_allclose(notes["start"], [1.0, 1.0, 1.25])
    np.testing.assert_allclose(notes["end"] - notes["start"], [0.5, 0.0, 0.25])
