"""Novelty of generated pieces against a training corpus, and copy detection.

Novelty (the seed paper's "cosine similarity of generated vs training feature vectors", made precise):
each piece becomes `novelty_features` (its pitch, pitch-class, interval, step and duration histograms);
a generated piece's similarity is the cosine similarity to its *nearest* training piece; novelty = 1 -
similarity. A training piece measured against its own corpus has similarity 1 and novelty 0.

Histograms cannot see copying (a verbatim copy and a shuffled one have the same histograms), so copying is
measured separately on n-grams of (pitch, step quantised to 1/12 beat), n = 8: the share of a generated
piece's n-grams that occur anywhere in the training set, and the longest run of consecutive notes covered
by copied n-grams.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from musicrnn.evaluation.features import novelty_features, ordered

NGRAM = 8
STEP_TICKS_PER_BEAT = 12  # quantises steps to sixteenths and eighth-note triplets alike


def feature_matrix(pieces: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([novelty_features(p) for p in pieces]) if pieces else np.zeros((0, 193))


def nearest_similarity(generated: np.ndarray, training: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `generated` (features), the cosine similarity to the most similar row of
    `training`, and that row's index."""

    def unit(rows: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms > 0, norms, 1.0)

    similarity = unit(generated) @ unit(training).T
    nearest = similarity.argmax(axis=1)
    return np.clip(similarity[np.arange(len(generated)), nearest], -1.0, 1.0), nearest


def note_tokens(notes: np.ndarray) -> np.ndarray:
    """One integer per note: pitch and the step to it (beats, quantised to 1/12, capped at 16 beats)."""
    notes = ordered(notes)
    step = np.diff(notes["start_beat"], prepend=notes["start_beat"][:1])
    step_ticks = np.clip(np.rint(step * STEP_TICKS_PER_BEAT), 0, 16 * STEP_TICKS_PER_BEAT).astype(np.uint64)
    return notes["pitch"].astype(np.uint64) * np.uint64(1000) + step_ticks


def ngram_hashes(notes: np.ndarray, n: int = NGRAM) -> np.ndarray:
    """A 64-bit polynomial hash of every n-gram of `note_tokens` (wrapping arithmetic; collisions among a
    few million n-grams are vanishingly rare). The first note's step is ignored: it is the piece's start."""
    tokens = note_tokens(notes)
    if len(tokens) < n:
        return np.zeros(0, dtype=np.uint64)
    windows = np.lib.stride_tricks.sliding_window_view(tokens, n).copy()
    windows[:, 0] //= np.uint64(1000)  # a window's first step says where it starts, not what it is
    windows[:, 0] *= np.uint64(1000)
    hashes = np.zeros(len(windows), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in range(n):
            hashes = hashes * np.uint64(1_000_003) + windows[:, column]
    return hashes


@dataclass
class CopyStats:
    copy_rate: float  # share of the piece's n-grams found in the training set
    longest_copied_run: int  # notes, in the longest stretch covered by copied n-grams (0 if none)
    ngrams: int


class NgramIndex:
    """The set of n-grams of a corpus, as a sorted hash array (a few million fit in tens of MB)."""

    def __init__(self, pieces: Sequence[np.ndarray], n: int = NGRAM):
        self.n = n
        hashes = [ngram_hashes(p, n) for p in pieces]
        self.hashes = np.unique(np.concatenate(hashes)) if hashes else np.zeros(0, dtype=np.uint64)

    def copy_stats(self, notes: np.ndarray) -> CopyStats:
        hashes = ngram_hashes(notes, self.n)
        if len(hashes) == 0:
            return CopyStats(0.0, 0, 0)
        # A binary search in the sorted corpus hashes: np.isin would sort the corpus's millions again per piece
        # (0.6 s a piece on POP909).
        where = np.searchsorted(self.hashes, hashes).clip(max=max(len(self.hashes) - 1, 0))
        copied = self.hashes[where] == hashes if len(self.hashes) else np.zeros(len(hashes), dtype=bool)
        longest = longest_true_run(copied)
        return CopyStats(float(copied.mean()), longest + self.n - 1 if longest else 0, len(hashes))


def longest_true_run(flags: np.ndarray) -> int:
    if not flags.any():
        return 0
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())


class TrainingReference:
    """What novelty and copying are measured against, built once from the training pieces: their feature
    vectors and their n-gram index (on POP909, seconds to build; every set of samples measured against the
    same training set reuses them)."""

    def __init__(self, training: Sequence[np.ndarray], n: int = NGRAM):
        self.features = feature_matrix(training)
        self.index = NgramIndex(training, n)


def novelty_summary(
    generated: Sequence[np.ndarray], training: Sequence[np.ndarray] | TrainingReference, n: int = NGRAM
) -> dict[str, float]:
    """The numbers the report and the sampling callback show, over a set of generated pieces (`training`:
    the training pieces, or a `TrainingReference` built from them)."""
    reference = training if isinstance(training, TrainingReference) else TrainingReference(training, n)
    similarity, _ = nearest_similarity(feature_matrix(generated), reference.features)
    copies = [reference.index.copy_stats(piece) for piece in generated]
    return {
        "similarity_mean": float(similarity.mean()),
        "similarity_max": float(similarity.max()),
        "novelty_mean": float(1.0 - similarity.mean()),
        "copy_rate_mean": float(np.mean([c.copy_rate for c in copies])),
        "copy_rate_max": float(np.max([c.copy_rate for c in copies])),
        "longest_copied_run": int(max(c.longest_copied_run for c in copies)),
    }
