"""The piano-roll NADE output (RNN-NADE): exact likelihoods in one parallel pass against a key-by-key
reference, sampling that matches the probabilities, exact mixtures for ensembles, and the CLI end to end on
JSB Chorales."""

import itertools
import math

import numpy as np
import pytest
import torch

from musicrnn.data import PianoRollPickleDataModule
from musicrnn.data.pianoroll_data import load_pianoroll_pickle
from musicrnn.nets.heads import NADEKeys, SamplingSettings, frame_nll
from musicrnn.nets.nade import KeyNADE, NADEOutput
from musicrnn.training.callbacks import Metrics
from musicrnn.training.ensemble import ensemble_from_modules
from musicrnn.training.models import pianoroll_lstm
from tests.helpers import cli, metrics_after_testing, require_shared

JSB = ("jsb_chorales", "JSB Chorales.pickle")


def _random_nade_model(seed: int, num_keys: int = 88, **settings):
    """A NADE piano-roll model with random (not near-zero) NADE weights, so the keys really depend on each other."""
    torch.manual_seed(seed)
    model = pianoroll_lstm(num_keys=num_keys, output="nade", **{"hidden_size": 16, "num_layers": 1, **settings})
    with torch.no_grad():
        model.net.nade.w.normal_(0, 0.5)
        model.net.nade.v.normal_(0, 0.5)
    return model.eval()


def _key_by_key_log_prob(visible_bias, hidden_bias, frame, w, v) -> float:
    """log p(frame) the slow way: one conditional at a time, the hidden layer rebuilt from the keys below."""
    total = 0.0
    for i in range(len(frame)):
        hidden = torch.sigmoid(hidden_bias + (frame[:i, None] * w[:i]).sum(0))
        p_on = float(torch.sigmoid(visible_bias[i] + (hidden * v[i]).sum()))
        total += math.log(p_on if frame[i] else 1.0 - p_on)
    return total


def _all_frames(num_keys: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=num_keys)))


def test_the_parallel_nll_equals_a_key_by_key_computation_on_jsb_frames():
    rolls = load_pianoroll_pickle(require_shared(*JSB))
    piece = torch.from_numpy(rolls["val"][0][:24].astype(np.float32)).unsqueeze(0)  # (1, 24, 88) real chords
    model = _random_nade_model(0)
    with torch.no_grad():
        output, _ = model.net(piece[:, :-1])
        fast = output.log_prob(piece[:, 1:])[0]
        slow = [
            _key_by_key_log_prob(output.visible_bias[0, t], output.hidden_bias[0, t], piece[0, t + 1], model.net.nade.w, model.net.nade.v)
            for t in range(piece.shape[1] - 1)
        ]  # fmt: skip
    assert torch.allclose(fast.double(), torch.tensor(slow, dtype=torch.float64), atol=1e-5)
    # The training loss is the same number: the summed binary cross-entropy of the conditionals.
    with torch.no_grad():
        loss = NADEKeys(88).loss(output, piece[:, :-1], piece[:, 1:], torch.tensor([piece.shape[1]]))
    assert loss.count == piece.shape[1] - 1
    assert float(loss.loss) == pytest.approx(-sum(slow) / len(slow), rel=1e-6)


def test_a_nades_probabilities_over_every_frame_sum_to_one_and_keys_depend_on_each_other():
    nade = KeyNADE(4, 3)
    with torch.no_grad():
        nade.w.normal_(0, 2.0)
        nade.v.normal_(0, 2.0)
    frames = _all_frames(4)
    output = NADEOutput(torch.full((16, 4), -0.3), torch.zeros(16, 3), nade)
    probs = output.log_prob(frames).exp()
    assert abs(float(probs.sum()) - 1.0) < 1e-6
    # Not a product of its marginals (what independent keys would give).
    marginals = (probs.unsqueeze(1) * frames).sum(0)
    independent = torch.prod(torch.where(frames.bool(), marginals, 1 - marginals), dim=1)
    assert float((probs - independent).abs().max()) > 0.01


def _chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


CHI_SQUARE_7_DF_P001 = 24.32  # the 0.999 quantile of chi-square with 7 degrees of freedom (8 frames - 1)


def test_sampling_draws_frames_as_often_as_their_probabilities():
    nade = KeyNADE(3, 4)
    with torch.no_grad():
        nade.w.normal_(0, 1.5)
        nade.v.normal_(0, 1.5)
    n = 40_000
    output = NADEOutput(torch.tensor([[0.4, -0.2, 0.1]]).expand(n, 1, 3), torch.zeros(n, 1, 4), nade)
    with torch.no_grad():
        frames = NADEKeys(3).sample_step(output, 0, None, SamplingSettings(1.0), torch.Generator().manual_seed(7))
        exact = (
            NADEOutput(output.visible_bias[:8], output.hidden_bias[:8], nade)
            .log_prob(_all_frames(3).unsqueeze(1))[:, 0]
            .exp()
        )
    codes = (frames @ torch.tensor([4.0, 2.0, 1.0])).long()
    counts = np.bincount(codes.numpy(), minlength=8)
    assert _chi_square(counts, exact.numpy()) < CHI_SQUARE_7_DF_P001
    # And it can fail: the same counts against independent keys with the same marginals do not pass.
    marginals = (exact.unsqueeze(1) * _all_frames(3)).sum(0)
    independent = torch.prod(torch.where(_all_frames(3).bool(), marginals, 1 - marginals), dim=1)
    assert _chi_square(counts, independent.numpy()) > CHI_SQUARE_7_DF_P001


def _members(count: int, num_keys: int = 3):
    return [_random_nade_model(seed, num_keys=num_keys, nade_hidden=4) for seed in range(count)]


def test_an_ensembles_frame_probabilities_are_the_weighted_mean_of_its_members():
    members = _members(3)
    weights = [0.5, 0.3, 0.2]
    ensemble = ensemble_from_modules(members, weights)
    frames = _all_frames(3).unsqueeze(1)  # (8, 1, 3): every frame, as one step after a silent input
    inputs = torch.zeros(8, 1, 3)
    with torch.no_grad():
        mixture = ensemble.net(inputs)[0].log_prob(frames)[:, 0].exp()
        each = torch.stack([m.net(inputs)[0].log_prob(frames)[:, 0].exp() for m in members])
        expected = (torch.tensor(weights).unsqueeze(1) * each).sum(0)
        assert torch.allclose(mixture, expected, atol=1e-6)
        assert abs(float(mixture.sum()) - 1.0) < 1e-5
        # The chain of the mixture's conditionals is its joint: the loss reads the same likelihood.
        conditionals = ensemble.net(inputs)[0].conditional_logits(frames)
        assert torch.allclose(-frame_nll(conditionals, frames)[:, 0], mixture.log(), atol=1e-5)


def test_an_ensemble_of_one_is_its_member():
    member = _members(1)[0]
    ensemble = ensemble_from_modules([member])
    frames = _all_frames(3).unsqueeze(1)
    with torch.no_grad():
        alone = member.net(torch.zeros(8, 1, 3))[0].log_prob(frames)
        fused = ensemble.net(torch.zeros(8, 1, 3))[0].log_prob(frames)
    assert torch.allclose(alone, fused, atol=1e-6)


def test_sampling_from_an_ensemble_follows_the_mixture():
    members = _members(2)
    ensemble = ensemble_from_modules(members, [0.7, 0.3])
    n = 40_000
    with torch.no_grad():
        output, _ = ensemble.net(torch.zeros(n, 1, 3))
        frames = ensemble.head.sample_step(output, 0, None, SamplingSettings(1.0), torch.Generator().manual_seed(3))
        exact = ensemble.net(torch.zeros(8, 1, 3))[0].log_prob(_all_frames(3).unsqueeze(1))[:, 0].exp()
    counts = np.bincount((frames @ torch.tensor([4.0, 2.0, 1.0])).long().numpy(), minlength=8)
    assert _chi_square(counts, exact.numpy()) < CHI_SQUARE_7_DF_P001


def test_an_ensembles_nll_on_jsb_is_at_most_its_members_mean():
    datamodule = PianoRollPickleDataModule(str(require_shared(*JSB)), batch_size=16)
    members = [_random_nade_model(seed, hidden_size=8) for seed in range(3)]
    scores = [metrics_after_testing(m, datamodule, Metrics())["test/frame_nll"] for m in members]
    fused = metrics_after_testing(ensemble_from_modules(members), datamodule, Metrics())["test/frame_nll"]
    assert fused <= sum(scores) / len(scores) + 1e-6
    assert fused < min(scores) + 1.0  # and it is a mixture of these members, not something else


@pytest.mark.slow
def test_the_nade_model_trains_and_generates_through_the_cli_on_jsb(tmp_path, monkeypatch):
    # The experiment reads the pickle's path from MUSICRNN_JSB_CHORALES: set it from ../shared, as the other
    # JSB tests do, so that `pytest` works without it exported.
    monkeypatch.setenv("MUSICRNN_JSB_CHORALES", str(require_shared(*JSB)))
    logs = tmp_path / "logs"
    cli(
        "musicrnn-train", "experiment=jsb_nade", f"paths.log_dir={logs}", "model.hidden_size=16",
        "model.dense_size=16", "model.nade_hidden=8", "trainer.max_epochs=2", "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "trainer.enable_progress_bar=false",
        "sample.num_frames=12", cwd=tmp_path,
    )  # fmt: skip
    (checkpoint,) = logs.glob("jsb_nade/runs/*/checkpoints/best.ckpt")
    result = cli(
        "musicrnn-generate",
        f"ckpt_path={checkpoint}",
        "num_frames=16",
        f"output={tmp_path}/nade.mid",
        "seed=1",
        cwd=tmp_path,
    )
    assert "16 generated frames" in result.stdout
    again = cli(
        "musicrnn-generate",
        f"ckpt_path={checkpoint}",
        "num_frames=16",
        f"output={tmp_path}/again.mid",
        "seed=1",
        cwd=tmp_path,
    )
    assert again.returncode == 0
    assert (tmp_path / "nade.mid").read_bytes() == (tmp_path / "again.mid").read_bytes()


def _cumulative_sum_logits(visible_bias, hidden_bias, frames, w, v):
    """The textbook parallel form: each key's hidden pre-activation an exclusive cumulative sum over keys."""
    contributions = frames.unsqueeze(-1) * w
    before = torch.cumsum(contributions, dim=-2) - contributions
    return visible_bias + (torch.sigmoid(hidden_bias.unsqueeze(-2) + before) * v).sum(-1)


@pytest.mark.parametrize("density", [0.0, 0.05, 0.5, 1.0])
def test_the_segment_form_equals_the_cumulative_sum_form(density):
    from musicrnn.nets.nade import nade_conditional_logits

    generator = torch.Generator().manual_seed(1)
    frames = (torch.rand(3, 5, 20, generator=generator) < density).float()
    visible, hidden = torch.randn(3, 5, 20, generator=generator), torch.randn(3, 5, 7, generator=generator)
    w, v = torch.randn(20, 7, generator=generator), torch.randn(20, 7, generator=generator)
    fast = nade_conditional_logits(visible, hidden, frames, w, v)
    assert torch.allclose(fast, _cumulative_sum_logits(visible, hidden, frames, w, v), atol=1e-5)
    # With a member axis (an ensemble's K NADEs reading the same frames).
    visible_k, hidden_k = torch.randn(3, 5, 2, 20, generator=generator), torch.randn(3, 5, 2, 7, generator=generator)
    w_k, v_k = torch.randn(2, 20, 7, generator=generator), torch.randn(2, 20, 7, generator=generator)
    fast_k = nade_conditional_logits(visible_k, hidden_k, frames, w_k, v_k)
    for k in range(2):
        reference = _cumulative_sum_logits(visible_k[:, :, k], hidden_k[:, :, k], frames, w_k[k], v_k[k])
        assert torch.allclose(fast_k[:, :, k], reference, atol=1e-5)
