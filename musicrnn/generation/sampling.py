"""Autoregressive generation: one loop for every model, one step at a time with the recurrent state carried.

The network reads the primer once; after that each new step is fed alone with the carried state, so a step
costs one time step, not a re-run of the whole window. What a step is and how it is drawn is the output
distribution's (`musicrnn.nets.heads`): a note's pitch and timing, a piano-roll frame's keys.
"""

from __future__ import annotations

import itertools

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
) -> np.ndarray:
    """Continue `primer` ((P, features), P >= 1) by `length` steps drawn from `head`, for `num_samples`
    independent samples at once. Returns (num_samples, length, features) in the head's dtype.

    With `compiled` (the default) the steps after the primer come from the Numba-compiled loop where it
    covers the network and settings (`compiled_sampling.supports`: the paper's regression-timing note models
    on the CPU, without top-k/top-p); it draws the same notes as the torch loop for the same seed.
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

    inputs = torch.from_numpy(primer).to(device).unsqueeze(0).expand(num_samples, -1, -1).contiguous()
    uniforms = head.draw_uniforms(length, num_samples, generator, device)
    output, state = net(inputs)
    if compiled and compiled_sampling.supports(net, settings.top_k, settings.top_p):
        result = compiled_sampling.generate_after_primer(net, output, state, uniforms, length, settings.temperature)
        net.train(was_training)
        return result
    out = torch.empty(num_samples, length, features, device=device)
    # After the primer, one step at a time through the network's stepper where it has one (the same
    # arithmetic as its forward with fused weights), else through its forward.
    step = net.stepper() if hasattr(net, "stepper") else net
    for i in range(length):
        out[:, i] = head.sample_step(output, i, uniforms, settings, generator)
        if i + 1 < length:
            output, state = step(out[:, i : i + 1], state)
    net.train(was_training)
    return head.finish(out.cpu().numpy())


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
    (num_samples, num_notes, 3) float32 rows of pitch, step, duration."""
    config = net.config
    head = NoteHeads(
        timing_head=config.timing_head, timing_classes=config.timing_classes, timing_resolution=config.timing_resolution
    )
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
