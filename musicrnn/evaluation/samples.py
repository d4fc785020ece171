"""Generated MIDI files back into note arrays, for measuring them."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from musicrnn.errors import MidiReadError, one_line
from musicrnn.midi.io import read_midi

log = logging.getLogger(__name__)


def read_samples(paths: list[Path], level: int = logging.WARNING) -> tuple[list[Path], list[np.ndarray]]:
    """(the files that have notes, their note arrays). A sample without notes (a piano-roll sample that
    stayed silent) is left out with a log line at `level`."""
    kept, pieces = [], []
    for path in paths:
        try:
            pieces.append(read_midi(path))
            kept.append(path)
        except MidiReadError as error:
            log.log(level, "sample left out of the measures: %s", one_line(error))
    return kept, pieces
