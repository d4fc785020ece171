from __future__ import annotations

import numpy as np
import pytest
import torch

from musicrnn.generation.sampling import (
    NoteHeads,
    SamplingSettings,
    filter_logits,
    generate_events,
    generate_steps,
    sample_class,
)
from musicrnn.nets import NoteLSTM, NoteLSTMConfig
from tests.helpers import COMPILES_THE_LOOP


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


@COMPILES_THE_LOOP
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


@pytest.mark.parametrize(
    "config",
    [
        NoteLSTMConfig(hidden_size=128, num_layers=3, dropout=0.3, dense_size=256),  # the seed paper's model
        NoteLSTMConfig(
            hidden_size=64,
            num_layers=2,
            dense_size=0,
            pitch_embedding_dim=16,
            timing_input="log",
            timing_head="categorical",
        ),
    ],
)
def test_the_fast_stepper_generates_the_same_notes_as_the_network_itself(config, monkeypatch):
    """NoteStepper (fused weights) against the straightforward loop (the network's own forward for every
    note): same seed, same pitches, timing equal to float rounding."""
    torch.manual_seed(0)
    net = NoteLSTM(config).eval()
    rng = np.random.default_rng(0)
    primer = np.stack(
        [rng.integers(48, 80, 30), rng.choice([0.0, 0.25, 0.5], 30), rng.choice([0.25, 0.5, 1.0], 30)], 1
    ).astype(np.float32)
    fast = generate_events(net, primer, 200, num_samples=3, temperature=1.0, seed=11, compiled=False)
    monkeypatch.setattr(NoteLSTM, "stepper", lambda network: network)  # the network's own forward for every note
    plain = generate_events(net, primer, 200, num_samples=3, temperature=1.0, seed=11, compiled=False)
    assert np.array_equal(fast[..., 0], plain[..., 0])
    np.testing.assert_allclose(fast[..., 1:], plain[..., 1:], atol=1e-6)

    from musicrnn.nets.note_lstm import NoteStepper

    _, state = net(torch.from_numpy(primer)[None])
    one = torch.from_numpy(primer[:1])[None]
    fused, fused_state = NoteStepper(net)(one, state)
    reference, reference_state = net(one, state)
    torch.testing.assert_close(fused.pitch_logits, reference.pitch_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused_state[1], reference_state[1], atol=1e-6, rtol=1e-5)


COMPILED_LOOP_CONFIGS = [
    NoteLSTMConfig(hidden_size=128, num_layers=3, dropout=0.3, dense_size=256),  # the seed paper's model
    NoteLSTMConfig(hidden_size=32, num_layers=1, dense_size=0, pitch_embedding_dim=8, timing_input="log"),
    # the default note_lstm's kind: embeddings, categorical timing, velocity (as a number, or embedded)
    NoteLSTMConfig(
        hidden_size=48, num_layers=2, dense_size=0, pitch_embedding_dim=16, timing_input="log",
        timing_head="categorical", velocity=True, velocity_embedding_dim=4,
    ),
    NoteLSTMConfig(hidden_size=32, num_layers=1, dense_size=16, timing_head="categorical", velocity=True),
]  # fmt: skip
BASIC_SAMPLING = [(1.0, None, None, {}), (0.0, None, None, {}), (0.9, 5, None, {}), (1.0, 1, None, {})]
# Nucleus sampling and repetition control, on the default note_lstm's kind (they act on the pitch alone).
CONTROLLED_SAMPLING = [
    (1.0, None, 0.8, {}),
    (0.9, 8, 0.9, {}),
    (1.0, None, None, {"repetition_penalty": 1.5, "repetition_window": 8}),
    (1.0, None, 0.9, {"repetition_penalty": 2.0, "no_repeat_ngram": 3}),
    (0.0, None, None, {"no_repeat_ngram": 1, "repetition_window": 4}),
]


@COMPILES_THE_LOOP
@pytest.mark.parametrize(
    "config, temperature, top_k, top_p, control",
    [(config, *sampling) for config in COMPILED_LOOP_CONFIGS for sampling in BASIC_SAMPLING]
    + [(COMPILED_LOOP_CONFIGS[2], *sampling) for sampling in CONTROLLED_SAMPLING],
)
def test_the_compiled_loop_generates_the_same_notes_as_the_network_itself(
    config, temperature, top_k, top_p, control, monkeypatch
):
    """The Numba loop (compiled_sampling) against the straightforward one (the network's own forward for
    every note, torch's sampling): same seed, same pitches (and timing and velocity classes), regressed
    timing equal to float rounding."""
    from musicrnn.generation import compiled_sampling

    torch.manual_seed(0)
    net = NoteLSTM(config).eval()
    assert compiled_sampling.supports(net)
    rng = np.random.default_rng(1)
    columns = [rng.integers(48, 80, 25), rng.choice([0.0, 0.25, 0.5], 25), rng.choice([0.25, 0.5, 1.0], 25)]
    columns += [rng.integers(30, 120, 25)] if config.velocity else []
    primer = np.stack(columns, 1).astype(np.float32)
    settings = SamplingSettings(temperature, top_k, top_p, timing_temperature=0.7 if temperature else None, **control)

    def generate(settings, compiled=True):
        head = NoteHeads(
            timing_head=config.timing_head, timing_classes=config.timing_classes,
            timing_resolution=config.timing_resolution, velocity=config.velocity, velocity_bins=config.velocity_bins,
        )  # fmt: skip
        return generate_steps(net, head, primer, 300, num_samples=4, settings=settings, seed=5, compiled=compiled)

    compiled = generate(settings)
    unfiltered = generate(SamplingSettings()) if top_k or top_p or control else None
    monkeypatch.setattr(NoteLSTM, "stepper", lambda network: network)
    plain = generate(settings, compiled=False)
    assert np.array_equal(compiled[..., 0], plain[..., 0])
    if config.timing_head == "categorical":
        assert np.array_equal(compiled, plain)  # every feature is a class
    np.testing.assert_allclose(compiled[..., 1:], plain[..., 1:], atol=1e-5)
    if temperature > 0 and top_k is None and top_p is None:
        assert len(np.unique(compiled[..., 0])) > 20  # it did sample (an untrained greedy model repeats one pitch)
    if top_k or top_p:  # the filter bit: with the likeliest pitches only, fewer pitches are ever drawn
        assert len(np.unique(compiled[..., 0])) < len(np.unique(unfiltered[..., 0]))
    if control:  # the control bit: other pitches than the same seed without it
        assert not np.array_equal(compiled[..., 0], unfiltered[..., 0])
    if control.get("no_repeat_ngram") == 1:  # no pitch again within the window (the 4 pitches before it)
        pitches = compiled[..., 0]
        assert all((pitches[:, lag:] != pitches[:, :-lag]).all() for lag in range(1, control["repetition_window"] + 1))


@COMPILES_THE_LOOP
def test_the_compiled_loop_gives_the_same_notes_in_one_thread_or_several(monkeypatch):
    """A batch cut into parts run in parallel threads, and products taken 8 rows at a time, give every sample
    the notes it gets in one thread."""
    import functools

    from musicrnn.generation import compiled_sampling

    torch.manual_seed(0)
    net = NoteLSTM(NoteLSTMConfig(hidden_size=128, num_layers=3, dense_size=256)).eval()
    primer = np.array([[60, 0.0, 0.5], [64, 0.5, 0.5], [67, 0.5, 1.0]], dtype=np.float32)
    original = compiled_sampling.compiled_note_loop
    results = {}
    for threads in (1, 2, 3):
        monkeypatch.setattr(compiled_sampling, "compiled_note_loop", functools.partial(original, threads=threads))
        results[threads] = generate_events(net, primer, 200, num_samples=19, seed=3)
    assert len(np.unique(results[1][..., 0])) > 20
    for threads in (2, 3):
        assert np.array_equal(results[threads][..., 0], results[1][..., 0]), f"{threads} threads sampled other pitches"
        np.testing.assert_allclose(results[threads], results[1], atol=1e-6)


def test_weights_are_cut_into_column_blocks_that_keep_each_product_small():
    from musicrnn.generation.compiled_sampling import ROWS, SMALL_PRODUCT, column_blocks

    rng = np.random.default_rng(0)
    for inputs, outputs in ((131, 512), (256, 512), (512, 1024), (256, 130), (3, 7)):
        weight = rng.standard_normal((2, inputs, outputs)).astype(np.float32)
        blocks = column_blocks(weight)
        count, width = blocks.shape[1], blocks.shape[3]
        assert count * width == outputs and ROWS * inputs * width <= SMALL_PRODUCT
        assert np.array_equal(np.concatenate(list(np.moveaxis(blocks, 1, 0)), axis=-1), weight)
    assert column_blocks(np.zeros((256, 512), np.float32)).shape == (2, 256, 256)  # a seed-model layer: two halves


def test_what_the_compiled_loop_does_not_cover_takes_the_torch_loop():
    from musicrnn.generation import compiled_sampling
    from musicrnn.nets.pianoroll_rnn import PianoRollRNN, PianoRollRNNConfig

    assert compiled_sampling.supports(NoteLSTM(NoteLSTMConfig(hidden_size=16, num_layers=1)))
    assert not compiled_sampling.supports(PianoRollRNN(PianoRollRNNConfig(hidden_size=8)))
    assert not compiled_sampling.supports(NoteLSTM(NoteLSTMConfig(hidden_size=16, num_layers=1)).double())
