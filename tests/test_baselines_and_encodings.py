"""The n-gram baselines and the note_lstm encodings (issue: note-model quality)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import miditoolkit
import numpy as np
import torch

from musicrnn.data import NoteSequenceDataModule
from musicrnn.nets import NoteLSTM, NoteLSTMConfig
from musicrnn.nets.heads import NoteHeads
from musicrnn.nets.scores import smoothed_log_probs
from musicrnn.representations.notes import dequantise_time, quantise_time
from musicrnn.training.callbacks import Metrics


def _write_melody(path, pitches):
    midi = miditoolkit.MidiFile()
    inst = miditoolkit.Instrument(program=0)
    inst.notes = [miditoolkit.Note(80, p, i * 240, i * 240 + 200) for i, p in enumerate(pitches)]
    midi.instruments = [inst]
    midi.dump(str(path))


def test_bigram_counts_stay_inside_pieces(tmp_path):
    # Two pieces, both in train (no val/test): a 60-62 alternation and a run of 64s.
    _write_melody(tmp_path / "a.mid", [60, 62] * 10)
    _write_melody(tmp_path / "b.mid", [64] * 20)
    dm = NoteSequenceDataModule(str(tmp_path), seq_len=4, val_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    stats = dm.train_statistics()
    bigrams = stats["bigram_counts"]
    assert bigrams[60, 62] == 10 and bigrams[62, 60] == 9 and bigrams[64, 64] == 19
    assert bigrams.sum() == 38  # 19 + 19 pairs: no pair crosses from one piece into the other
    assert stats["pitch_counts"][[60, 62, 64]].tolist() == [10, 10, 20]


def test_add_k_smoothing_gives_exact_probabilities():
    probs = np.exp(smoothed_log_probs(np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), k=0.1))
    np.testing.assert_allclose(probs[0], [2.1 / 3.3, 1.1 / 3.3, 0.1 / 3.3])
    np.testing.assert_allclose(probs[1], [1 / 3, 1 / 3, 1 / 3])


def test_the_callback_scores_the_bigram_on_the_same_targets():
    counts = np.zeros((128, 128))
    counts[60, 62], counts[60, 64], counts[62, 60] = 3, 1, 4
    stats = {"pitch_counts": counts.sum(0), "bigram_counts": counts, "step_mean": 0.5, "duration_mean": 0.25}
    trainer = SimpleNamespace(datamodule=SimpleNamespace(train_statistics=lambda: stats), sanity_checking=False)
    logged = {}
    module = SimpleNamespace(
        device=torch.device("cpu"), log_dict=lambda values, **kw: logged.update(values), head=NoteHeads(), net=None
    )
    callback = Metrics(top_k=5, baseline_smoothing=1e-9)  # (almost) no smoothing: exact frequencies
    callback.setup(trainer, module, "test")
    previous, target = torch.tensor([60, 60, 62]), torch.tensor([62, 64, 60])
    outputs = {
        "pitch_logits": torch.zeros(3, 128),
        "pitch_nll": torch.full((3,), math.log(128)),
        "pitch_target": target,
        "previous_pitch": previous,
        "step": torch.zeros(3),
        "step_target": torch.tensor([0.5, 0.5, 1.5]),
        "duration": torch.zeros(3),
        "duration_target": torch.tensor([0.25, 0.25, 0.25]),
    }
    callback.on_test_batch_end(trainer, module, outputs, None, 0)
    callback.on_test_epoch_end(trainer, module)
    expected_nll = -(math.log(3 / 4) + math.log(1 / 4) + math.log(1.0)) / 3
    assert abs(float(logged["test/bigram_pitch_nll"]) - expected_nll) < 1e-5
    assert abs(float(logged["test/bigram_pitch_acc_top1"]) - 2 / 3) < 1e-6  # 60->62 and 62->60 right, 60->64 wrong
    assert abs(float(logged["test/bigram_step_mse"]) - 1 / 3) < 1e-6  # the training mean 0.5 vs 0.5, 0.5, 1.5
    assert abs(float(logged["test/pitch_perplexity"]) - 128) < 1e-3


def test_quantised_timing_round_trips_within_half_a_bin():
    values = np.random.default_rng(0).uniform(0, 1.99, 10_000)
    for array in (values, torch.from_numpy(values)):
        back = dequantise_time(quantise_time(array, 0.02, 101), 0.02)
        assert float(abs(back - array).max()) <= 0.01 + 1e-12
    assert quantise_time(np.array([5.0, -1.0]), 0.02, 101).tolist() == [100, 0]  # clipped to the range


def test_pitch_embedding_and_log_timing_inputs():
    config = NoteLSTMConfig(
        hidden_size=8, num_layers=1, dropout=0.0, dense_size=0, pitch_embedding_dim=4, timing_input="log"
    )
    net = NoteLSTM(config)
    events = torch.tensor([[[60.0, 0.0, 0.5], [62.0, 0.04, 1.0]]])
    features = net.encode(events)
    assert features.shape == (1, 2, 6)
    torch.testing.assert_close(features[0, :, :4], net.pitch_embedding.weight[[60, 62]])
    torch.testing.assert_close(features[0, 1, 4:], torch.log1p(torch.tensor([0.04, 1.0]) / 0.02))


def test_categorical_heads_give_expected_values_and_logits():
    torch.manual_seed(0)
    net = NoteLSTM(
        NoteLSTMConfig(
            hidden_size=8,
            num_layers=1,
            dropout=0.0,
            dense_size=0,
            timing_head="categorical",
            timing_classes=11,
            timing_resolution=0.1,
        )
    )
    output, _ = net(torch.rand(2, 5, 3))
    assert output.step_logits.shape == (2, 5, 11) and output.duration_logits.shape == (2, 5, 11)
    expected = torch.softmax(output.step_logits, -1) @ (torch.arange(11) * 0.1)
    torch.testing.assert_close(output.step, expected)
