from __future__ import annotations

from pathlib import Path

import miditoolkit
import numpy as np
import pytest

from conftest import require_shared, shared_data_dir, write_piece
from musicrnn.errors import MidiReadError
from musicrnn.midi_io import find_midi_files, read_midi, write_midi


def test_read_orders_by_start_then_pitch_and_skips_drums(tmp_path):
    notes = read_midi(write_piece(tmp_path / "a.mid", seed=1))
    assert not notes["is_drum"].any()
    order = np.lexsort((notes["pitch"], notes["start_tick"]))
    assert np.array_equal(order, np.arange(len(notes)))
    with_drums = read_midi(tmp_path / "a.mid", include_drums=True)
    assert with_drums["is_drum"].sum() == 16 * 4  # one drum hit per beat of 16 bars
    assert len(with_drums) == len(notes) + with_drums["is_drum"].sum()


def test_seconds_follow_the_tempo_map(tmp_path):
    # 16 bars at 110 bpm, then 140 bpm from beat 32 on (write_piece with seed 1).
    notes = read_midi(write_piece(tmp_path / "a.mid", seed=1, num_bars=16))
    beats = notes["start_beat"]
    expected = np.where(beats < 32, beats * 60 / 110, 32 * 60 / 110 + (beats - 32) * 60 / 140)
    # MIDI stores tempo as whole microseconds per beat, so 110 bpm is exact only to ~1e-6.
    np.testing.assert_allclose(notes["start"], expected, rtol=1e-5, atol=1e-9)
    assert notes["start_beat"][-1] > 32  # the test covers both tempo segments


def test_write_then_read_gives_the_same_notes(tmp_path):
    source = read_midi(write_piece(tmp_path / "a.mid", seed=3), include_drums=True)
    for unit in ("seconds", "beats"):
        out = write_midi(source, tmp_path / f"copy_{unit}.mid", time_unit=unit)
        back = read_midi(out, include_drums=True)
        assert len(back) == len(source)
        for column in ("pitch", "velocity", "program", "is_drum"):
            assert np.array_equal(back[column], source[column]), column
        start, end = ("start", "end") if unit == "seconds" else ("start_beat", "end_beat")
        one_tick = 60 / (120 * 480) if unit == "seconds" else 1 / 480
        np.testing.assert_allclose(back[start], source[start], atol=one_tick)
        np.testing.assert_allclose(back[end], source[end], atol=one_tick)


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["music21/test10.mid", "miditoolkit/1390.mid", "symusic/1.midi"])
def test_round_trip_of_real_files_with_tempo_changes(tmp_path, name):
    path = require_shared("midi_fixtures", *name.split("/"))
    source = read_midi(path)
    tpb = miditoolkit.MidiFile(str(path)).ticks_per_beat
    back = read_midi(write_midi(source, tmp_path / "x.mid", time_unit="beats", ticks_per_beat=tpb))
    assert np.array_equal(back["pitch"], source["pitch"])
    assert np.array_equal(back["start_tick"], source["start_tick"])
    # Zero-length notes come back one tick long (the writer's minimum); every other end is exact.
    assert np.array_equal(back["end_tick"], np.maximum(source["end_tick"], source["start_tick"] + 1))


def test_program_selection(tmp_path):
    midi = miditoolkit.MidiFile()
    for program in (0, 40):
        inst = miditoolkit.Instrument(program=program)
        inst.notes = [miditoolkit.Note(80, 60 + program % 12 + i, i * 240, i * 240 + 200) for i in range(4)]
        midi.instruments.append(inst)
    midi.dump(str(tmp_path / "two.mid"))
    assert len(read_midi(tmp_path / "two.mid")) == 8
    violin = read_midi(tmp_path / "two.mid", programs=[40])
    assert set(violin["program"]) == {40} and len(violin) == 4
    with pytest.raises(MidiReadError, match="no notes in the selected instruments"):
        read_midi(tmp_path / "two.mid", programs=[99])


def test_find_midi_files_is_recursive_and_case_insensitive(tmp_path):
    for name in ("a.mid", "b.MID", "sub/c.midi", "sub/deeper/d.MIDI", "notes.txt", "sub/e.mid.bak"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path).as_posix() for p in find_midi_files(tmp_path)]
    assert found == ["a.mid", "b.MID", "sub/c.midi", "sub/deeper/d.MIDI"]


def test_bad_files_raise_one_line_errors_naming_the_file(tmp_path):
    (tmp_path / "empty.mid").write_bytes(b"")
    (tmp_path / "text.mid").write_text("hello, not midi")
    cases = {"empty.mid": "empty file", "text.mid": "cannot parse", "missing.mid": "cannot open"}
    for name, reason in cases.items():
        with pytest.raises(MidiReadError) as info:
            read_midi(tmp_path / name)
        message = str(info.value)
        assert name in message and reason in message and "\n" not in message


# Fixtures whose names or provenance say they are broken or note-less; all others must parse with notes.
EXPECTED_SKIPS = {
    "test-corrupt-file-missing-byte.mid": "truncated",
    "test-empty-file.mid": "empty file",
    "test-illegal-message-all.mid": "cannot parse",
    "test-non-midi-track.mid": "cannot parse",
    "test-not-a-midi-file.mid": "cannot parse",
    "test-running-status-sysex.mid": "truncated",
    "ValueError_Control168.mid": "cannot parse",
    "test-empty.mid": "no notes",
    "test-silence-end-of-track.mid": "no notes",
    "empty.mid": "no notes",
    "test-all-gm-percussion.mid": "no notes in the selected instruments",  # drums only
    "beat.mid": "no notes in the selected instruments",  # drums only
}


def _fixture_files() -> list[Path]:
    base = shared_data_dir()
    return find_midi_files(base / "midi_fixtures") if base and (base / "midi_fixtures").is_dir() else []


@pytest.mark.shared_data
@pytest.mark.parametrize("path", _fixture_files() or [None], ids=lambda p: p.name if p else "no-fixtures")
def test_every_fixture_parses_or_is_skipped_with_a_reason(path):
    if path is None:
        require_shared("midi_fixtures")
    expected = EXPECTED_SKIPS.get(path.name)
    if expected is None:
        notes = read_midi(path)
        assert len(notes) > 0
        assert np.all(notes["end"] >= notes["start"]) and np.all(np.diff(notes["start"]) >= 0)
        assert np.all((notes["pitch"] >= 0) & (notes["pitch"] <= 127))
    else:
        with pytest.raises(MidiReadError) as info:
            read_midi(path)
        assert expected in info.value.reason and str(path) in str(info.value)
