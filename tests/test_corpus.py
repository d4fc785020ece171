from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest

from musicrnn.data import corpus as corpus_module
from musicrnn.data.corpus import prepare_corpus
from musicrnn.errors import MusicrnnError
from musicrnn.midi.io import MidiLimits, find_midi_files, read_midi_or_reason
from tests.helpers import require_shared, write_corpus, write_piece


def test_bad_files_are_skipped_with_one_warning_each_and_a_summary(tmp_path, caplog):
    root = write_corpus(tmp_path / "c", num_pieces=4)
    (root / "empty.mid").write_bytes(b"")
    (root / "garbage.MID").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")  # a truncated header
    with caplog.at_level(logging.INFO, logger="musicrnn"):
        corpus = prepare_corpus(root, cache_dir=tmp_path / "cache")
    assert len(corpus) == 4
    assert sorted(name for name, _ in corpus.skipped) == ["empty.mid", "garbage.MID"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert any("empty.mid" in w and "empty file" in w for w in warnings)
    assert any("prepared 4 of 6 MIDI files" in r.getMessage() and "skipped 2" in r.getMessage() for r in caplog.records)


def test_pieces_are_flat_arrays_with_offsets(tiny_corpus, tmp_path):
    corpus = prepare_corpus(tiny_corpus, cache_dir=tmp_path / "cache")
    assert len(corpus) == 24 and corpus.offsets[0] == 0 and corpus.offsets[-1] == len(corpus.notes)
    assert all(len(corpus.piece(i)) == 8 * 4 * 5 for i in range(len(corpus)))  # triads + 2 melody notes a beat
    assert "set0/deep/piece000.mid" in corpus.names and "set1/piece001.MID" in corpus.names


def test_second_run_loads_the_cache_without_parsing(tiny_corpus, tmp_path, monkeypatch):
    first = prepare_corpus(tiny_corpus, cache_dir=tmp_path / "cache")
    assert not first.from_cache and first.cache_path.exists()

    def fail(*args, **kwargs):
        raise AssertionError("parsed although the cache is valid")

    monkeypatch.setattr(corpus_module, "read_midi_or_reason", fail)
    second = prepare_corpus(tiny_corpus, cache_dir=tmp_path / "cache")
    assert second.from_cache and second.names == first.names
    assert np.array_equal(second.notes, first.notes) and np.array_equal(second.offsets, first.offsets)


def test_changed_file_or_setting_rebuilds(tiny_corpus, tmp_path):
    cache = tmp_path / "cache"
    first = prepare_corpus(tiny_corpus, cache_dir=cache)
    with_drums = prepare_corpus(tiny_corpus, cache_dir=cache, include_drums=True)
    assert not with_drums.from_cache and len(with_drums.notes) > len(first.notes)

    victim = tiny_corpus / first.names[0]
    stat = victim.stat()
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    rebuilt = prepare_corpus(tiny_corpus, cache_dir=cache)
    assert not rebuilt.from_cache and rebuilt.cache_path != first.cache_path

    (tiny_corpus / first.names[1]).unlink()
    assert len(prepare_corpus(tiny_corpus, cache_dir=cache)) == 23


def test_a_damaged_cache_is_rebuilt(tiny_corpus, tmp_path):
    first = prepare_corpus(tiny_corpus, cache_dir=tmp_path / "cache")
    first.cache_path.write_bytes(b"not an npz")
    again = prepare_corpus(tiny_corpus, cache_dir=tmp_path / "cache")
    assert not again.from_cache and len(again) == len(first)


def test_no_usable_file_fails_with_a_clear_message(tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "bad.mid").write_text("nope")
    with pytest.raises(MusicrnnError, match="no usable MIDI file under .*only: all 1 skipped"):
        prepare_corpus(tmp_path / "only", cache_dir=tmp_path / "cache")
    (tmp_path / "no_midi").mkdir()
    (tmp_path / "no_midi" / "readme.txt").write_text("no music here")
    with pytest.raises(MusicrnnError, match="no MIDI files"):
        prepare_corpus(tmp_path / "no_midi", cache_dir=tmp_path / "cache")
    with pytest.raises(MusicrnnError, match="MIDI folder not found"):
        prepare_corpus(tmp_path / "missing", cache_dir=tmp_path / "cache")


@pytest.mark.slow  # parser worker processes
@pytest.mark.shared_data
def test_fixture_folder_prepares_with_workers_and_skips_the_broken(tmp_path):
    root = require_shared("midi_fixtures")
    corpus = prepare_corpus(root, cache_dir=tmp_path / "cache", num_workers=2)
    skipped = {name.rsplit("/", 1)[-1] for name, _ in corpus.skipped}
    assert "test-empty-file.mid" in skipped and "test-not-a-midi-file.mid" in skipped
    assert len(corpus) + len(corpus.skipped) == len(find_midi_files(root)) and len(corpus) >= 35


@pytest.mark.slow  # parser worker processes
@pytest.mark.shared_data
def test_pop909_prepares_in_worker_processes(tmp_path):
    root = require_shared("pop909", "POP909")
    corpus = prepare_corpus(root, cache_dir=tmp_path / "cache", num_workers=2)
    assert len(corpus) == 909 and not corpus.skipped
    assert set(np.unique(corpus.notes["program"])) <= set(range(128))
    cached = prepare_corpus(root, cache_dir=tmp_path / "cache")
    assert cached.from_cache and len(cached.notes) == len(corpus.notes)


# -- the parser processes: time limit, crashes, memory limit ---------------------------------------------
def _parse_with(misbehaviour: Callable[[str], None]):
    """The real parser, but first `misbehaviour(path)` (a hang, a crash, a huge allocation) for chosen files.
    Worker processes fork, so they run this very function."""

    def parse(job):
        misbehaviour(job[0])
        return read_midi_or_reason(job)

    return parse


def _hang_on_slow(path: str) -> None:
    if "slow" in os.path.basename(path):
        time.sleep(600)


def _die_on_crash(path: str) -> None:
    if "crash" in os.path.basename(path):
        os.kill(os.getpid(), signal.SIGKILL)


def _grab_on_greedy(path: str) -> None:
    if "greedy" in os.path.basename(path):
        bytearray(4 << 30)  # 4 GiB


@pytest.mark.slow  # worker processes, each cut at its time limit
@pytest.mark.parametrize("workers", [1, 2])
def test_files_over_the_time_limit_are_skipped_and_the_rest_is_unchanged(tmp_path, monkeypatch, workers):
    root = write_corpus(tmp_path / "c", num_pieces=8, num_bars=2)
    reference = prepare_corpus(root, cache_dir=tmp_path / "reference", progress=False)
    write_piece(root / "slow_a.mid", seed=1, num_bars=2)
    write_piece(root / "set1" / "slow_b.mid", seed=2, num_bars=2)
    monkeypatch.setattr(corpus_module, "read_midi_or_reason", _parse_with(_hang_on_slow))
    monkeypatch.setattr(corpus_module, "MIN_FILES_FOR_WORKERS", 1)  # so that 2 means two processes
    started = time.monotonic()
    corpus = prepare_corpus(root, cache_dir=tmp_path / "cache", parse_timeout=1.0, num_workers=workers, progress=False)
    assert time.monotonic() - started < 15  # two 1 s cuts, not two 600 s sleeps
    assert sorted(corpus.skipped) == [
        ("set1/slow_b.mid", "took longer than 1 s to parse"),
        ("slow_a.mid", "took longer than 1 s to parse"),
    ]
    assert corpus.names == reference.names and corpus.notes.tobytes() == reference.notes.tobytes()


def test_a_crashing_parser_process_costs_only_its_file(tmp_path, monkeypatch):
    root = write_corpus(tmp_path / "c", num_pieces=6, num_bars=2)
    write_piece(root / "crash.mid", seed=1, num_bars=2)
    monkeypatch.setattr(corpus_module, "read_midi_or_reason", _parse_with(_die_on_crash))
    corpus = prepare_corpus(root, cache_dir=tmp_path / "cache", progress=False)
    assert len(corpus) == 6
    assert corpus.skipped == [("crash.mid", "the parser process died while parsing it (killed by SIGKILL)")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parser's memory limit is Linux's RLIMIT_AS")
def test_a_file_needing_too_much_memory_is_skipped(tmp_path, monkeypatch):
    root = write_corpus(tmp_path / "c", num_pieces=4, num_bars=2)
    write_piece(root / "greedy.mid", seed=1, num_bars=2)
    monkeypatch.setattr(corpus_module, "read_midi_or_reason", _parse_with(_grab_on_greedy))
    monkeypatch.setattr(corpus_module, "PARSER_MEMORY_MB", 256)
    corpus = prepare_corpus(root, cache_dir=tmp_path / "cache", progress=False)
    assert len(corpus) == 4 and corpus.skipped == [("greedy.mid", "needed more than 256 MB of memory to parse")]


def test_without_a_time_limit_a_small_folder_parses_in_this_process(tiny_corpus, tmp_path, monkeypatch):
    reference = prepare_corpus(tiny_corpus, cache_dir=tmp_path / "reference", progress=False)

    def no_workers(*args, **kwargs):
        raise AssertionError("started a worker process although parse_timeout is None")

    monkeypatch.setattr(corpus_module, "_ParserPool", no_workers)
    corpus = prepare_corpus(
        tiny_corpus, cache_dir=tmp_path / "cache", parse_timeout=None, num_workers=1, progress=False
    )
    assert corpus.names == reference.names and corpus.notes.tobytes() == reference.notes.tobytes()
    with pytest.raises(ValueError, match="parse_timeout must be a positive number"):
        prepare_corpus(tiny_corpus, cache_dir=tmp_path / "cache", parse_timeout=0)


def test_limits_and_time_limit_key_the_cache_only_when_changed(tiny_corpus, tmp_path):
    cache = tmp_path / "cache"
    default = prepare_corpus(tiny_corpus, cache_dir=cache, progress=False)
    same = prepare_corpus(tiny_corpus, cache_dir=cache, limits=MidiLimits(), parse_timeout=60.0, progress=False)
    assert same.from_cache and same.cache_path == default.cache_path
    strict = prepare_corpus(tiny_corpus, cache_dir=cache, limits=MidiLimits(max_notes=1000), progress=False)
    assert not strict.from_cache and strict.cache_path != default.cache_path
    assert strict.notes.tobytes() == default.notes.tobytes()  # 160 notes a piece: under either limit
    longer = prepare_corpus(tiny_corpus, cache_dir=cache, parse_timeout=120, progress=False)
    assert not longer.from_cache and longer.cache_path not in (default.cache_path, strict.cache_path)
