from __future__ import annotations

import numpy as np
import pytest
import torch

from musicrnn.models import NoteLSTM, NoteLSTMConfig
from musicrnn.sampling import filter_logits, generate_events, sample_class


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[0.1, 3.0, 2.0, -1.0, 2.5]])
    kept = torch.isfinite(filter_logits(logits, top_k=2))
    assert kept.tolist() == [[False, True, False, False, True]]


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(filter_logits(probs.log(), top_p=0.75))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(filter_logits(probs.log(), top_p=0.4))
    assert kept.tolist() == [[True, False, False, False]]  # the most likely class always survives


def test_zero_temperature_is_greedy_and_sampling_follows_the_distribution():
    logits = torch.tensor([[0.0, 2.0, 1.0]]).repeat(20000, 1)
    assert (sample_class(logits, temperature=0) == 1).all()
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(sample_class(logits, 1.0, generator=generator), minlength=3).float() / 20000
    torch.testing.assert_close(counts, torch.softmax(logits[0], 0), atol=0.02, rtol=0)


def _net() -> NoteLSTM:
    torch.manual_seed(0)
    return NoteLSTM(NoteLSTMConfig(hidden_size=16, num_layers=2, dropout=0.3, dense_size=8))


def test_generation_is_reproducible_with_a_seed_and_never_negative():
    primer = np.array([[60, 0.0, 0.5], [64, 0.0, 0.5], [67, 0.5, 0.5]], dtype=np.float32)
    a = generate_events(_net(), primer, 50, num_samples=3, seed=7)
    b = generate_events(_net(), primer, 50, num_samples=3, seed=7)
    c = generate_events(_net(), primer, 50, num_samples=3, seed=8)
    assert a.shape == (3, 50, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a[..., 1:] >= 0).all()
    assert not np.array_equal(a[0], a[1])  # samples in one batch are independent


def test_bad_primer_is_refused():
    with pytest.raises(ValueError, match="primer must have shape"):
        generate_events(_net(), np.zeros((0, 3)), 5)
