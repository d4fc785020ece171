"""Ensembles: exact probability averaging, batched members equal to running them one by one, refusal of
mismatched members, and generation and testing from real (tiny, trained-here) checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from musicrnn.data import NoteSequenceDataModule, PianoRollMidiDataModule
from musicrnn.errors import CheckpointError, MusicrnnError
from musicrnn.generation.sampling import generate_events, generate_frames
from musicrnn.midi.io import read_midi
from musicrnn.nets.heads import frame_nll
from musicrnn.training.callbacks import Metrics
from musicrnn.training.checkpoint import expand_checkpoints
from musicrnn.training.ensemble import ensemble_from_modules, load_model
from musicrnn.training.models import note_lstm, pianoroll_lstm
from musicrnn.training.module import SequenceModel
from tests.helpers import COMPILES_THE_LOOP, cli, metrics_after_testing, quiet_trainer, write_corpus


def _constant_pianoroll(probabilities: list[float]) -> SequenceModel:
    """A piano-roll model whose output ignores its input: zero weights, the bias gives the probabilities."""
    module = pianoroll_lstm(
        num_keys=len(probabilities), lowest_pitch=60, hidden_size=4, num_layers=1, init_output_bias=False
    )
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()
        p = torch.tensor(probabilities)
        module.net.head.bias.copy_(torch.log(p / (1 - p)))
    return module.eval()


def test_piano_roll_ensemble_averages_probabilities_exactly():
    a, b = _constant_pianoroll([0.9, 0.2, 0.5]), _constant_pianoroll([0.5, 0.6, 0.1])
    frames = torch.zeros(1, 4, 3)
    logits, _ = ensemble_from_modules([a, b]).net(frames)
    assert torch.allclose(torch.sigmoid(logits[0, 0]), torch.tensor([0.7, 0.4, 0.3]), atol=1e-6)
    # The NLL is the log of the mean, not the mean of the logs: target (1, 0, 1).
    target = torch.tensor([[1.0, 0.0, 1.0]])
    expected = -(math.log(0.7) + math.log(0.6) + math.log(0.3))
    assert frame_nll(logits[0, :1], target).item() == pytest.approx(expected, abs=1e-5)
    weighted, _ = ensemble_from_modules([a, b], weights=[3, 1]).net(frames)
    assert torch.allclose(torch.sigmoid(weighted[0, 0]), torch.tensor([0.8, 0.3, 0.4]), atol=1e-6)


def test_note_ensemble_averages_pitch_softmax_and_regression_timing_exactly():
    members = []
    for pitch_logits, step, duration in (([0.0, 1.0], 0.1, 0.5), ([2.0, 0.0], 0.3, 1.5)):
        module = note_lstm(hidden_size=4, num_layers=1, dense_size=0).eval()
        with torch.no_grad():
            for parameter in module.parameters():
                parameter.zero_()
            module.net.pitch_head.bias[:2] = torch.tensor(pitch_logits)
            module.net.pitch_head.bias[2:] = -1e4  # only pitches 0 and 1 are possible
            module.net.step_head.bias.fill_(step)
            module.net.duration_head.bias.fill_(duration)
        members.append(module)
    output, _ = ensemble_from_modules(members).net(torch.tensor([[[60.0, 0.0, 0.5]]]))
    e = math.e
    expected = [(1 / (1 + e) + e**2 / (1 + e**2)) / 2, (e / (1 + e) + 1 / (1 + e**2)) / 2]
    assert torch.allclose(torch.softmax(output.pitch_logits[0, 0], -1)[:2], torch.tensor(expected), atol=1e-6)
    assert output.step.item() == pytest.approx(0.2, abs=1e-6) and output.duration.item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batched_members_equal_running_them_one_by_one(cell):
    torch.manual_seed(0)
    members = [
        pianoroll_lstm(hidden_size=16, num_layers=2, dense_size=8, cell=cell, input_skip=True).eval() for _ in range(3)
    ]
    for member in members:
        with torch.no_grad():
            for parameter in member.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.3)
    weights = [1.0, 2.0, 0.5]
    ensemble = ensemble_from_modules(members, weights)
    frames = (torch.rand(3, 9, 88) < 0.1).float()
    fused, _, _ = ensemble.net.member_logits(frames)
    for k, member in enumerate(members):
        alone, _ = member.net(frames)
        assert torch.allclose(fused[:, :, k], alone, atol=1e-5)
    # Step by step with the carried state gives the same as the whole sequence.
    whole, _ = ensemble.net(frames)
    state, steps = None, []
    for t in range(frames.shape[1]):
        logits, state = ensemble.net(frames[:, t : t + 1], state)
        steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), whole, atol=1e-5)


@COMPILES_THE_LOOP
def test_note_members_with_embeddings_and_categorical_timing_fuse_exactly():
    torch.manual_seed(1)
    kwargs = dict(
        num_layers=2,
        dense_size=0,
        pitch_embedding_dim=8,
        timing_input="log",
        timing_head="categorical",
        timing_classes=11,
        velocity=True,
    )
    members = [note_lstm(hidden_size=16, **kwargs).eval() for _ in range(2)]
    ensemble = ensemble_from_modules(members)
    events = torch.tensor([[[60, 0.0, 0.5, 80], [64, 0.0, 0.5, 70], [67, 0.5, 0.25, 90], [72, 0.25, 1.0, 100]]])
    fused, _ = ensemble.net(events)
    outputs = [m.net(events)[0] for m in members]
    mean_pitch = torch.stack([torch.softmax(o.pitch_logits, -1) for o in outputs]).mean(0)
    mean_step = torch.stack([torch.softmax(o.step_logits, -1) for o in outputs]).mean(0)
    assert torch.allclose(fused.pitch_logits.exp(), mean_pitch, atol=1e-6)
    assert torch.allclose(fused.step_logits.exp(), mean_step, atol=1e-6)
    assert torch.allclose(fused.step, mean_step @ members[0].net.timing_centres, atol=1e-6)
    mean_velocity = torch.stack([torch.softmax(o.velocity_logits, -1) for o in outputs]).mean(0)
    assert torch.allclose(fused.velocity_logits.exp(), mean_velocity, atol=1e-6)
    samples = generate_events(ensemble.net, events[0].numpy(), 5, num_samples=2, seed=0)
    assert samples.shape == (2, 5, 4)


def test_mismatched_members_are_refused_naming_the_member_and_setting():
    a = pianoroll_lstm(num_keys=88)
    with pytest.raises(
        CheckpointError,
        match=r"b\.ckpt: num_keys is 60, but a\.ckpt has 88 \(ensemble members must share the representation",
    ):
        ensemble_from_modules([a, pianoroll_lstm(num_keys=60)], names=["a.ckpt", "b.ckpt"])
    with pytest.raises(
        CheckpointError, match="b.ckpt: holds a note_lstm model, but a.ckpt holds a pianoroll_lstm model"
    ):
        ensemble_from_modules([a, note_lstm()], names=["a.ckpt", "b.ckpt"])
    with pytest.raises(CheckpointError, match="time_unit is 'beats', but"):
        ensemble_from_modules([note_lstm(), note_lstm(time_unit="beats")])
    with pytest.raises(CheckpointError, match="b.ckpt: output is 'nade', but a.ckpt has 'bernoulli'"):
        ensemble_from_modules([a, pianoroll_lstm(output="nade")], names=["a.ckpt", "b.ckpt"])
    with pytest.raises(MusicrnnError, match=r"must share nade_hidden to be mixed exactly, got \[8, 16\]"):
        ensemble_from_modules([pianoroll_lstm(output="nade", nade_hidden=n, num_layers=n // 8) for n in (8, 16)])
    with pytest.raises(MusicrnnError, match="weights: 3 given for 2 members"):
        ensemble_from_modules([a, pianoroll_lstm()], weights=[1, 1, 1])


def test_mixed_note_members_average_their_probabilities_exactly(monkeypatch):
    """Members of different sizes, layer counts, inputs and dense layers, run one by one and mixed."""
    torch.manual_seed(3)
    common = dict(timing_head="categorical", timing_classes=11, velocity=True)
    members = [
        note_lstm(
            hidden_size=16, num_layers=1, dense_size=0, pitch_embedding_dim=8, velocity_embedding_dim=4, **common
        ),
        note_lstm(hidden_size=24, num_layers=2, dense_size=8, timing_input="log", **common),
    ]
    members = [m.eval() for m in members]
    ensemble = ensemble_from_modules(members, weights=[1, 3])
    assert type(ensemble.net).__name__ == "MixedEnsembleNet"
    events = torch.tensor([[[60, 0.0, 0.5, 80], [64, 0.0, 0.5, 70], [67, 0.5, 0.25, 90], [72, 0.25, 1.0, 100]]])
    fused, _ = ensemble.net(events)
    outputs = [m.net(events)[0] for m in members]
    for name in ("pitch_logits", "step_logits", "velocity_logits"):
        mean = 0.25 * torch.softmax(getattr(outputs[0], name), -1) + 0.75 * torch.softmax(getattr(outputs[1], name), -1)
        torch.testing.assert_close(getattr(fused, name).exp(), mean, atol=1e-6, rtol=0)
    # The members' own steppers, stepped together, give the notes the mixture's forward gives.
    primer = events[0].numpy()
    stepped = generate_events(ensemble.net, primer, 40, num_samples=2, seed=1)
    monkeypatch.setattr(type(ensemble.net), "stepper", lambda self: self)
    plain = generate_events(ensemble.net, primer, 40, num_samples=2, seed=1)
    np.testing.assert_array_equal(stepped[..., [0, 3]], plain[..., [0, 3]])


@pytest.mark.parametrize("output", ["bernoulli", "nade"])
def test_mixed_piano_roll_members_lstm_with_gru_average_exactly(output):
    torch.manual_seed(4)
    members = [
        pianoroll_lstm(num_keys=12, hidden_size=16, num_layers=1, output=output, nade_hidden=6).eval(),
        pianoroll_lstm(
            num_keys=12, hidden_size=8, num_layers=2, cell="gru", dense_size=8, output=output, nade_hidden=6
        ).eval(),
    ]
    ensemble = ensemble_from_modules(members)
    frames = (torch.rand(2, 9, 12) < 0.3).float()
    fused, state = ensemble.net(frames[:, :-1])
    outputs = [m.net(frames[:, :-1])[0] for m in members]
    target = frames[:, 1:]
    if output == "nade":  # the mixture of the members' frame distributions
        expected = torch.logsumexp(torch.stack([o.log_prob(target) for o in outputs]) + math.log(0.5), dim=0)
    else:  # independent keys, each key's probability the members' mean (what the stacked ensemble does)
        p = torch.stack([torch.sigmoid(o) for o in outputs]).mean(0)
        expected = (target * p.log() + (1 - target) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(ensemble.head.log_prob(fused, frames[:, 1:]), expected, atol=1e-5, rtol=0)
    assert isinstance(state, tuple) and len(state) == 2  # each member's own state (an LSTM's pair, a GRU's h)


@pytest.fixture(scope="module")
def tiny_pianoroll_checkpoints(tmp_path_factory) -> tuple[list, PianoRollMidiDataModule]:
    root = tmp_path_factory.mktemp("members")
    corpus = write_corpus(root / "corpus", num_pieces=12, num_bars=4)
    datamodule = PianoRollMidiDataModule(
        str(corpus), seq_len=16, batch_size=8, steps_per_quarter=2, cache_dir=str(root / "cache")
    )
    paths = []
    for seed in range(3):
        pl.seed_everything(seed)
        module = pianoroll_lstm(hidden_size=32, num_layers=1, learning_rate=0.02, steps_per_quarter=2)
        trainer = quiet_trainer(max_epochs=4, default_root_dir=root / f"m{seed}")
        trainer.fit(module, datamodule=datamodule)
        paths.append(next((root / f"m{seed}" / "checkpoints").glob("*.ckpt")))
    return paths, datamodule


@pytest.mark.slow  # trains
def test_an_ensemble_of_one_equals_its_member_and_three_test_like_one_model(tiny_pianoroll_checkpoints):
    paths, datamodule = tiny_pianoroll_checkpoints
    member = metrics_after_testing(load_model(paths[0]), datamodule, Metrics())
    alone = metrics_after_testing(load_model([paths[0]], weights=[1.0]), datamodule, Metrics())
    assert alone["test/frame_nll"] == pytest.approx(member["test/frame_nll"], abs=1e-4)
    assert alone["test/frame_accuracy"] == pytest.approx(member["test/frame_accuracy"], abs=1e-6)
    members = [metrics_after_testing(load_model(p), datamodule, Metrics())["test/frame_nll"] for p in paths]
    ensemble = metrics_after_testing(load_model(paths), datamodule, Metrics())["test/frame_nll"]
    assert ensemble <= np.mean(members) + 1e-4  # Jensen: the mixture's NLL never exceeds the members' mean


@pytest.mark.slow  # trains
def test_a_mixed_ensemble_of_an_lstm_and_a_gru_checkpoint_tests_and_generates(tiny_pianoroll_checkpoints, tmp_path):
    paths, datamodule = tiny_pianoroll_checkpoints
    pl.seed_everything(7)
    gru = pianoroll_lstm(
        hidden_size=16, num_layers=2, cell="gru", dense_size=16, learning_rate=0.02, steps_per_quarter=2
    )
    quiet_trainer(max_epochs=4, default_root_dir=tmp_path).fit(gru, datamodule=datamodule)
    (gru_path,) = (tmp_path / "checkpoints").glob("*.ckpt")
    mixed = load_model([paths[0], gru_path])
    assert type(mixed.net).__name__ == "MixedEnsembleNet"
    members = [
        metrics_after_testing(load_model(p), datamodule, Metrics())["test/frame_nll"] for p in (paths[0], gru_path)
    ]
    ensemble = metrics_after_testing(mixed, datamodule, Metrics())["test/frame_nll"]
    assert ensemble <= np.mean(members) + 1e-4
    frames = generate_frames(mixed.net, np.zeros((4, 88), dtype=np.float32), 16, num_samples=2, seed=0)
    assert frames.shape == (2, 16, 88)


@pytest.mark.slow  # trains
def test_glob_of_checkpoints_and_generation_from_an_ensemble(tiny_pianoroll_checkpoints, tmp_path):
    paths, _ = tiny_pianoroll_checkpoints
    pattern = str(paths[0].parent.parent.parent / "m*" / "checkpoints" / "*.ckpt")
    assert expand_checkpoints(pattern) == sorted(paths)
    with pytest.raises(CheckpointError, match="no checkpoint matches"):
        expand_checkpoints(str(tmp_path / "nothing" / "*.ckpt"))
    ensemble = load_model(pattern)
    frames = generate_frames(ensemble.net, ensemble.primers[0], 16, num_samples=2, seed=0)
    assert frames.shape == (2, 16, 88)


@pytest.mark.slow  # trains
def test_note_ensemble_tests_with_the_note_metrics(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", num_pieces=12, num_bars=4)
    datamodule = NoteSequenceDataModule(str(corpus), seq_len=16, batch_size=8)
    members = []
    for seed in range(2):
        pl.seed_everything(seed)
        module = note_lstm(hidden_size=16, num_layers=1, dense_size=0, pitch_embedding_dim=8, pitch_loss_weight=1.0)
        quiet_trainer(max_epochs=2, enable_checkpointing=False).fit(module, datamodule=datamodule)
        members.append(module.eval())
    scores = [metrics_after_testing(m, datamodule, Metrics())["test/pitch_nll"] for m in members]
    fused = metrics_after_testing(ensemble_from_modules(members), datamodule, Metrics())
    assert fused["test/pitch_nll"] <= np.mean(scores) + 1e-4
    assert {"test/pitch_acc_top1", "test/step_mse", "test/bigram_pitch_perplexity"} <= set(fused)


@pytest.mark.slow  # trains, and runs the console scripts
def test_generate_cli_writes_midi_from_an_ensemble_and_train_cli_tests_one(tiny_pianoroll_checkpoints, tmp_path):
    paths, datamodule = tiny_pianoroll_checkpoints
    listed = "[" + ",".join(f"'{p}'" for p in paths) + "]"  # quoted: Lightning's default names hold '='
    result = cli(
        "musicrnn-generate",
        f"ckpt_path={listed}",
        "num_frames=24",
        "seed=0",
        f"output={tmp_path / 'ens.mid'}",
        cwd=tmp_path,
    )
    assert "24 generated frames" in result.stdout
    notes = read_midi(tmp_path / "ens.mid")
    assert len(notes) > 0 and notes["end_beat"].max() <= 24 / 2  # 24 frames at 2 per quarter note
    result = cli(
        "musicrnn-train",
        "train=false",
        f"ckpt_path={listed}",
        "data=pianoroll_midi",
        f"data.path={datamodule.path}",
        "data.steps_per_quarter=2",
        "data.seq_len=16",
        "model=pianoroll_lstm",
        f"paths.log_dir={tmp_path / 'logs'}",
        "trainer.enable_progress_bar=false",
        "sample.num_frames=8",
        cwd=tmp_path,
    )
    assert "frame_nll" in result.stdout and "sample" in result.stdout
    failed = cli(
        "musicrnn-train",
        f"ckpt_path={listed}",
        "data=pianoroll_midi",
        f"data.path={datamodule.path}",
        "model=pianoroll_lstm",
        f"paths.log_dir={tmp_path / 'logs'}",
        cwd=tmp_path,
        check=False,
    )
    assert failed.returncode == 1 and "an ensemble is tested, not trained (add train=false)" in failed.stderr


@COMPILES_THE_LOOP
@pytest.mark.parametrize(
    "settings",
    [
        dict(hidden_size=32, num_layers=3, dropout=0.3, dense_size=64),
        dict(
            hidden_size=32,
            num_layers=2,
            dense_size=0,
            pitch_embedding_dim=8,
            timing_input="log",
            timing_head="categorical",
        ),
        dict(
            hidden_size=32, num_layers=2, dense_size=0, pitch_embedding_dim=8, timing_head="categorical", velocity=True
        ),
    ],
)
def test_the_ensemble_stepper_generates_the_same_notes_as_the_ensemble_forward(settings, monkeypatch):
    """NoteEnsembleStepper (fused member weights) against NoteEnsembleNet's own forward for every note."""
    from musicrnn.generation.sampling import generate_events
    from musicrnn.nets.ensemble import NoteEnsembleNet

    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        members.append(note_lstm(**settings).eval())
    net = ensemble_from_modules(members).net
    rng = np.random.default_rng(0)
    columns = [rng.integers(48, 80, 20), rng.choice([0.0, 0.25, 0.5], 20), rng.choice([0.25, 0.5, 1.0], 20)]
    columns += [rng.integers(40, 110, 20)] if settings.get("velocity") else []
    primer = np.stack(columns, 1).astype(np.float32)
    fast = generate_events(net, primer, 120, num_samples=2, seed=3, compiled=False)
    compiled = generate_events(net, primer, 120, num_samples=2, seed=3)  # the Numba loop, where it covers the settings
    monkeypatch.setattr(NoteEnsembleNet, "stepper", lambda self: self)
    plain = generate_events(net, primer, 120, num_samples=2, seed=3, compiled=False)
    assert np.array_equal(fast[..., 0], plain[..., 0]) and np.array_equal(compiled[..., 0], plain[..., 0])
    np.testing.assert_allclose(fast[..., 1:], plain[..., 1:], atol=1e-6)
    np.testing.assert_allclose(compiled[..., 1:], plain[..., 1:], atol=1e-5)
