from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import miditoolkit
import mido
import numpy as np
import pytest

from musicrnn.errors import MidiReadError
from musicrnn.midi.io import MidiLimits, find_midi_files, read_midi, write_midi
from tests.helpers import require_shared, shared_data_dir, write_piece


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
    # (test-running-status-sysex.mid is a valid file mido cannot read; symusic reads it: test_parsers.py)
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


# -- hostile files: each refused with one line naming the file and the reason ----------------------------
def _reason(path: Path, **kwargs) -> str:
    with pytest.raises(MidiReadError) as info:
        read_midi(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return info.value.reason


def _patch(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


TRACK_1 = 14  # the first track chunk's offset in a file with the standard 6-byte header


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda d: d[:10], "truncated header (10 bytes"),
        (lambda d: _patch(d, 0, b"RIFF"), "not a MIDI file (no MThd header)"),
        (lambda d: _patch(d, 4, struct.pack(">I", 0)), "header length 0 (it must be at least 6)"),
        (lambda d: _patch(d, 4, struct.pack(">I", 0xFFFFFFFF)), f"header claims {0xFFFFFFFF} bytes but the file has"),
        (lambda d: _patch(d, 10, struct.pack(">H", 0)), "header declares 0 tracks"),
        (lambda d: _patch(d, 10, struct.pack(">H", 0xFFFF)), "header declares -1 tracks"),
        (
            lambda d: _patch(d, 10, struct.pack(">H", 9)),
            "header declares 9 tracks but the file holds 4 (truncated file)",
        ),
        (lambda d: _patch(d, 12, b"\x00\x00"), "ticks per beat is 0"),
        (lambda d: _patch(d, 12, b"\xe7\x28"), "SMPTE time division"),
        (lambda d: _patch(d, TRACK_1 + 4, struct.pack(">I", 2**30)), f"track 1 claims {2**30} bytes but"),
        (lambda d: _patch(d, TRACK_1 + 4, struct.pack(">I", 0)), "track 1 is empty (0 bytes)"),
        (lambda d: _patch(d, TRACK_1, b"Junk"), "found a b'Junk' chunk where track 1 should be"),
        (lambda d: d[:-5], "truncated file"),
    ],
    ids=[
        "short",
        "magic",
        "header-0",
        "header-4G",
        "no-tracks",
        "tracks-negative",
        "tracks-missing",
        "tpb-0",
        "smpte",
        "track-2^30",
        "track-empty",
        "junk-chunk",
        "cut",
    ],
)
def test_broken_structure_is_named_before_any_event_is_parsed(tmp_path, mutate, reason):
    data = write_piece(tmp_path / "good.mid", seed=1, num_bars=2).read_bytes()
    assert data[TRACK_1 : TRACK_1 + 4] == b"MTrk" and int.from_bytes(data[10:12], "big") == 4
    (tmp_path / "bad.mid").write_bytes(mutate(data))
    tracemalloc.start()
    try:
        assert reason in _reason(tmp_path / "bad.mid")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # a claimed 1 or 4 GiB is never allocated


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "big.mid"
    path.write_bytes(b"MThd" + bytes(3 * 1024 * 1024))
    assert _reason(path, limits=MidiLimits(max_file_mb=2)) == "3.0 MB, over the 2 MB limit"
    assert "cannot parse" in _reason(path)  # under the default 8 MB it is read, and is not MIDI


def _mido_file(tmp_path: Path, messages: list, ticks_per_beat: int = 480, name: str = "m.mid") -> Path:
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tracks.append(mido.MidiTrack(messages))
    midi.save(tmp_path / name)
    return tmp_path / name


def _note(pitch: int = 60, at: int = 0, length: int = 480) -> list:
    return [
        mido.Message("note_on", note=pitch, velocity=80, time=at),
        mido.Message("note_off", note=pitch, velocity=0, time=length),
    ]


def _tempo(microseconds: int, at: int = 0) -> mido.MetaMessage:
    return mido.MetaMessage("set_tempo", tempo=microseconds, time=at)


@pytest.mark.parametrize(
    "microseconds, reason",
    [
        (0, "cannot parse: a tempo of 0 microseconds per beat"),
        (1, f"a tempo of {60e6 / 1:.6g} bpm at tick 0, outside 4..2000 bpm"),  # bpm = 60 s / the beat
        (0xFFFFFF, f"a tempo of {60e6 / 0xFFFFFF:.6g} bpm at tick 0, outside 4..2000 bpm"),
    ],
)
def test_unplayable_tempos_are_refused(tmp_path, microseconds, reason):
    path = _mido_file(tmp_path, [_tempo(microseconds)] + _note() + _note(62))
    assert _reason(path) == reason


def test_a_tempo_after_the_last_note_moves_nothing_and_is_ignored(tmp_path):
    plain = read_midi(_mido_file(tmp_path, _note() + _note(62), name="plain.mid"))
    late = read_midi(_mido_file(tmp_path, _note() + _note(62) + [_tempo(1, at=960)], name="late.mid"))
    assert late.tobytes() == plain.tobytes()


def test_absurd_lengths_and_counts_are_refused_not_allocated(tmp_path):
    far = _mido_file(tmp_path, _note() + _note(62, length=0x0FFFFFFF), name="far.mid")
    far_beat = (480 + 0x0FFFFFFF) / 480  # the second note ends 0x0FFFFFFF ticks after the first one's end
    assert _reason(far) == f"notes reach beat {far_beat:.6g}, over the 100000-beat limit"
    beyond = _mido_file(tmp_path, _note() + _note(62, length=2**70), name="beyond.mid")
    # A delta of 2^70 takes 10 bytes, where the standard allows 4: symusic stops after 4 and finds garbage;
    # mido reads it whole, into a tick int64 cannot hold.
    assert _reason(beyond).startswith("cannot parse: ")
    assert _reason(beyond, parser="miditoolkit") == "a note lies beyond tick 2^63 (absurd delta times)"
    slow = _mido_file(tmp_path, [_tempo(0xFFFFFF // 4)] + _note(length=10_000 * 480), name="slow.mid")  # 14.3 bpm
    seconds = 10_000 * (0xFFFFFF // 4) / 1e6  # 10,000 beats of 0xFFFFFF // 4 microseconds
    assert _reason(slow) == f"notes reach {seconds:.6g} s, over the 36000 s limit"
    many = _mido_file(tmp_path, [m for i in range(50) for m in _note(60 + i % 12, length=10)], name="many.mid")
    assert _reason(many, limits=MidiLimits(max_notes=49)) == "50 notes, over the 49-note limit"
    assert len(read_midi(many)) == 50


def test_notes_that_never_end_are_dropped(tmp_path):
    stuck = [mido.Message("note_on", note=72, velocity=80, time=0)]  # no note-off, ever
    path = _mido_file(tmp_path, stuck + _note(60) + _note(62), name="stuck.mid")
    assert read_midi(path)["pitch"].tolist() == [60, 62]
    assert _reason(_mido_file(tmp_path, stuck, name="only.mid")) == "no notes"


def test_a_sustain_pedal_never_lifted_or_lifted_absurdly_late(tmp_path):
    down = mido.Message("control_change", control=64, value=127, time=0)
    never = _mido_file(tmp_path, [down] + _note(60, length=10) + _note(62, length=960), name="never.mid")
    last_end = 10 + 960  # the second note starts as the first ends, and lasts 960 ticks
    assert read_midi(never, sustain=True)["end_tick"].tolist() == [last_end, last_end]  # both held to its end
    up = mido.Message("control_change", control=64, value=0, time=2**70)
    late = _mido_file(tmp_path, [down] + _note(60, length=10) + [up], name="late.mid")
    assert _reason(late).startswith("cannot parse: ")  # symusic: a 10-byte delta (see the test above)
    assert len(read_midi(late, parser="miditoolkit")) == 1
    clamped = 2**63 / 480  # a pedal lifted past tick 2^63 holds the note to 2^63 ticks at 480 a beat
    assert (
        _reason(late, sustain=True, parser="miditoolkit")
        == f"notes reach beat {clamped:.6g}, over the 100000-beat limit"
    )
