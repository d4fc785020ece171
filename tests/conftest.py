"""Shared fixtures: small real MIDI corpora written with miditoolkit, and the shared datasets."""

from __future__ import annotations

import os
from pathlib import Path

import miditoolkit
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """`$MUSICRNN_SHARED_DATA`, else ../shared/data beside the checkout; None when neither exists."""
    candidate = Path(os.environ.get("MUSICRNN_SHARED_DATA", REPO.parent / "shared" / "data"))
    return candidate if candidate.is_dir() else None


def require_shared(*parts: str) -> Path:
    base = shared_data_dir()
    if base is None or not base.joinpath(*parts).exists():
        pytest.skip(f"shared dataset {'/'.join(parts)} not found: set MUSICRNN_SHARED_DATA to the shared/data folder")
    return base.joinpath(*parts)


def write_piece(
    path: Path,
    seed: int,
    num_bars: int = 16,
    *,
    ticks_per_beat: int = 480,
    tempo_change: bool = True,
    with_drums: bool = True,
) -> Path:
    """A small, real two-hand piece: an eighth-note melody over quarter-note triads, an optional tempo
    change half-way (so seconds and beats differ non-trivially), and an optional drum track."""
    rng = np.random.default_rng(seed)
    midi = miditoolkit.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tempo_changes = [miditoolkit.TempoChange(100.0 + 10 * (seed % 5), 0)]
    if tempo_change:
        midi.tempo_changes.append(miditoolkit.TempoChange(140.0, num_bars * 2 * ticks_per_beat))
    melody = miditoolkit.Instrument(program=0, name="melody")
    chords = miditoolkit.Instrument(program=0, name="chords")
    drums = miditoolkit.Instrument(program=0, is_drum=True, name="drums")
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    key = 60 + int(rng.integers(-5, 6))
    degree = 7
    eighth = ticks_per_beat // 2
    for bar in range(num_bars):
        root = int(rng.choice([0, 3, 4, 5]))
        for beat in range(4):
            tick = (bar * 4 + beat) * ticks_per_beat
            for offset in (0, 2, 4):  # a triad on every beat
                pitch = key - 12 + scale[(root + offset) % 7] + 12 * ((root + offset) // 7)
                chords.notes.append(miditoolkit.Note(70, int(pitch), tick, tick + ticks_per_beat - 10))
            for half in range(2):
                degree = int(np.clip(degree + rng.integers(-2, 3), 0, 13))
                pitch = key + scale[degree % 7] + 12 * (degree // 7)
                start = tick + half * eighth
                melody.notes.append(miditoolkit.Note(90, int(pitch), start, start + eighth))
            drums.notes.append(miditoolkit.Note(100, 36 if beat % 2 == 0 else 38, tick, tick + 60))
    midi.instruments = [melody, chords] + ([drums] if with_drums else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.dump(str(path))
    return path


def write_corpus(root: Path, num_pieces: int = 24, num_bars: int = 8) -> Path:
    """`num_pieces` pieces in nested folders with mixed-case .mid/.midi suffixes."""
    suffixes = [".mid", ".MID", ".midi", ".Midi"]
    for i in range(num_pieces):
        folder = root / f"set{i % 3}" / ("deep" if i % 4 == 0 else "")
        write_piece(folder / f"piece{i:03d}{suffixes[i % len(suffixes)]}", seed=i, num_bars=num_bars)
    return root


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
