from __future__ import annotations

import numpy as np
import pytest
import torch

from musicrnn.data import NoteSequenceDataModule
from musicrnn.data.datamodule import window_starts
from musicrnn.errors import MusicrnnError


def test_windows_never_cross_pieces():
    offsets = np.array([0, 10, 11, 35])
    starts = window_starts(offsets, seq_len=4, stride=2)
    for s in starts:
        piece = np.searchsorted(offsets, s, side="right") - 1
        assert s + 4 < offsets[piece + 1]  # the target row is inside the same piece
    assert starts.tolist() == [0, 2, 4, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29]


def _datamodule(root, **kwargs) -> NoteSequenceDataModule:
    dm = NoteSequenceDataModule(str(root), **{"seq_len": 16, "batch_size": 8, **kwargs})
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_splits_are_disjoint_and_windows_target_the_next_note(tiny_corpus):
    dm = _datamodule(tiny_corpus)
    names = {s: {dm.corpus.names[i] for i in dm.split_indices[s]} for s in ("train", "val", "test")}
    assert (
        not (names["train"] & names["val"])
        and not (names["train"] & names["test"])
        and not (names["val"] & names["test"])
    )
    assert sum(len(v) for v in names.values()) == 24

    events, offsets = dm.split_events("train")
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (8, 17, 3)
    dataset = dm.datasets["train"]
    for i in (0, 5, len(dataset) - 1):
        window = dataset[i]
        start = dataset.starts[i]
        # Row t+1 of the window is exactly the event after row t in its piece.
        assert torch.equal(window[1:], torch.from_numpy(events[start + 1 : start + 17]))


def test_transposition_applies_to_training_only_and_keeps_pitches_in_range(tiny_corpus):
    dm = _datamodule(tiny_corpus, transpose=6)
    torch.manual_seed(0)
    train = dm.datasets["train"]
    shifts = set()
    for i in range(len(train)):
        original = train.events[train.starts[i] : train.starts[i] + 17]
        window = train[i]
        shift = (window[:, 0] - original[:, 0]).unique()
        assert len(shift) == 1 and abs(int(shift)) <= 6  # the whole window moves together
        assert torch.equal(window[:, 1:], original[:, 1:])  # timing is untouched
        shifts.add(int(shift))
    assert len(shifts) > 3
    val = dm.datasets["val"]
    assert torch.equal(val[0], val.events[val.starts[0] : val.starts[0] + 17])


def test_unigram_statistics_come_from_the_training_split(tiny_corpus):
    dm = _datamodule(tiny_corpus)
    stats = dm.train_statistics()
    events, _ = dm.split_events("train")
    assert stats["pitch_counts"].sum() == len(events)
    assert stats["pitch_counts"].argmax() == np.bincount(events[:, 0].astype(int)).argmax()


def test_primers_are_held_out_pieces(tiny_corpus):
    dm = _datamodule(tiny_corpus, num_primers=3)
    primers = dm.primers()
    test_events, offsets = dm.split_events("test")
    assert 1 <= len(primers) <= 3
    assert np.array_equal(primers[0], test_events[: len(primers[0])]) and len(primers[0]) == 16


def test_pieces_shorter_than_a_window_leave_no_training_window(tiny_corpus):
    dm = NoteSequenceDataModule(str(tiny_corpus), seq_len=10_000)
    with pytest.raises(MusicrnnError, match="no training window"):
        dm.setup("fit")


@pytest.mark.parametrize("bad", [{"seq_len": 0}, {"stride": 0}, {"time_unit": "bars"}, {"batch_size": 0}])
def test_bad_settings_are_refused_naming_the_value(bad):
    with pytest.raises(ValueError, match=str(next(iter(bad.values())))):
        NoteSequenceDataModule("x", **bad)
