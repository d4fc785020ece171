from __future__ import annotations

import numpy as np

from musicrnn.data.split import split_pieces


def _names(n: int, prefix: str = "piece") -> list[str]:
    return [f"{prefix}{i:04d}.mid" for i in range(n)]


def test_every_piece_in_exactly_one_split_with_the_requested_fractions():
    names = _names(2000)
    splits = split_pieces(names, 0.1, 0.1)
    together = np.concatenate(list(splits.values()))
    assert sorted(together.tolist()) == list(range(2000))
    assert 150 < len(splits["test"]) < 250 and 150 < len(splits["val"]) < 250


def test_adding_files_never_moves_a_piece():
    before = _names(300)
    after = _names(300) + _names(200, prefix="new")
    split_before, split_after = split_pieces(before), split_pieces(after)
    for split in ("train", "val", "test"):
        assert {before[i] for i in split_before[split]} <= {after[i] for i in split_after[split]}


def test_order_of_the_names_does_not_matter():
    names = _names(100)
    shuffled = list(reversed(names))
    a, b = split_pieces(names), split_pieces(shuffled)
    for split in a:
        assert {names[i] for i in a[split]} == {shuffled[i] for i in b[split]}


def test_tiny_corpus_still_gets_a_val_and_a_test_piece():
    splits = split_pieces(_names(4))
    assert all(len(splits[s]) == 1 for s in ("val", "test")) and len(splits["train"]) == 2
