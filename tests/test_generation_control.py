"""Repetition control and beam search in the one generation loop, on primers read from real MIDI (a POP909
song and music21's chorales): what each setting must and must not change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from musicrnn.generation.sampling import BeamSearch, generate_steps
from musicrnn.nets.heads import SamplingSettings
from musicrnn.nets.repetition import ngram_bans, penalise, recent_classes_mask
from musicrnn.representations.notes import NoteEvents
from musicrnn.representations.pianoroll import PianoRoll
from musicrnn.training.models import note_lstm, pianoroll_lstm
from tests.helpers import COMPILES_THE_LOOP


def chorale_path() -> Path:
    from music21 import corpus  # the bundled Bach chorales, written by music21 as MIDI

    return Path(corpus.parse("bach/bwv269").write("midi"))


def note_model(velocity: bool = True, timing_head: str = "categorical", seed: int = 0):
    torch.manual_seed(seed)
    return note_lstm(
        hidden_size=32, num_layers=2, dense_size=0, pitch_embedding_dim=16, timing_input="log",
        timing_head=timing_head, velocity=velocity,
    ).eval()  # fmt: skip


def chorale_primer(velocity: bool = True, length: int = 32) -> np.ndarray:
    return NoteEvents("seconds", velocity).primer_from_midi(chorale_path(), length)


def test_ctrl_penalty_divides_positive_and_multiplies_negative_logits_once():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    recent = recent_classes_mask(torch.tensor([[0, 1, 1, -1]]), 4)  # class 1 played twice, -1 is no step
    assert recent.tolist() == [[True, True, False, False]]
    torch.testing.assert_close(penalise(logits, recent, 2.0), torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
    assert penalise(logits, recent, 1.0) is logits


def test_ngram_bans_forbid_completing_an_ngram_already_in_the_window():
    history = torch.tensor([[60, 62, 64, 60, 62]])
    # 3-grams in the window: (60,62,64) (62,64,60) (64,60,62); after (60, 62), 64 would repeat the first.
    assert ngram_bans(history, 3, 16, 128)[0].nonzero().flatten().tolist() == [64]
    # A window of the last 4 steps no longer holds (60, 62, 64): nothing is banned.
    assert not ngram_bans(history, 3, 4, 128).any()
    # 2-grams after 62: (62, 64) is in the window.
    assert ngram_bans(history, 2, 16, 128)[0].nonzero().flatten().tolist() == [64]


@COMPILES_THE_LOOP
def test_no_repeat_ngram_is_kept_in_every_generated_sample():
    model = note_model()
    settings = SamplingSettings(temperature=0.0, no_repeat_ngram=3, repetition_window=24)  # greedy loops without it
    primer = chorale_primer()
    greedy = generate_steps(model.net, model.head, primer, 120, num_samples=2, settings=SamplingSettings(0.0), seed=1)
    controlled = generate_steps(model.net, model.head, primer, 120, num_samples=2, settings=settings, seed=1)

    def repeats_within_window(pitches, n=3, window=24):
        count = 0
        for end in range(n, len(pitches) + 1):
            gram, recent = tuple(pitches[end - n : end]), pitches[max(0, end - window) : end - 1]
            count += any(tuple(recent[i : i + n]) == gram for i in range(len(recent) - n + 1))
        return count

    for sample in range(2):
        full = np.concatenate([primer[:, 0], controlled[sample, :, 0]]).astype(int).tolist()
        greedy_full = np.concatenate([primer[:, 0], greedy[sample, :, 0]]).astype(int).tolist()
        generated_from = len(primer)
        assert repeats_within_window(full[generated_from - 2 :]) == 0
        assert repeats_within_window(greedy_full[generated_from - 2 :]) > 0  # so the check can fail


@COMPILES_THE_LOOP
def test_the_repetition_penalty_makes_back_to_back_repeats_rarer_and_touches_only_pitch():
    model = note_model()
    primer = chorale_primer()
    # A model that prefers the chorale's five commonest pitches (an untrained one is near uniform, and a
    # penalty on logits near zero changes little).
    common = np.bincount(primer[:, 0].astype(int), minlength=128).argsort()[-5:]
    with torch.no_grad():
        model.net.pitch_head.bias[torch.from_numpy(common)] += 4.0
    penalty = SamplingSettings(repetition_penalty=3.0, repetition_window=2)
    plain = generate_steps(model.net, model.head, primer, 200, num_samples=16, settings=SamplingSettings(), seed=3)
    penalised = generate_steps(model.net, model.head, primer, 200, num_samples=16, settings=penalty, seed=3)
    rate = lambda steps: float(np.mean(steps[:, 1:, 0] == steps[:, :-1, 0]))  # noqa: E731
    assert rate(plain) > 0.05  # the model repeats: the comparison means something
    assert rate(penalised) < rate(plain) / 2
    # The first note reads the same distribution of step, duration and velocity, and the same uniforms.
    np.testing.assert_array_equal(plain[:, 0, 1:], penalised[:, 0, 1:])


def test_beam_1_by_1_is_exactly_plain_sampling_for_the_same_seed():
    for velocity, timing in ((True, "categorical"), (False, "regression")):
        model = note_model(velocity, timing)
        primer = chorale_primer(velocity)
        for settings in (SamplingSettings(), SamplingSettings(0.8, top_k=20, repetition_penalty=1.3)):
            # compiled=False: the paper's regression models sample through the compiled loop by default,
            # which draws the same pitches and timing equal to float rounding (tests/test_sampling.py).
            plain = generate_steps(
                model.net, model.head, primer, 64, num_samples=3, settings=settings, seed=11, compiled=False
            )
            beam = generate_steps(
                model.net, model.head, primer, 64, num_samples=3, settings=settings, seed=11,
                beam=BeamSearch(1, 1, 1), with_log_likelihood=True,
            )  # fmt: skip
            np.testing.assert_array_equal(plain, beam.steps)


def teacher_forced_log_likelihood(model, primer: np.ndarray, generated: np.ndarray) -> np.ndarray:
    sequence = torch.from_numpy(np.concatenate([np.repeat(primer[None], len(generated), 0), generated], axis=1))
    output, _ = model.net(sequence[:, :-1].float())
    log_probs = model.head.log_prob(output, sequence[:, 1:].float())
    return log_probs[:, len(primer) - 1 :].detach().double().sum(dim=1).numpy()


@pytest.mark.parametrize("beam", [BeamSearch(4, 2, 1), BeamSearch(3, 2, 5), BeamSearch(2, 3, 64)])
def test_a_beams_reported_likelihood_is_its_sequences_own(beam):
    """The beam reorders rows and recurrent states every pruning: if any row got another's state, the
    likelihood it accumulated would not be the teacher-forced likelihood of the sequence it returns."""
    model = note_model()
    primer = chorale_primer()
    result = generate_steps(
        model.net, model.head, primer, 64, num_samples=2, seed=5, beam=beam, with_log_likelihood=True
    )
    np.testing.assert_allclose(
        result.log_likelihood, teacher_forced_log_likelihood(model, primer, result.steps), rtol=1e-5
    )


def test_one_iteration_of_the_beam_is_the_likeliest_of_that_many_samples():
    model = note_model()
    primer = chorale_primer()
    width, length = 8, 40
    samples = generate_steps(model.net, model.head, primer, length, num_samples=width, seed=2, with_log_likelihood=True)
    best = generate_steps(
        model.net, model.head, primer, length, seed=2, beam=BeamSearch(4, 2, length), with_log_likelihood=True
    )
    winner = int(np.argmax(samples.log_likelihood))
    np.testing.assert_array_equal(best.steps[0], samples.steps[winner])
    assert best.log_likelihood[0] == pytest.approx(samples.log_likelihood.max())


def test_beam_search_finds_likelier_sequences_than_sampling():
    model = note_model()
    primer = chorale_primer()
    sampled = generate_steps(model.net, model.head, primer, 64, num_samples=8, seed=4, with_log_likelihood=True)
    beamed = generate_steps(
        model.net, model.head, primer, 64, num_samples=8, seed=4, beam=BeamSearch(4, 2, 1), with_log_likelihood=True
    )
    assert beamed.log_likelihood.mean() > sampled.log_likelihood.mean()


def test_piano_roll_models_take_the_penalty_and_the_beam(tmp_path):
    roll = PianoRoll(steps_per_quarter=4)
    primer = roll.primer_from_midi(chorale_path(), 16).astype(np.float32)
    for output in ("bernoulli", "nade"):
        torch.manual_seed(0)
        model = pianoroll_lstm(hidden_size=32, num_layers=1, output=output, nade_hidden=16).eval()
        assert "repetition_penalty" in model.head.sampling_options
        assert "no_repeat_ngram" not in model.head.sampling_options
        plain = generate_steps(model.net, model.head, primer, 48, num_samples=8, seed=1)
        penalised = generate_steps(
            model.net, model.head, primer, 48, num_samples=8, seed=1, settings=SamplingSettings(repetition_penalty=4.0)
        )
        held = lambda frames: float((frames[:, 1:] & frames[:, :-1]).sum() / max(frames[:, 1:].sum(), 1))  # noqa: E731
        assert held(penalised) < held(plain), output
        beam = BeamSearch(2, 2, 4)
        result = generate_steps(
            model.net, model.head, primer, 24, num_samples=2, seed=1, beam=beam, with_log_likelihood=True
        )
        expected = teacher_forced_log_likelihood(model, primer, result.steps.astype(np.float32))
        np.testing.assert_allclose(result.log_likelihood, expected, rtol=1e-5)
