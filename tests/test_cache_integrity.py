"""The corpus cache's checksum: a truncated, bit-flipped, extended, foreign or pre-checksum cache file is
detected before anything is read from it, reported in one warning line naming the file and the reason, and
rebuilt (never used); the rebuilt file is intact again."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from musicrnn.data.corpus import CHECKSUM_LENGTH, PreparedCorpus, prepare_corpus
from tests.helpers import write_corpus

FLIPS = 24  # random byte positions per run, besides the chosen ones below


@pytest.fixture
def built(tmp_path) -> tuple[Path, Path, PreparedCorpus, bytes]:
    """A small corpus, its cache folder, the corpus as first prepared, and the cache file's bytes."""
    root = write_corpus(tmp_path / "c", num_pieces=3, num_bars=2)
    cache = tmp_path / "cache"
    corpus = prepare_corpus(root, cache_dir=cache, progress=False)
    return root, cache, corpus, corpus.cache_path.read_bytes()


def _prepare_with_damaged_cache(built, damaged: bytes, caplog) -> tuple[PreparedCorpus, list[str]]:
    root, cache, corpus, _ = built
    corpus.cache_path.write_bytes(damaged)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="musicrnn"):
        again = prepare_corpus(root, cache_dir=cache, progress=False)
    return again, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _assert_rebuilt(built, again: PreparedCorpus, warnings: list[str], reason: str) -> None:
    root, cache, corpus, _ = built
    assert not again.from_cache, "a damaged cache was used"
    assert again.names == corpus.names and again.notes.tobytes() == corpus.notes.tobytes()
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert str(corpus.cache_path) in warnings[0] and reason in warnings[0] and "rebuilding" in warnings[0]
    assert prepare_corpus(root, cache_dir=cache, progress=False).from_cache  # the rebuilt file is intact


def _flip(data: bytes, position: int) -> bytes:
    return data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1 :]


def test_a_cache_is_a_plain_npz_ending_with_its_checksum(built):
    _, _, corpus, pristine = built
    assert all(chr(c) in "0123456789abcdef" for c in pristine[-CHECKSUM_LENGTH:])
    with np.load(corpus.cache_path) as data:  # the checksum is the zip's comment: any npz reader copes
        assert data["notes"].tobytes() == corpus.notes.tobytes()


@pytest.mark.parametrize("keep", ["0", "1", "100", "half", "all-but-checksum", "all-but-one"])
def test_a_truncated_cache_is_rebuilt(built, caplog, keep):
    pristine = built[3]
    length = {
        "half": len(pristine) // 2,
        "all-but-checksum": len(pristine) - CHECKSUM_LENGTH,
        "all-but-one": len(pristine) - 1,
    }.get(keep) or int(keep)
    again, warnings = _prepare_with_damaged_cache(built, pristine[:length], caplog)
    reason = "truncated" if length <= CHECKSUM_LENGTH else "checksum"
    _assert_rebuilt(built, again, warnings, reason)


def test_a_flipped_bit_anywhere_in_the_cache_is_caught(built, caplog):
    """Chosen places (the zip signature, a member's timestamp, which no zip reader checks, the array data,
    the central directory, the checksum itself) and random ones."""
    pristine = built[3]
    data_at = pristine.index(b"NUMPY") + 200  # inside the first array's bytes
    chosen = [0, 10, data_at, len(pristine) - CHECKSUM_LENGTH - 30, len(pristine) - CHECKSUM_LENGTH, len(pristine) - 1]
    positions = chosen + sorted(np.random.default_rng(0).choice(len(pristine), FLIPS, replace=False).tolist())
    for position in positions:
        again, warnings = _prepare_with_damaged_cache(built, _flip(pristine, position), caplog)
        _assert_rebuilt(built, again, warnings, "checksum")


def test_bytes_appended_to_the_cache_are_caught(built, caplog):
    again, warnings = _prepare_with_damaged_cache(built, built[3] + b"appended", caplog)
    _assert_rebuilt(built, again, warnings, "no checksum at its end")


def test_a_cache_from_before_checksums_is_rebuilt_in_place(built, caplog):
    _, _, corpus, _ = built
    with open(corpus.cache_path, "wb") as f:  # what musicrnn wrote before: the same arrays, no checksum
        np.savez(
            f,
            notes=corpus.notes,
            offsets=corpus.offsets,
            names=np.array(corpus.names),
            skipped_names=np.array([], dtype=str),
            skipped_reasons=np.array([], dtype=str),
        )
    again, warnings = _prepare_with_damaged_cache(built, corpus.cache_path.read_bytes(), caplog)
    _assert_rebuilt(built, again, warnings, "written before caches had checksums")
    assert again.cache_path == corpus.cache_path  # same key, same file: nothing left behind


def test_an_intact_cache_of_another_corpus_is_not_taken_for_this_one(built, tmp_path, caplog):
    other = write_corpus(tmp_path / "other", num_pieces=2, num_bars=1)
    foreign = prepare_corpus(other, cache_dir=tmp_path / "other_cache", progress=False).cache_path
    shutil.copyfile(foreign, built[2].cache_path)
    again, warnings = _prepare_with_damaged_cache(built, built[2].cache_path.read_bytes(), caplog)
    _assert_rebuilt(built, again, warnings, "built for another folder or settings")
