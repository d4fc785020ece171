"""symusic against miditoolkit: the same note arrays on real files (POP909, the parser fixtures), each known
difference as docs/training.md ("Parsers") lists it, the 32-bit tick guard, and the parser in the cache key."""

from __future__ import annotations

import io

import mido
import numpy as np
import pytest

from musicrnn.data.corpus import prepare_corpus
from musicrnn.errors import MidiReadError, MusicrnnError
from musicrnn.midi.io import MidiLimits, find_midi_files, read_midi, structure_problem
from musicrnn.midi.parsers import INT32_MAX, _delta_sum_bound, _latest_event_tick
from tests.helpers import require_shared, write_piece

# The fixtures where the parsers differ (docs/training.md, "Parsers"): what each gives, as (notes or None).
PROGRAM_AT_NOTE_OFF = "music21/test04.mid"
ONLY_SYMUSIC_READS = "jazz-soft/test-running-status-sysex.mid"
BOTH_REFUSE_IN_OWN_WORDS = {"jazz-soft/test-illegal-message-all.mid", "symusic/ValueError_Control168.mid"}


def _read(path, **settings) -> tuple[np.ndarray | None, str | None]:
    try:
        return read_midi(path, **settings), None
    except MidiReadError as error:
        return None, error.reason


@pytest.mark.slow  # (by its time: miditoolkit over the 51 fixtures)
@pytest.mark.shared_data
@pytest.mark.parametrize("settings", [{}, {"sustain": True, "include_drums": True}], ids=["default", "sustain_drums"])
def test_the_parsers_agree_on_every_fixture_but_the_listed_ones(settings):
    root = require_shared("midi_fixtures")
    differing = set()
    for path in find_midi_files(root):
        name = path.relative_to(root).as_posix()
        (old, old_reason), (new, new_reason) = (_read(path, parser=p, **settings) for p in ("miditoolkit", "symusic"))
        if name == PROGRAM_AT_NOTE_OFF:
            # The same notes at the same times; 12 of them are filed under the program of their note-on,
            # not of their note-off (program changes among 45, 48 and 49 come while they sound).
            moved = old["program"] != new["program"]
            assert moved.sum() == 12
            assert all(np.array_equal(old[c], new[c]) for c in old.dtype.names if c != "program")
        elif name == ONLY_SYMUSIC_READS:
            assert old is None and "truncated" in old_reason and len(new) == 4
        elif name in BOTH_REFUSE_IN_OWN_WORDS:
            assert old is None and new is None and old_reason != new_reason
        else:
            assert new_reason == old_reason, name
            assert old is None or new.tobytes() == old.tobytes(), name
            continue
        differing.add(name)
    assert differing == {PROGRAM_AT_NOTE_OFF, ONLY_SYMUSIC_READS, *BOTH_REFUSE_IN_OWN_WORDS}


@pytest.mark.slow  # parser worker processes; miditoolkit takes ~13 s over POP909
@pytest.mark.shared_data
def test_the_parsers_prepare_identical_pop909_corpora(tmp_path):
    pop909 = require_shared("pop909", "POP909")
    corpora = {
        parser: prepare_corpus(pop909, cache_dir=tmp_path / parser, num_workers=2, progress=False, parser=parser)
        for parser in ("miditoolkit", "symusic")
    }
    old, new = corpora["miditoolkit"], corpora["symusic"]
    assert len(new) == len(old) == 909 and new.names == old.names and not new.skipped
    assert new.notes.tobytes() == old.notes.tobytes() and np.array_equal(new.offsets, old.offsets)
    # The parser is in the cache key: two caches, each reloaded by its own parser.
    assert old.cache_path != new.cache_path and old.cache_path.is_file() and new.cache_path.is_file()
    again = prepare_corpus(pop909, cache_dir=tmp_path / "symusic", num_workers=2, progress=False, parser="symusic")
    assert again.notes.tobytes() == new.notes.tobytes()


@pytest.mark.shared_data
def test_the_parsers_agree_on_pop909_with_the_sustain_pedal():
    files = find_midi_files(require_shared("pop909", "POP909"))[::30]  # 31 files, every thirtieth
    for path in files:
        old, new = (read_midi(path, sustain=True, include_drums=True, parser=p) for p in ("miditoolkit", "symusic"))
        assert new.tobytes() == old.tobytes(), path


def _file_with_a_gap(markers: int, ticks_per_beat: int = 480) -> bytes:
    """A note at tick 0, then `markers` markers each 2^28 - 1 ticks on, then a second note."""
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.Message("note_on", note=60, velocity=64, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=480))
    track.extend(mido.MetaMessage("marker", text="gap", time=0x0FFFFFFF) for _ in range(markers))
    track.append(mido.Message("note_on", note=62, velocity=64, time=0))
    track.append(mido.Message("note_off", note=62, velocity=0, time=480))
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


@pytest.mark.parametrize("markers", [7, 8, 16])
def test_a_file_past_tick_2_31_is_refused_by_symusic_not_wrapped(tmp_path, markers):
    # 16 gaps wrap symusic's int32 ticks round to tick 464: without the guard the second note would be read
    # there, an ordinary-looking piece of two overlapping notes.
    path = tmp_path / "gap.mid"
    path.write_bytes(_file_with_a_gap(markers, ticks_per_beat=30000))
    last_tick = 480 + markers * 0x0FFFFFFF + 480
    assert _latest_event_tick(path.read_bytes()) == last_tick
    notes, reason = _read(path, parser="symusic")
    if last_tick <= INT32_MAX:
        assert reason is None and notes["end_tick"].max() == last_tick
        assert notes.tobytes() == read_midi(path, parser="miditoolkit").tobytes()
    else:
        assert notes is None and "beyond tick 2^31" in reason and "data.parser=miditoolkit" in reason
        roomy = MidiLimits(max_beats=1e6, max_seconds=1e6)  # 16 gaps are 143,000 beats
        assert read_midi(path, parser="miditoolkit", limits=roomy)["end_tick"].max() == last_tick


@pytest.mark.shared_data
def test_the_delta_walk_matches_mido_and_the_bound_holds():
    root = require_shared("midi_fixtures")
    pop909 = find_midi_files(require_shared("pop909", "POP909"))[::90]
    checked = 0
    for path in [*find_midi_files(root), *pop909]:
        data = path.read_bytes()
        if structure_problem(data):
            continue
        try:
            midi = mido.MidiFile(file=io.BytesIO(data))
        except Exception:  # noqa: BLE001 - files mido refuses are symusic's to judge
            continue
        latest = 0
        for track in midi.tracks:
            tick = 0
            for message in track:
                tick += message.time
                if (not message.is_meta and message.type != "sysex") or message.type == "set_tempo":
                    latest = max(latest, tick)
        assert _latest_event_tick(data) == latest, path
        assert _delta_sum_bound(data) >= latest, path
        checked += 1
    assert checked >= 50


def test_an_unknown_parser_is_one_line(tmp_path):
    write_piece(tmp_path / "a.mid", seed=0)
    with pytest.raises(MusicrnnError, match=r"^data.parser='midi2' is not a MIDI parser: choose one of symusic, mi"):
        prepare_corpus(tmp_path, cache_dir=tmp_path / "cache", progress=False, parser="midi2")
