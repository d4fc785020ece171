"""Deterministic train/val/test split by piece.

Each piece's split comes from a hash of its name alone, so adding or removing other files never moves a
piece from one split to another (a test piece stays a test piece as the corpus grows).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def _unit_hash(name: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_pieces(
    names: Sequence[str], val_fraction: float = 0.1, test_fraction: float = 0.1, salt: str = "musicrnn"
) -> dict[str, np.ndarray]:
    """Indices of the pieces in each split: a piece goes to test when its hash is below `test_fraction`,
    to val when below `test_fraction + val_fraction`, else to train.

    A corpus too small for hashing to fill val and test (fewer than ~20 pieces) borrows, for each empty
    split, the train piece whose hash is closest to that split's range, with a warning: a stable choice,
    and one that stops applying as soon as the corpus is large enough.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 <= val_fraction, test_fraction and their sum < 1; got {val_fraction}, {test_fraction}"
        )
    u = np.array([_unit_hash(n, salt) for n in names])
    split = np.full(len(names), 0)
    split[u < test_fraction + val_fraction] = 1
    split[u < test_fraction] = 2
    for code, fraction in ((2, test_fraction), (1, val_fraction)):
        if fraction > 0 and not np.any(split == code) and np.sum(split == 0) > 1:
            train = np.flatnonzero(split == 0)
            borrowed = train[np.argmin(u[train])]
            split[borrowed] = code
            log.warning(
                "corpus of %d pieces is too small for a hashed %s split; using %s",
                len(names),
                SPLITS[code],
                names[borrowed],
            )
    return {name: np.flatnonzero(split == code) for code, name in enumerate(SPLITS)}
