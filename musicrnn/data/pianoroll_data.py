"""LightningDataModules over piano rolls: the Boulanger-Lewandowski benchmark pickles, and MIDI folders.

An item is a piece's roll, or a window of `seq_len + 1` frames of it: the model reads frames 0..L-2 and
predicts frames 1..L-1. Windows of one piece overlap by one frame, so every frame but a piece's first is a
target exactly once per epoch (the first has no context; locuslab/TCN's evaluation skips it the same way).
Batches are padded to their longest item and carry the lengths, so the loss counts real frames only.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from musicrnn.data.base import SequenceDataModule
from musicrnn.data.corpus import DEFAULT_PARSE_TIMEOUT, PreparedCorpus, default_cache_dir, prepare_corpus
from musicrnn.data.split import SPLITS, split_pieces
from musicrnn.errors import MusicrnnError
from musicrnn.midi.parsers import DEFAULT_PARSER
from musicrnn.representations.pianoroll import (
    PIANO_KEYS,
    PIANO_LOWEST_PITCH,
    PianoRoll,
    notes_to_pianoroll,
    pianoroll_to_notes,
    pitch_lists_to_pianoroll,
)

log = logging.getLogger(__name__)

PICKLE_SPLITS = {"train": "train", "val": "valid", "test": "test"}  # our split name -> the pickle's key
# The longest roll built from a MIDI piece: 25,000 beats (3.5 hours at 120 bpm) at 4 steps per quarter, 35 MB
# as the float32 tensor a dataset keeps. POP909's longest song needs 3,141 frames.
DEFAULT_MAX_FRAMES = 100_000


def load_pianoroll_pickle(
    path: str | Path, lowest_pitch: int = PIANO_LOWEST_PITCH, num_keys: int = PIANO_KEYS
) -> dict[str, list[np.ndarray]]:
    """Read a benchmark pickle (a dict with 'train', 'valid', 'test', each a list of pieces, each a list of
    frames, each a list of MIDI pitches) into rolls per split ('train', 'val', 'test'). Errors are one
    line naming the file and what is wrong with it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MusicrnnError(f"piano-roll pickle {path}: file not found")
    try:
        with open(path, "rb") as f:
            # The benchmark files were written by Python 2; latin1 reads their byte strings unchanged.
            data = pickle.load(f, encoding="latin1")
    except Exception as error:
        raise MusicrnnError(f"piano-roll pickle {path}: cannot be read ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict) or not all(key in data for key in PICKLE_SPLITS.values()):
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise MusicrnnError(
            f"piano-roll pickle {path}: expected a dict with keys 'train', 'valid', 'test', found {found}"
        )
    rolls = {}
    for split, key in PICKLE_SPLITS.items():
        try:
            rolls[split] = [pitch_lists_to_pianoroll(piece, lowest_pitch, num_keys) for piece in data[key]]
        except (TypeError, ValueError) as error:
            raise MusicrnnError(f"piano-roll pickle {path}: split '{key}': {error}") from None
    return rolls


class PianoRollDataset(Dataset):
    """Items are `(roll window, length)` pairs: whole pieces (`seq_len=None`) or windows of `seq_len + 1`
    frames overlapping by one. `transpose` > 0 shifts each training item by a random number of keys in
    [-transpose, transpose], never moving an active key off the roll."""

    def __init__(self, rolls: Sequence[np.ndarray], seq_len: int | None = None, transpose: int = 0):
        self.rolls = [torch.from_numpy(np.asarray(r, dtype=np.float32)) for r in rolls]
        self.transpose = transpose
        self.items: list[tuple[int, int, int]] = []  # (piece, first frame, end frame)
        for i, roll in enumerate(self.rolls):
            n = len(roll)
            if n < 2:
                continue  # nothing to predict
            if seq_len is None:
                self.items.append((i, 0, n))
            else:
                self.items.extend((i, a, min(a + seq_len + 1, n)) for a in range(0, n - 1, seq_len))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        piece, start, end = self.items[index]
        window = self.rolls[piece][start:end]
        if self.transpose:
            active = torch.nonzero(window.any(dim=0)).flatten()
            if len(active):
                low = max(-self.transpose, -int(active.min()))
                high = min(self.transpose, window.shape[1] - 1 - int(active.max()))
                shift = int(torch.randint(low, high + 1, ()))
                if shift:
                    window = torch.roll(window, shift, dims=1)  # nothing wraps: the bounds above keep it inside
        return window

    def frames(self) -> int:
        """Target frames per epoch: every frame of every item but its first."""
        return sum(end - start - 1 for _, start, end in self.items)


def pad_rolls(batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, longest, keys) rolls padded with silence, and each item's length."""
    lengths = torch.tensor([len(item) for item in batch], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(batch, batch_first=True), lengths


class PianoRollDataModule(SequenceDataModule):
    """Base: subclasses provide `load_rolls()` -> {'train', 'val', 'test'} -> list of (frames, keys) rolls."""

    representation_name = PianoRoll.name

    def __init__(
        self,
        seq_len: int | None = None,
        batch_size: int = 16,
        transpose: int = 0,
        lowest_pitch: int = PIANO_LOWEST_PITCH,
        num_keys: int = PIANO_KEYS,
        steps_per_quarter: int = 1,
        num_workers: int = 0,
        num_primers: int = 8,
        primer_frames: int = 16,
    ):
        super().__init__()
        if seq_len is not None and seq_len < 1:
            raise ValueError(f"seq_len must be >= 1 or null (whole pieces), got {seq_len}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        PianoRoll(steps_per_quarter, lowest_pitch, num_keys)  # the representation checks its settings
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.transpose = transpose
        self.lowest_pitch = lowest_pitch
        self.num_keys = num_keys
        self.steps_per_quarter = steps_per_quarter
        self.num_workers = num_workers
        self.num_primers = num_primers
        self.primer_frames = primer_frames
        self.rolls: dict[str, list[np.ndarray]] = {}
        self.datasets: dict[str, PianoRollDataset] = {}

    collate_fn = staticmethod(pad_rolls)

    def load_rolls(self) -> dict[str, list[np.ndarray]]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.rolls = self.load_rolls()
        for split in SPLITS:
            transpose = self.transpose if split == "train" else 0
            self.datasets[split] = PianoRollDataset(self.rolls[split], self.seq_len, transpose)
        log.info(
            "piano rolls (%d keys from MIDI %d, %s): %s",
            self.num_keys,
            self.lowest_pitch,
            "whole pieces" if self.seq_len is None else f"windows of {self.seq_len + 1} frames",
            ", ".join(f"{s} {len(self.rolls[s])} pieces / {self.datasets[s].frames()} target frames" for s in SPLITS),
        )
        if len(self.datasets["train"]) == 0:
            raise MusicrnnError("no training piece has two or more frames: nothing to learn from")

    def key_frequencies(self) -> np.ndarray:
        """How often each key is on in the training split's target frames (the independent-keys baseline)."""
        frames = [roll[1:] for roll in self.rolls["train"] if len(roll) > 1]
        return np.concatenate(frames).mean(axis=0) if frames else np.zeros(self.num_keys)

    def pieces(self, split: str) -> list[np.ndarray]:
        """The note arrays of one split's rolls (one held note per run of active frames), on the grid's beats."""
        self.setup()
        return [
            pianoroll_to_notes(roll, self.steps_per_quarter, self.lowest_pitch)
            for roll in self.rolls[split]
            if np.any(roll)
        ]

    def primers(self) -> list[np.ndarray]:
        """The first `primer_frames` frames of up to `num_primers` held-out (test) pieces, for generation."""
        pieces = self.rolls.get("test") or self.rolls.get("val") or []
        return [roll[: self.primer_frames] for roll in pieces[: self.num_primers]]


class PianoRollPickleDataModule(PianoRollDataModule):
    """A benchmark pickle in the Boulanger-Lewandowski format, with its own train/valid/test split."""

    def __init__(self, path: str, **kwargs):
        super().__init__(**kwargs)
        self.save_hyperparameters(ignore=["num_workers"])
        self.path = path

    def load_rolls(self) -> dict[str, list[np.ndarray]]:
        return load_pianoroll_pickle(self.path, self.lowest_pitch, self.num_keys)


class PianoRollMidiDataModule(PianoRollDataModule):
    """Piano rolls from a folder of MIDI files (parsed once and cached, split by a hash of each path, as
    for the note model), on a grid of `steps_per_quarter` frames per quarter note. A piece whose roll would
    be longer than `max_frames` is skipped with a warning (and listed in `skipped_rolls`) before its roll is
    allocated; `parse_timeout` is the seconds one file may take to parse (see `prepare_corpus`)."""

    def __init__(
        self,
        path: str | None,
        sustain: bool = False,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        include_drums: bool = False,
        programs: Sequence[int] | None = None,
        prepare_workers: int | None = None,
        cache_dir: str | None = None,
        parse_timeout: float | None = DEFAULT_PARSE_TIMEOUT,
        parser: str = DEFAULT_PARSER,
        max_frames: int | None = DEFAULT_MAX_FRAMES,
        **kwargs,
    ):
        kwargs.setdefault("steps_per_quarter", 4)
        super().__init__(**kwargs)
        self.save_hyperparameters(ignore=["num_workers", "prepare_workers", "cache_dir", "parse_timeout", "parser"])
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or null (no limit), got {max_frames}")
        self.path = path
        self.sustain = sustain
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.include_drums = include_drums
        self.programs = list(programs) if programs is not None else None
        self.prepare_workers = prepare_workers
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.parser = parser  # reads the MIDI files: symusic, or miditoolkit (see musicrnn.midi.parsers)
        self.parse_timeout = parse_timeout
        self.max_frames = max_frames
        self.skipped_rolls: list[tuple[str, str]] = []  # (piece, reason) for pieces with no roll

    def load_rolls(self) -> dict[str, list[np.ndarray]]:
        if not self.path:
            raise MusicrnnError("data.path is not set: point it at a folder of MIDI files (data.path=/my/midis)")
        corpus = prepare_corpus(
            Path(self.path).expanduser(),
            cache_dir=self.cache_dir,
            include_drums=self.include_drums,
            programs=self.programs,
            sustain=self.sustain,
            num_workers=self.prepare_workers,
            parse_timeout=self.parse_timeout,
            parser=self.parser,
        )
        indices = split_pieces(corpus.names, self.val_fraction, self.test_fraction)
        self.skipped_rolls = []
        return {split: self._rolls(corpus, indices[split]) for split in SPLITS}

    def _rolls(self, corpus: PreparedCorpus, indices: Sequence[int]) -> list[np.ndarray]:
        """The rolls of these pieces, leaving out (with one warning each) those over `max_frames`."""
        rolls = []
        for i in indices:
            try:
                rolls.append(
                    notes_to_pianoroll(
                        corpus.piece(i),
                        self.steps_per_quarter,
                        self.lowest_pitch,
                        self.num_keys,
                        max_frames=self.max_frames,
                    )
                )
            except ValueError as error:
                reason = f"{error} (data.max_frames; steps_per_quarter={self.steps_per_quarter})"
                log.warning("skipped %s for piano rolls: %s", corpus.names[i], reason)
                self.skipped_rolls.append((corpus.names[i], reason))
        return rolls
