"""Autoregressive generation: one loop for every model, one step at a time with the recurrent state carried.

The network reads the primer once; after that each new step is fed alone with the carried state, so a step
costs one time step, not a re-run of the whole window. What a step is and how it is drawn is the output
distribution's (`musicrnn.nets.heads`): a note's pitch and timing, a piano-roll frame's keys.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from musicrnn.generation import compiled_sampling

# Re-exported: the sampling rule generation uses, kept beside the distributions that use it.
from musicrnn.nets.heads import (  # noqa: F401
    BernoulliKeys,
    NoteHeads,
    OutputDistribution,
    SamplingSettings,
    filter_logits,
    sample_class,
)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's tensors live (an ensemble network holds only buffers, no parameters)."""
    return next(itertools.chain(module.parameters(), module.buffers()), torch.empty(0)).device


def seeded_generator(device: torch.device, seed: int | None) -> torch.Generator:
    """A generator of its own, so sampling never moves torch's global random state; seed=None draws one."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
    return generator


@dataclass(frozen=True)
class BeamSearch:
    """Magenta's beam search (`magenta.common.beam_search`): the beam starts as `beam_size` copies of the
    primer; each iteration extends every sequence of the beam `branch_factor` times by `steps_per_iteration`
    steps, sampled as without beam search (same temperature, filters and repetition control), and keeps the
    `beam_size` sequences of highest log-likelihood under the model (untempered, unfiltered). The first
    iteration takes (length - 1) % steps_per_iteration + 1 steps, so that the others are all equal; the
    result is the best sequence after the last. beam_size = branch_factor = 1 is plain sampling."""

    beam_size: int = 1
    branch_factor: int = 1
    steps_per_iteration: int = 1

    def __post_init__(self) -> None:
        for name in ("beam_size", "branch_factor", "steps_per_iteration"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def width(self) -> int:
        """Sequences alive between a branching and a pruning."""
        return self.beam_size * self.branch_factor

    def prunes_after(self, step: int, length: int) -> bool:
        """Whether the beam is pruned after generating step number `step` (0-based) of `length`."""
        first = (length - 1) % self.steps_per_iteration + 1
        return self.width > 1 and step + 1 >= first and (step + 1 - first) % self.steps_per_iteration == 0


def last_position(output):
    """A network's output at its last time step only (a tensor, or an output with `last()`)."""
    return output.last() if hasattr(output, "last") else output[:, -1:]


def select_rows(state, rows: torch.Tensor):
    """A recurrent state (a tensor, or a tuple of them) with its batch rows reordered by `rows`; the batch
    axis is the one before the last in every state here ((layers, [members,] batch, hidden))."""
    if isinstance(state, torch.Tensor):
        return state.index_select(-2, rows)
    return type(state)(select_rows(part, rows) for part in state)


class GeneratedSteps(NamedTuple):
    steps: np.ndarray  # (num_samples, length, features), the head's dtype
    log_likelihood: np.ndarray  # (num_samples,) sum over the generated steps of log p(step | past) (nats)


@torch.no_grad()
def generate_steps(
    net: torch.nn.Module,
    head: OutputDistribution,
    primer: np.ndarray,
    length: int,
    *,
    num_samples: int = 1,
    settings: SamplingSettings = SamplingSettings(),
    seed: int | None = None,
    compiled: bool = True,
    length_name: str = "length",
    beam: BeamSearch = BeamSearch(),
    with_log_likelihood: bool = False,
):
    """Continue `primer` ((P, features), P >= 1) by `length` steps drawn from `head`, for `num_samples`
    independent samples at once. Returns (num_samples, length, features) in the head's dtype, or with
    `with_log_likelihood` a `GeneratedSteps` that also holds each sample's log-likelihood under the model.

    With `compiled` (the default) the steps after the primer come from the Numba-compiled loop where it
    covers the network (`compiled_sampling.supports`: note models and their ensembles on the CPU, with every
    sampling setting) and no beam search or likelihood is asked for; it draws the same notes as the torch
    loop for the same seed. With `beam`, each sample is the best of a beam search (`BeamSearch`).
    """
    if length < 1 or num_samples < 1:
        raise ValueError(f"{length_name} and num_samples must be >= 1, got {length}, {num_samples}")
    primer = np.asarray(primer, dtype=np.float32)
    features = head.step_size(net)
    if primer.ndim != 2 or primer.shape[1] != features or len(primer) == 0:
        raise ValueError(f"primer must have shape (P >= 1, {features}), got {primer.shape}")
    was_training = net.training
    net.eval()
    device = module_device(net)
    generator = seeded_generator(device, seed)
    rows = num_samples * beam.width  # sample s owns rows s * width .. (s + 1) * width - 1

    uniforms = head.draw_uniforms(length, rows, generator, device)
    plain = beam.width == 1 and not with_log_likelihood
    if plain and compiled and compiled_sampling.supports(net):
        # The primer too goes through the compiled loop (once: every sample starts from its state), not
        # through torch, whose OpenMP threads spin for a while after each parallel region and slowed the
        # loop that follows by a fifth.
        result = compiled_sampling.generate_after_primer(net, uniforms, length, settings, primer)
        net.train(was_training)
        return result
    inputs = torch.from_numpy(primer).to(device).unsqueeze(0).expand(rows, -1, -1).contiguous()
    output, state = net(inputs)
    # The primer and every generated step, for repetition control (which reads the steps before) and the
    # beam's reordering.
    steps = torch.cat([inputs, torch.empty(rows, length, features, device=device)], dim=1)
    first = len(primer)
    log_likelihood = torch.zeros(rows, dtype=torch.float64, device=device)
    # After the primer, one step at a time through the network's stepper where it has one (the same
    # arithmetic as its forward with fused weights), else through its forward.
    step = net.stepper() if hasattr(net, "stepper") else net
    for i in range(length):
        at = first + i
        steps[:, at] = head.sample_step(output, i, uniforms, settings, generator, steps[:, :at])
        if beam.width > 1 or with_log_likelihood:
            log_likelihood += head.log_prob(last_position(output), steps[:, at : at + 1])[:, 0].double()
        if beam.prunes_after(i, length):
            rows_kept = prune(log_likelihood, num_samples, beam, keep=beam.beam_size if i + 1 < length else 1)
            steps, log_likelihood = steps[rows_kept], log_likelihood[rows_kept]
            state = select_rows(state, rows_kept)
        if i + 1 < length:
            output, state = step(steps[:, at : at + 1], state)
    net.train(was_training)
    best = torch.arange(num_samples, device=device) * beam.width  # after the last pruning, row 0 is the best
    generated = head.finish(steps[best, first:].cpu().numpy())
    if with_log_likelihood:
        return GeneratedSteps(generated, log_likelihood[best].cpu().numpy())
    return generated


def prune(log_likelihood: torch.Tensor, num_samples: int, beam: BeamSearch, keep: int) -> torch.Tensor:
    """The rows that go on: each sample's `keep` most likely sequences, each repeated `branch_factor` times
    (the branches of the next iteration start from the same sequence and state), best first."""
    scores = log_likelihood.view(num_samples, beam.width)
    best = torch.topk(scores, keep, dim=1).indices  # (samples, keep), most likely first
    best = best.repeat_interleave(beam.width // keep, dim=1)  # back to `width` rows per sample
    return (best + torch.arange(num_samples, device=best.device).unsqueeze(1) * beam.width).reshape(-1)


def generate_events(
    net: torch.nn.Module,
    primer: np.ndarray,
    num_notes: int,
    *,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    timing_temperature: float | None = None,
    seed: int | None = None,
    compiled: bool = True,
) -> np.ndarray:
    """`generate_steps` for a bare note network (a `NoteLSTM` or its ensemble), with its heads' sampling:
    (num_samples, num_notes, 3 or 4) float32 rows of pitch, step, duration (and velocity)."""
    config = net.config
    head = NoteHeads(
        timing_head=config.timing_head, timing_classes=config.timing_classes, timing_resolution=config.timing_resolution,
        velocity=config.velocity, velocity_bins=config.velocity_bins,
    )  # fmt: skip
    settings = SamplingSettings(temperature, top_k, top_p, timing_temperature)
    return generate_steps(
        net, head, primer, num_notes, num_samples=num_samples, settings=settings, seed=seed, compiled=compiled,
        length_name="num_notes",
    )  # fmt: skip


def generate_frames(
    net: torch.nn.Module,
    primer: np.ndarray,
    num_frames: int,
    *,
    num_samples: int = 1,
    temperature: float = 1.0,
    seed: int | None = None,
) -> np.ndarray:
    """`generate_steps` for a bare piano-roll network: (num_samples, num_frames, keys) bool frames, each key
    drawn independently."""
    settings = SamplingSettings(temperature)
    return generate_steps(
        net, BernoulliKeys(net.config.num_keys), primer, num_frames, num_samples=num_samples, settings=settings, seed=seed,
        length_name="num_frames",
    )  # fmt: skip
