"""Autoregressive generation from a note model, one note at a time with the LSTM state carried along."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from musicrnn.generation import compiled_sampling
from musicrnn.nets.note_lstm import NoteLSTM
from musicrnn.representations.notes import NUM_FEATURES, dequantise_time


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's tensors live (an ensemble network holds only buffers, no parameters)."""
    return next(itertools.chain(module.parameters(), module.buffers()), torch.empty(0)).device


def seeded_generator(device: torch.device, seed: int | None) -> torch.Generator:
    """A generator of its own, so sampling never moves torch's global random state; seed=None draws one."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item()))
    return generator


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Mask all but the `top_k` most likely classes and/or the smallest set whose probability reaches
    `top_p` (nucleus sampling) with -inf. The most likely class always survives."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a class once the classes before it already reach top_p.
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_class(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """One class (a pitch, or a timing bin) per row of `logits`; temperature <= 0 means greedy (argmax).

    Sampling is by inverse CDF: the first class whose cumulative probability (float64) exceeds `uniform`
    (one float64 in [0, 1) per row; drawn from `generator` when not given). One uniform per row, fixed in
    advance, is what lets the compiled generation loop (`compiled_sampling`) draw the same notes as this one.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    if uniform is None:
        uniform = torch.rand(logits.shape[:-1], generator=generator, dtype=torch.float64, device=logits.device)
    probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p).double(), dim=-1)
    cumulative = probs.cumsum(dim=-1)
    target = (uniform * cumulative[..., -1]).unsqueeze(-1)
    return torch.searchsorted(cumulative, target, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)


@torch.no_grad()
def generate_events(
    net: NoteLSTM,
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
    """Continue `primer` ((P, 3) rows of pitch, step, duration; P >= 1) by `num_notes` notes, for
    `num_samples` independent samples at once. Returns (num_samples, num_notes, 3) float32.

    The primer runs through the LSTM once; after that each new note is fed alone with the carried state,
    so a note costs one time step, not a re-run of the whole window. Step and duration are the regression
    heads' outputs clamped at zero, or, with categorical timing heads, sampled at `timing_temperature`
    (default: `temperature`; top-k/top-p apply to pitch only).

    With `compiled` (the default) the notes after the primer come from the Numba-compiled loop where it
    covers the network and settings (`compiled_sampling.supports`: the paper's regression-timing models
    on the CPU, without top-k/top-p); it draws the same notes as the torch loop for the same seed.
    """
    if num_notes < 1 or num_samples < 1:
        raise ValueError(f"num_notes and num_samples must be >= 1, got {num_notes}, {num_samples}")
    primer = np.asarray(primer, dtype=np.float32)
    if primer.ndim != 2 or primer.shape[1] != NUM_FEATURES or len(primer) == 0:
        raise ValueError(f"primer must have shape (P >= 1, {NUM_FEATURES}), got {primer.shape}")
    was_training = net.training
    net.eval()
    device = module_device(net)
    generator = seeded_generator(device, seed)

    inputs = torch.from_numpy(primer).to(device).unsqueeze(0).expand(num_samples, -1, -1).contiguous()
    # Every random number up front, one per (note, pitch/step/duration, sample): both loops read the same.
    uniforms = torch.rand(num_notes, NUM_FEATURES, num_samples, generator=generator, dtype=torch.float64, device=device)
    output, state = net(inputs)
    if compiled and compiled_sampling.supports(net, top_k, top_p):
        # The loop updates the state in place: its own copies, (layers, K, batch, hidden) (K = 1 for one network).
        h, c = (
            np.array(s.detach().cpu().numpy()[:, None] if s.dim() == 3 else s.detach().cpu().numpy()) for s in state
        )
        result = np.empty((num_samples, num_notes, NUM_FEATURES), np.float32)
        last = lambda t: t[:, -1].detach().cpu().numpy()  # noqa: E731
        compiled_sampling.compiled_note_loop(
            net,
            result,
            uniforms[:, 0].cpu().numpy().copy(),
            last(output.pitch_logits),
            last(output.step),
            last(output.duration),
            h,
            c,
            temperature,
        )
        net.train(was_training)
        return result
    out = torch.empty(num_samples, num_notes, NUM_FEATURES, device=device)
    timing_temperature = temperature if timing_temperature is None else timing_temperature
    # After the primer, one note at a time through the network's stepper (the same arithmetic as its forward
    # with fused weights: a NoteLSTM's or an LSTM ensemble's), else through its forward.
    step = net.stepper() if hasattr(net, "stepper") else net
    for i in range(num_notes):
        pitch = sample_class(output.pitch_logits[:, -1], temperature, top_k, top_p, uniform=uniforms[i, 0])
        out[:, i, 0] = pitch.float()
        for column, name in ((1, "step"), (2, "duration")):
            logits = getattr(output, f"{name}_logits")
            if logits is None:
                out[:, i, column] = getattr(output, name)[:, -1].clamp(min=0.0)
            else:
                timing = sample_class(logits[:, -1], timing_temperature, uniform=uniforms[i, column])
                out[:, i, column] = dequantise_time(timing.float(), net.config.timing_resolution)
        if i + 1 < num_notes:
            output, state = step(out[:, i : i + 1], state)
    net.train(was_training)
    return out.cpu().numpy()


@torch.no_grad()
def generate_frames(
    net: torch.nn.Module,
    primer: np.ndarray,
    num_frames: int,
    *,
    num_samples: int = 1,
    temperature: float = 1.0,
    seed: int | None = None,
) -> np.ndarray:
    """Continue a piano roll `primer` ((P, keys), P >= 1) by `num_frames` frames, for `num_samples` samples
    at once. Each key of a frame is drawn independently from sigmoid(logit / temperature); temperature <= 0
    switches a key on when its probability is above 0.5. Returns (num_samples, num_frames, keys) bool.
    The state is carried, so a frame costs one time step."""
    if num_frames < 1 or num_samples < 1:
        raise ValueError(f"num_frames and num_samples must be >= 1, got {num_frames}, {num_samples}")
    primer = np.asarray(primer, dtype=np.float32)
    keys = net.config.num_keys
    if primer.ndim != 2 or primer.shape[1] != keys or len(primer) == 0:
        raise ValueError(f"primer must have shape (P >= 1, {keys}), got {primer.shape}")
    was_training = net.training
    net.eval()
    device = module_device(net)
    generator = seeded_generator(device, seed)

    inputs = torch.from_numpy(primer).to(device).unsqueeze(0).expand(num_samples, -1, -1).contiguous()
    out = torch.empty(num_samples, num_frames, keys, device=device)
    logits, state = net(inputs)
    for i in range(num_frames):
        last = logits[:, -1]
        if temperature <= 0:
            frame = (last > 0).float()
        else:
            frame = torch.bernoulli(torch.sigmoid(last / temperature), generator=generator)
        out[:, i] = frame
        if i + 1 < num_frames:
            logits, state = net(frame.unsqueeze(1), state)
    net.train(was_training)
    return out.cpu().numpy().astype(bool)
