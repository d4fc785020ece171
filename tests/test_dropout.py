"""musicrnn.nets.dropout: torch's own dropout masks from a compiled draw, to the bit, and the generator left where
torch leaves it, so a training run is the same run with either."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from musicrnn.data.pianoroll_data import load_pianoroll_pickle, pad_rolls
from musicrnn.nets import dropout as fast
from musicrnn.training.models import pianoroll_lstm
from tests.helpers import require_shared

JSB = ("jsb_chorales", "JSB Chorales.pickle")


def _both(run, seed: int, before: int):
    """`run()` under torch's F.dropout and under musicrnn's, from the same generator state (after `before`
    uniforms, so the draw starts anywhere in the twister's block): each result and the generator's next draws."""
    results = []
    for fast_path in (False, True):
        torch.manual_seed(seed)
        torch.rand(before)
        with pytest.MonkeyPatch.context() as patch:
            if not fast_path:
                patch.setattr(fast, "_fast_path", lambda x: False)
            results.append((run(), torch.rand(7), torch.get_rng_state()))
    return results


@pytest.mark.parametrize("shape", [(1,), (623,), (625,), (1249,), (2048, 512), (8, 160, 512)])
@pytest.mark.parametrize("p", [0.3, 0.6])
def test_the_masks_and_the_generator_after_them_are_torchs(shape, p):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) + 3.0
    for seed, before in [(0, 0), (7, 1), (123, 311)]:
        (slow, slow_next, slow_state), (quick, quick_next, quick_state) = _both(
            lambda: fast.dropout(x, p), seed, before
        )
        assert torch.equal(slow, quick), (shape, p, seed)
        assert torch.equal(slow_next, quick_next) and torch.equal(slow_state, quick_state)
        kept = (quick != 0).double().mean().item()
        assert kept == pytest.approx(1 - p, abs=4 * (p * (1 - p) / x.numel()) ** 0.5 + 1 / x.numel())  # 4 sigma


def test_float64_and_the_module_form_match_and_what_torch_does_not_draw_draws_nothing():
    x = torch.rand(3001, dtype=torch.float64)
    (slow, _, slow_state), (quick, _, quick_state) = _both(lambda: fast.dropout(x, 0.3), 3, 5)
    assert torch.equal(slow, quick) and torch.equal(slow_state, quick_state)
    module = fast.Dropout(0.4)
    y = torch.rand(40, 50)
    (slow, _, slow_state), (quick, _, quick_state) = _both(lambda: module(y), 4, 0)
    assert torch.equal(slow, quick) and torch.equal(slow_state, quick_state)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    assert fast.dropout(y, 0.0) is y and fast.dropout(y, 0.5, training=False) is y and module.eval()(y) is y
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(fast.dropout(y, 1.0), torch.zeros_like(y))
    batch_first = torch.nn.LSTM(6, 64, batch_first=True)(torch.rand(8, 50, 6))[0]  # time-major in memory
    gapped = torch.rand(50, 80)[:, ::2]  # every other column: torch's own draw
    for strided in (batch_first.detach(), torch.rand(30, 40).t(), gapped):
        (slow, _, slow_state), (quick, _, quick_state) = _both(lambda: fast.dropout(strided, 0.5), 5, 0)
        assert torch.equal(slow, quick) and slow.stride() == quick.stride() and torch.equal(slow_state, quick_state)
    assert fast._fast_path(batch_first) and not fast._fast_path(gapped)


def test_a_jsb_training_step_of_the_recipe_is_the_same_to_the_bit(monkeypatch):
    """The JSB recipe's dropouts (0.6 on the output, DropConnect 0.6 on the recurrent weights) on 8 real
    chorales: the loss and every gradient equal with the compiled masks and with torch's."""
    rolls = load_pianoroll_pickle(require_shared(*JSB))["train"][:8]
    frames, _ = pad_rolls([torch.as_tensor(r, dtype=torch.float32) for r in rolls])
    torch.manual_seed(0)
    module = pianoroll_lstm(num_layers=1, hidden_size=64, dense_size=64, dropout=0.6, weight_dropout=0.6)
    module.train()

    def step():
        module.zero_grad()
        logits, _ = module.net(frames[:, :-1])
        loss = F.binary_cross_entropy_with_logits(logits, frames[:, 1:])
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]

    drawn, original = [], fast.bernoulli_mask
    monkeypatch.setattr(fast, "bernoulli_mask", lambda x, *a: drawn.append(tuple(x.shape)) or original(x, *a))
    (slow, _, slow_state), (quick, _, quick_state) = _both(step, 11, 0)
    assert sorted(drawn) == sorted([(256, 64), (*frames[:, :-1].shape[:2], 64)])  # both masks, compiled
    assert torch.equal(slow[0], quick[0])
    assert len(slow[1]) == len(quick[1]) > 0 and all(torch.equal(a, b) for a, b in zip(slow[1], quick[1]))
    assert torch.equal(slow_state, quick_state)


def test_the_draw_follows_the_twister_of_numpy_too():
    """An independent reference: numpy's MT19937 given torch's state yields the words behind the mask."""
    torch.manual_seed(42)
    state = torch.get_rng_state().numpy()
    words = state[24 : 24 + 624 * 8].view(np.uint64).astype(np.uint32)
    left = int(state[8:12].view(np.int32)[0])
    generator = np.random.MT19937(0)
    generator.state = {"bit_generator": "MT19937", "state": {"key": words, "pos": 625 - left}}
    raw = generator.random_raw(2 * 5000).astype(np.uint64).reshape(-1, 2)
    uniform = (((raw[:, 0] << np.uint64(32)) | raw[:, 1]) & np.uint64((1 << 53) - 1)) * 2.0**-53
    mask = fast.bernoulli_mask(torch.empty(5000), 0.7)
    assert np.array_equal(mask.numpy(), (uniform < 0.7).astype(np.float32))
