"""Velocity in the note representation: bins, data, the head and its baselines, generation, and checkpoints
written before velocity existed; on POP909's real dynamics and on MIDI written here."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from musicrnn.data import NoteSequenceDataModule
from musicrnn.generation.samples import sample_checkpoint
from musicrnn.generation.sampling import generate_steps
from musicrnn.midi.io import read_midi
from musicrnn.nets.heads import SamplingSettings
from musicrnn.representations.notes import VELOCITY, NoteEvents, bin_velocity, velocity_bin
from musicrnn.training.callbacks import Metrics
from musicrnn.training.checkpoint import load_module
from musicrnn.training.models import note_lstm
from tests.helpers import COMPILES_THE_LOOP, metrics_after_testing, quiet_trainer, require_shared, write_piece


def pop909_folder(tmp_path: Path, songs: int = 12) -> Path:
    """The first `songs` POP909 songs, linked (not copied) into a folder of their own."""
    root = require_shared("pop909", "POP909")
    folder = tmp_path / "pop909"
    folder.mkdir()
    for song in sorted(root.glob("*/*.mid"))[:songs]:
        (folder / song.name).symlink_to(song)
    return folder


def test_velocity_bins_are_four_velocities_wide_and_decode_to_their_middle():
    velocities = np.array([0, 3, 4, 89, 90, 91, 92, 127])
    assert velocity_bin(velocities).tolist() == [0, 0, 1, 22, 22, 22, 23, 31]
    assert velocity_bin(torch.tensor([90.0, 127.0])).tolist() == [22, 31]
    assert bin_velocity(np.array([0, 22, 31])).tolist() == [2, 90, 126]  # a corpus all at 90 comes back at 90
    assert np.array_equal(velocity_bin(bin_velocity(np.arange(32))), np.arange(32))


def test_a_pop909_song_keeps_its_velocities_through_the_representation(tmp_path):
    (song,) = pop909_folder(tmp_path, 1).glob("*.mid")
    notes = read_midi(song)
    assert len(np.unique(notes["velocity"])) > 10  # real dynamics
    with_velocity, without = NoteEvents("seconds", velocity=True), NoteEvents("seconds")
    events = with_velocity.encode(notes)
    assert events.shape[1] == 4 and without.encode(notes).shape[1] == 3
    np.testing.assert_array_equal(events[:, :3], without.encode(notes))
    written = read_midi(with_velocity.write_midi(events, tmp_path / "again.mid"))
    order = np.lexsort((notes["pitch"], notes["start_tick"]))
    np.testing.assert_array_equal(np.sort(written["velocity"]), np.sort(notes["velocity"][order]))
    assert set(read_midi(without.write_midi(without.encode(notes), tmp_path / "flat.mid"))["velocity"]) == {90}


def test_the_data_module_carries_velocities_and_counts_them_for_the_baselines(tmp_path):
    data = NoteSequenceDataModule(
        str(pop909_folder(tmp_path)), seq_len=32, velocity=True, cache_dir=str(tmp_path / "c")
    )
    data.setup()
    window = data.datasets["train"][0]
    assert window.shape == (33, 4)
    events, offsets = data.split_events("train")
    stats = data.train_statistics()
    assert stats["velocity_counts"].sum() == len(events)
    assert stats["velocity_bigram_counts"].sum() == len(events) - (len(offsets) - 1)  # no pair across pieces
    first_song = data.pieces("train")[0]
    assert sorted(events[offsets[0] : offsets[1], VELOCITY].astype(int)) == sorted(first_song["velocity"].tolist())


def test_the_velocity_scores_and_baselines_match_hand_computed_values():
    counts = np.zeros(128)
    counts[[80, 81, 100]] = [3, 1, 4]  # bins 20, 20, 25
    bigram = np.zeros((128, 128))
    bigram[80, 100], bigram[100, 80] = 2, 3
    stats = {
        "pitch_counts": np.ones(128), "bigram_counts": np.ones((128, 128)), "step_mean": 0.0, "duration_mean": 0.0,
        "velocity_counts": counts, "velocity_bigram_counts": bigram,
    }  # fmt: skip
    model = note_lstm(hidden_size=8, num_layers=1, dense_size=0, velocity=True, timing_head="categorical")
    trainer = SimpleNamespace(datamodule=SimpleNamespace(train_statistics=lambda: stats), sanity_checking=False)
    logged = {}
    module = SimpleNamespace(
        device=torch.device("cpu"), log_dict=lambda values, **kw: logged.update(values), head=model.head, net=model.net
    )
    callback = Metrics(top_k=5, baseline_smoothing=1e-9)
    callback.setup(trainer, module, "test")
    previous, target = torch.tensor([20, 25, 25]), torch.tensor([25, 20, 25])  # bins
    outputs = {
        "pitch_logits": torch.zeros(3, 128), "pitch_nll": torch.full((3,), math.log(128)),
        "pitch_target": torch.tensor([60, 60, 60]), "previous_pitch": torch.tensor([60, 60, 60]),
        "step": torch.zeros(3), "step_target": torch.zeros(3), "duration": torch.zeros(3),
        "duration_target": torch.zeros(3), "velocity_logits": torch.zeros(3, 32),
        "velocity_nll": torch.full((3,), math.log(32)), "velocity_target": target, "previous_velocity": previous,
    }  # fmt: skip
    callback.on_test_batch_end(trainer, module, outputs, None, 0)
    callback.on_test_epoch_end(trainer, module)
    # unigram: bin 20 has 4 of 8 counts, bin 25 has 4 of 8; bigram: after 20 always 25, after 25 always 20.
    assert float(logged["test/unigram_velocity_nll"]) == pytest.approx(math.log(2), abs=1e-5)
    expected = -(math.log(1.0) + math.log(1.0) + math.log(1e-9 / (3 + 32e-9))) / 3  # 25 -> 25 was never seen
    assert float(logged["test/bigram_velocity_nll"]) == pytest.approx(expected, rel=1e-4)
    assert float(logged["test/bigram_velocity_acc"]) == pytest.approx(2 / 3)
    assert float(logged["test/velocity_perplexity"]) == pytest.approx(32, rel=1e-5)


def test_a_zero_network_scores_ln_32_per_velocity_on_real_songs(tmp_path):
    data = NoteSequenceDataModule(
        str(pop909_folder(tmp_path)), seq_len=32, velocity=True, cache_dir=str(tmp_path / "c")
    )
    model = note_lstm(hidden_size=8, num_layers=1, dense_size=0, velocity=True, timing_head="categorical")
    with torch.no_grad():
        model.net.velocity_head.weight.zero_()
        model.net.velocity_head.bias.zero_()
    metrics = metrics_after_testing(model, data, Metrics())
    assert metrics["test/velocity_nll"] == pytest.approx(math.log(32), abs=1e-5)
    # Real dynamics are not uniform: the training songs' bin frequencies already say something.
    assert metrics["test/unigram_velocity_nll"] < math.log(32) - 0.2


def test_the_velocity_head_starts_at_the_unigram_baseline(tmp_path):
    data = NoteSequenceDataModule(
        str(pop909_folder(tmp_path)), seq_len=32, velocity=True, cache_dir=str(tmp_path / "c")
    )
    data.setup()
    model = note_lstm(hidden_size=8, num_layers=1, dense_size=0, velocity=True, timing_head="categorical")
    with torch.no_grad():
        model.net.velocity_head.weight.zero_()  # the bias alone: what `prepare` sets
    model.head.prepare(model.net, data)
    metrics = metrics_after_testing(model, data, Metrics())
    assert metrics["test/velocity_nll"] == pytest.approx(metrics["test/unigram_velocity_nll"], abs=1e-5)


@COMPILES_THE_LOOP
def test_the_velocity_temperature_is_honoured_and_samples_carry_their_velocities(tmp_path):
    torch.manual_seed(0)
    model = note_lstm(hidden_size=16, num_layers=1, dense_size=0, velocity=True, timing_head="categorical").eval()
    primer = NoteEvents("seconds", True).encode(read_midi(write_piece(tmp_path / "p.mid", seed=1)))[:20]
    settings = SamplingSettings(temperature=1.0, velocity_temperature=1e-6)  # velocity (nearly) greedy
    steps = generate_steps(model.net, model.head, primer, 30, settings=settings, seed=1)[0]
    sequence = torch.from_numpy(np.concatenate([primer, steps]))[None]
    with torch.no_grad():
        output, _ = model.net(sequence[:, :-1])
    likeliest = bin_velocity(output.velocity_logits[0, len(primer) - 1 :].argmax(-1)).numpy()
    np.testing.assert_array_equal(steps[:, VELOCITY], likeliest)
    sampled = generate_steps(model.net, model.head, primer, 30, seed=1)[0]
    assert len(np.unique(sampled[:, VELOCITY])) > 1  # at temperature 1 an untrained model's velocities vary
    written = read_midi(NoteEvents("seconds", True).write_midi(sampled, tmp_path / "out.mid"))
    assert sorted(written["velocity"].tolist()) == sorted(sampled[:, VELOCITY].astype(int).tolist())


def old_checkpoint(path: Path, velocity_free_model) -> Path:
    """A checkpoint as musicrnn wrote them before velocity existed: the builder's settings without the
    velocity arguments, and a musicrnn section without the velocity setting."""
    settings = {k: v for k, v in velocity_free_model.hparams.items() if not k.startswith("velocity")}
    primer = torch.tensor([[60, 0.0, 0.5], [64, 0.5, 0.5]])
    checkpoint = {
        "state_dict": velocity_free_model.state_dict(),
        "hyper_parameters": settings,
        "musicrnn": {"format_version": 1, "model": "note_lstm", "time_unit": "seconds", "primers": [primer]},
    }
    torch.save(checkpoint, path)
    return path


@COMPILES_THE_LOOP
def test_a_checkpoint_from_before_velocity_loads_and_generates_three_features(tmp_path):
    torch.manual_seed(0)
    before = note_lstm(hidden_size=16, num_layers=2, dense_size=0, pitch_embedding_dim=8, timing_head="categorical")
    module = load_module(old_checkpoint(tmp_path / "old.ckpt", before))
    assert module.representation.velocity is False and module.head.step_size(module.net) == 3
    for name, tensor in before.state_dict().items():
        torch.testing.assert_close(module.state_dict()[name], tensor, rtol=0, atol=0)
    (path,) = sample_checkpoint(module, tmp_path / "old.mid", length=25, seed=3)
    notes = read_midi(path)
    assert len(notes) == 25 and set(notes["velocity"].tolist()) == {90}


@pytest.mark.slow  # trains
def test_a_trained_model_beats_both_velocity_baselines_on_pop909(tmp_path):
    data = NoteSequenceDataModule(
        str(pop909_folder(tmp_path, 24)), seq_len=64, batch_size=32, velocity=True, cache_dir=str(tmp_path / "c")
    )
    torch.manual_seed(0)
    model = note_lstm(
        hidden_size=64, num_layers=1, dense_size=0, pitch_embedding_dim=16, timing_input="log",
        timing_head="categorical", velocity=True, velocity_embedding_dim=16, learning_rate=0.005,
        pitch_loss_weight=1.0,
    )  # fmt: skip
    quiet_trainer(max_epochs=4, enable_checkpointing=False).fit(model, datamodule=data)
    metrics = metrics_after_testing(model, data, Metrics())
    print({k: v for k, v in metrics.items() if "velocity" in k})
    assert metrics["test/velocity_nll"] < metrics["test/bigram_velocity_nll"] < metrics["test/unigram_velocity_nll"]
