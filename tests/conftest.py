"""Fixtures: every test's own corpus cache, and small real MIDI corpora written with miditoolkit. The helpers
that test modules share live in tests/helpers.py."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from tests.helpers import write_corpus


def pytest_collection_finish(session):
    """Move what collection imported (torch, Lightning, Hydra, Numba: millions of objects) out of the garbage
    collector's reach: its full collections, triggered by the many small objects Hydra's composes allocate,
    otherwise walk all of them each time (~10% of the quick suite's time)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own corpus cache, so no test sees another's (or the user's) cache."""
    monkeypatch.setenv("MUSICRNN_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def session_corpus(tmp_path_factory) -> Path:
    """A corpus shared by the CLI tests (written once per session)."""
    return write_corpus(tmp_path_factory.mktemp("session") / "corpus", num_pieces=24, num_bars=8)
