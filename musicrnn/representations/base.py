"""The representation seam: how MIDI notes become the tensors a model reads and writes, and back.

Everything above this layer (data modules, the LightningModule, generation, evaluation, the CLIs) talks to
a representation through this protocol and never asks which one it is, so a new representation is one new
module here plus its data module, a model builder and configs (a new name for its generated length, beside
num_notes and num_frames, is also a key of the generation configs: docs/development.md). The two today: `NoteEvents` (pitch, step, duration rows, the
seed paper's) and `PianoRoll` (binary frames on a beat grid, the polyphonic benchmarks').
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Representation(Protocol):
    #: what the representation is called in checkpoints, configs and messages ("notes", "pianoroll")
    name: str
    #: the generation setting that counts generated steps ("num_notes", "num_frames") and the primer's
    length_setting: str
    primer_setting: str
    #: what one generated step is, what the data are, what a model of them is, for messages
    #: ("notes", "notes", "note"; "frames", "piano rolls", "piano-roll")
    step_noun: str
    data_noun: str
    model_noun: str

    def encode(self, notes: np.ndarray) -> np.ndarray:
        """A note array (musicrnn.midi.io.NOTE_DTYPE) -> (steps, features) float32 rows."""

    def decode(self, steps: np.ndarray) -> np.ndarray:
        """(steps, features) rows -> a note array."""

    def primer_from_midi(self, path: str | os.PathLike, length: int) -> np.ndarray:
        """The last `length` steps of a MIDI file (all of it for 0), in the dtype `as_primer` gives."""

    def as_primer(self, steps: Any) -> np.ndarray:
        """A stored primer (a tensor or array) as the array generation reads."""

    def write_midi(self, steps: np.ndarray, path: str | os.PathLike, primer: np.ndarray | None = None) -> Path:
        """Write generated steps (after `primer`, when given) as a MIDI file."""

    def settings(self) -> dict[str, Any]:
        """The settings that fix what the tensors mean: stored in checkpoints, shared by ensemble members,
        matched against the data a checkpoint is tested on."""

    def cut_like_samples(self, pieces: list[np.ndarray], samples: list[np.ndarray], length: int) -> tuple[list, str]:
        """Real pieces cut to the generated samples' length (`length` steps were asked for), so that counts
        and ranges compare like with like; and a description of the cut for the report."""
