"""LightningDataModules over prepared note corpora: windows of `seq_len + 1` note events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from musicrnn.data.bach_chorales import extract_bach_chorales
from musicrnn.data.base import SequenceDataModule
from musicrnn.data.corpus import DEFAULT_PARSE_TIMEOUT, PreparedCorpus, default_cache_dir, prepare_corpus
from musicrnn.data.split import SPLITS, split_pieces
from musicrnn.errors import MusicrnnError
from musicrnn.midi.parsers import DEFAULT_PARSER
from musicrnn.representations.notes import NUM_PITCHES, PITCH, VELOCITY, NoteEvents, notes_to_events

log = logging.getLogger(__name__)


def window_starts(offsets: np.ndarray, seq_len: int, stride: int) -> np.ndarray:
    """Start index of every window of `seq_len + 1` events lying inside one piece (none crosses two)."""
    starts = [np.arange(a, b - seq_len, stride) for a, b in zip(offsets[:-1], offsets[1:])]
    return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, dtype=np.int64)


class NoteWindowDataset(Dataset):
    """Item i is the window `events[starts[i] : starts[i] + seq_len + 1]`, a (seq_len + 1, features) tensor:
    the model reads rows 0..seq_len-1 and predicts rows 1..seq_len (the next note at every position).

    `transpose` > 0 shifts each window's pitches by a random number of semitones in [-transpose, transpose],
    limited so that no pitch leaves 0..127 (training-time augmentation).
    """

    def __init__(self, events: np.ndarray, starts: np.ndarray, seq_len: int, transpose: int = 0):
        self.events = torch.from_numpy(np.ascontiguousarray(events, dtype=np.float32))
        self.starts = starts
        self.seq_len = seq_len
        self.transpose = transpose

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> torch.Tensor:
        start = int(self.starts[index])
        window = self.events[start : start + self.seq_len + 1]
        if self.transpose:
            pitches = window[:, PITCH]
            low = max(-self.transpose, -int(pitches.min()))
            high = min(self.transpose, NUM_PITCHES - 1 - int(pitches.max()))
            shift = int(torch.randint(low, high + 1, ()))
            if shift:
                window = window.clone()
                window[:, PITCH] += shift
        return window


class NoteSequenceDataModule(SequenceDataModule):
    """Note windows from a folder of MIDI files (recursive, .mid/.midi in any case).

    The corpus is parsed once and cached (see `prepare_corpus`); pieces are split train/val/test by a hash
    of their path (`split_pieces`); each split becomes windows of `seq_len + 1` (pitch, step, duration, and
    with `velocity` the note's MIDI velocity) events taken every `stride` notes (default `seq_len`: every note
    is a target once per epoch). The model config sets `velocity` to the model's (`data.velocity:
    ${model.velocity}`).
    """

    representation_name = NoteEvents.name

    def __init__(
        self,
        path: str | None,
        seq_len: int = 100,
        stride: int | None = None,
        batch_size: int = 64,
        time_unit: str = "seconds",
        transpose: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        include_drums: bool = False,
        programs: Sequence[int] | None = None,
        num_workers: int = 0,
        prepare_workers: int | None = None,
        cache_dir: str | None = None,
        num_primers: int = 8,
        parse_timeout: float | None = DEFAULT_PARSE_TIMEOUT,
        parser: str = DEFAULT_PARSER,
        velocity: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["num_workers", "prepare_workers", "cache_dir", "parse_timeout", "parser"])
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if stride is not None and stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.representation = NoteEvents(time_unit, velocity)  # it checks its settings
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path = path
        self.seq_len = seq_len
        self.stride = stride or seq_len
        self.batch_size = batch_size
        self.time_unit = time_unit
        self.velocity = velocity
        self.transpose = transpose
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.include_drums = include_drums
        self.programs = list(programs) if programs is not None else None
        self.num_workers = num_workers
        self.prepare_workers = prepare_workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.num_primers = num_primers
        self.parser = parser  # reads the MIDI files: symusic, or miditoolkit (see musicrnn.midi.parsers)
        self.parse_timeout = parse_timeout  # seconds one MIDI file may take to parse before it is skipped
        self.corpus: PreparedCorpus | None = None
        self.split_indices: dict[str, np.ndarray] = {}
        self.datasets: dict[str, NoteWindowDataset] = {}
        self._split_events: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    # -- corpus -------------------------------------------------------------------------------------
    def midi_root(self) -> Path:
        """The folder of MIDI files this module reads (subclasses may create it first)."""
        if not self.path:
            raise MusicrnnError("data.path is not set: point it at a folder of MIDI files (data.path=/my/midis)")
        return Path(self.path).expanduser()

    def load_corpus(self) -> PreparedCorpus:
        if self.corpus is None:
            self.corpus = prepare_corpus(
                self.midi_root(),
                cache_dir=self.cache_dir,
                include_drums=self.include_drums,
                programs=self.programs,
                num_workers=self.prepare_workers,
                parse_timeout=self.parse_timeout,
                parser=self.parser,
            )
        return self.corpus

    def prepare_data(self) -> None:
        self.load_corpus()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        corpus = self.load_corpus()
        self.split_indices = split_pieces(corpus.names, self.val_fraction, self.test_fraction)
        for split in SPLITS:
            events, offsets = self.split_events(split)
            starts = window_starts(offsets, self.seq_len, self.stride)
            transpose = self.transpose if split == "train" else 0
            self.datasets[split] = NoteWindowDataset(events, starts, self.seq_len, transpose)
        log.info(
            "windows of %d notes (stride %d): %s",
            self.seq_len + 1,
            self.stride,
            ", ".join(f"{s} {len(self.split_indices[s])} pieces / {len(self.datasets[s])} windows" for s in SPLITS),
        )
        if len(self.datasets["train"]) == 0:
            offsets = self.split_events("train")[1]
            longest = int(np.diff(offsets).max()) if len(offsets) > 1 else 0
            raise MusicrnnError(
                f"data.seq_len={self.seq_len}: no training window, every training piece has fewer than seq_len + 1 = "
                f"{self.seq_len + 1} notes (the longest has {longest}); allowed: data.seq_len <= {max(longest - 1, 0)}"
            )

    def split_events(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(events, offsets) of one split: the pieces' rows (the representation's) back to back. Encoded
        once; setup, the baselines' statistics and the primers all read the same arrays."""
        if split not in self._split_events:
            self._split_events[split] = self._encode_split(split)
        return self._split_events[split]

    def _encode_split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        corpus = self.load_corpus()
        pieces = [self.representation.encode(corpus.piece(i)) for i in self.split_indices[split]]
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
        empty = notes_to_events(corpus.notes[:0], self.time_unit, self.velocity)
        events = np.concatenate(pieces) if pieces else empty
        return events, offsets

    # -- statistics the metrics and generation use --------------------------------------------------
    def train_statistics(self) -> dict[str, np.ndarray | float]:
        """Pitch unigram and bigram counts (pairs of consecutive notes within a piece), the same for MIDI
        velocity (with velocity), and mean step and duration over the training split: what the n-gram
        baselines are fitted on."""
        events, offsets = self.split_events("train")
        pitch = events[:, PITCH].astype(np.int64)
        follows = np.ones(len(pitch), dtype=bool)
        follows[offsets[:-1]] = False  # a piece's first note follows nothing

        def counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            bigrams = np.zeros((NUM_PITCHES, NUM_PITCHES), dtype=np.float64)
            np.add.at(bigrams, (values[:-1][follows[1:]], values[1:][follows[1:]]), 1.0)
            return np.bincount(values, minlength=NUM_PITCHES).astype(np.float64), bigrams

        statistics = dict(zip(("pitch_counts", "bigram_counts"), counts(pitch)))
        statistics.update(step_mean=float(events[:, 1].mean()), duration_mean=float(events[:, 2].mean()))
        if self.velocity:
            velocity = np.clip(events[:, VELOCITY].astype(np.int64), 0, 127)
            statistics.update(zip(("velocity_counts", "velocity_bigram_counts"), counts(velocity)))
        return statistics

    def pieces(self, split: str) -> list[np.ndarray]:
        """The note arrays of one split's pieces (what the evaluation measures generated music against)."""
        self.setup()
        corpus = self.load_corpus()
        return [corpus.piece(i) for i in self.split_indices[split]]

    def primers(self) -> list[np.ndarray]:
        """The first `seq_len` events of up to `num_primers` held-out (test) pieces, for generation."""
        split = "test" if len(self.split_indices.get("test", [])) else "val"
        events, offsets = self.split_events(split)
        return [events[a : min(b, a + self.seq_len)] for a, b in zip(offsets[:-1], offsets[1:])][: self.num_primers]


class BachChoralesDataModule(NoteSequenceDataModule):
    """The default corpus: music21's bundled Bach chorales, written to MIDI under `path` (default: the cache)."""

    def midi_root(self) -> Path:
        root = Path(self.path).expanduser() if self.path else self.cache_dir / "music21_bach_chorales"
        return extract_bach_chorales(root, num_workers=self.prepare_workers)
