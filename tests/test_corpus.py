from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from conftest import require_shared, write_corpus
from musicrnn.data import corpus as corpus_module
from musicrnn.data.corpus import prepare_corpus
from musicrnn.errors import MusicrnnError


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


@pytest.mark.shared_data
def test_fixture_folder_prepares_with_workers_and_skips_the_broken(tmp_path):
    root = require_shared("midi_fixtures")
    corpus = prepare_corpus(root, cache_dir=tmp_path / "cache", num_workers=2)
    skipped = {name.rsplit("/", 1)[-1] for name, _ in corpus.skipped}
    assert "test-empty-file.mid" in skipped and "test-not-a-midi-file.mid" in skipped
    assert len(corpus) + len(corpus.skipped) == 51 and len(corpus) >= 35


@pytest.mark.shared_data
def test_pop909_prepares_in_worker_processes(tmp_path):
    root = require_shared("pop909", "POP909")
    corpus = prepare_corpus(root, cache_dir=tmp_path / "cache", num_workers=2)
    assert len(corpus) == 909 and not corpus.skipped
    assert set(np.unique(corpus.notes["program"])) <= set(range(128))
    cached = prepare_corpus(root, cache_dir=tmp_path / "cache")
    assert cached.from_cache and len(cached.notes) == len(corpus.notes)
