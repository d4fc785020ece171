"""Fixtures: every test's own corpus cache, and small real MIDI corpora written with miditoolkit. The helpers
that test modules share live in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_corpus


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
