"""Dropout with torch's own masks, drawn faster on the CPU.

On the CPU `F.dropout(x, p)` draws its mask with `bernoulli_(1 - p)`, which runs one element at a time
through torch's Mersenne Twister (a 64-bit uniform from two 32-bit draws, kept where it is below 1 - p):
~12 ms for the 1M recurrent weights of the JSB recipe; with the output's mask, a quarter of its training
step. `dropout` draws the same numbers from the same generator state in a compiled loop (~2 ms: the words of
each block of 624 tempered at once, the comparisons branch-free) and leaves the generator where torch would
have, so every mask, and so every result, is torch's to the bit (tests/test_dropout.py checks masks,
gradients, a JSB training step and the generator state after them against `F.dropout`). Anything else
(another device or dtype, a tensor with gaps or overlaps, p = 1, a generator state of another layout) goes to `F.dropout`
itself. Like torch's draw, it is not meant for two threads drawing from the default generator at once.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch import nn

# torch's CPU generator state (`torch.get_rng_state()`, CPUGeneratorImplStateLegacy): the seed (u64), `left`
# (i32: draws until the next twist, plus one), `seeded` (i32), `next` (u64: the next word's index), the 624
# words of the Mersenne Twister as u64, then the cached normal samples that dropout leaves alone.
_LEFT, _NEXT, _WORDS = slice(8, 12), slice(16, 24), slice(24, 24 + 624 * 8)
_N, _M = 624, 397
_KNOWN_LAYOUT = torch.get_rng_state().numel() == 5056
_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}  # what the compiled draw fills


@njit(cache=True)
def _twist(words):
    """The Mersenne Twister's next 624 words, in place (MT19937, as `at::mt19937::next_state`)."""
    upper, lower, matrix = np.uint32(0x80000000), np.uint32(0x7FFFFFFF), np.uint32(0x9908B0DF)
    one = np.uint32(1)
    for k in range(_N - _M):
        y = (words[k] & upper) | (words[k + 1] & lower)
        words[k] = words[k + _M] ^ (y >> one) ^ (matrix * (y & one))
    for k in range(_N - _M, _N - 1):
        y = (words[k] & upper) | (words[k + 1] & lower)
        words[k] = words[k + _M - _N] ^ (y >> one) ^ (matrix * (y & one))
    y = (words[_N - 1] & upper) | (words[0] & lower)
    words[_N - 1] = words[_M - 1] ^ (y >> one) ^ (matrix * (y & one))


@njit(cache=True, inline="always")
def _temper(y):
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return y


@njit(cache=True, inline="always")
def _kept(high, low, threshold, keep_value, drop_value):
    # torch's uniform: the low 53 bits of (first draw << 32 | second draw) times 2^-53; uniform < p is then
    # that integer < ceil(p 2^53) (`threshold`), exactly, both sides being integers.
    bits = ((np.uint64(high) & np.uint64((1 << 21) - 1)) << np.uint64(32)) | np.uint64(low)
    return keep_value if bits < threshold else drop_value


@njit(cache=True)
def _next_block(words, tempered):
    """Twist `words` on to the next block and temper each word of it into `tempered` (a loop that vectorises)."""
    _twist(words)
    for w in range(_N):
        tempered[w] = _temper(words[w])


@njit(cache=True)
def _bernoulli(words, position, threshold, keep_value, out):
    """`out[i] = keep_value` where torch's i-th uniform of `bernoulli_` is below p, else 0, from the twister's
    32-bit `words` at `position` (both moved on); returns the new position. Within a block of 624 words the
    pairs of draws run as one branch-free loop; a pair split by a block's end is drawn on its own."""
    n = out.shape[0]
    drop_value = keep_value - keep_value  # 0 in the mask's dtype
    tempered = np.empty(_N, np.uint32)
    for w in range(position, _N):
        tempered[w] = _temper(words[w])
    i = 0
    while i < n:
        if position == _N:
            _next_block(words, tempered)
            position = 0
        pairs = min((_N - position) // 2, n - i)
        for j in range(pairs):
            w = position + 2 * j
            out[i + j] = _kept(tempered[w], tempered[w + 1], threshold, keep_value, drop_value)
        i += pairs
        position += 2 * pairs
        if i < n and position == _N - 1:  # the block's last word is the pair's first
            high = tempered[position]
            _next_block(words, tempered)
            out[i] = _kept(high, tempered[0], threshold, keep_value, drop_value)
            position = 1
            i += 1
    return position


def _memory_order(x: torch.Tensor) -> list[int] | None:
    """x's dimensions from the outermost in memory to the innermost where its elements fill their span
    densely (contiguous, or permuted from contiguous as an LSTM's batch-first output is), else None. torch
    draws a mask in this order: `empty_like(x)` keeps x's strides and `bernoulli_` walks the memory."""
    order = sorted(range(x.dim()), key=lambda d: -x.stride(d))
    return order if x.permute(order).is_contiguous() else None


def _fast_path(x: torch.Tensor) -> bool:
    return _KNOWN_LAYOUT and x.device.type == "cpu" and x.dtype in _NUMPY_DTYPES and _memory_order(x) is not None


def bernoulli_mask(x: torch.Tensor, p: float, keep_value: float = 1.0) -> torch.Tensor:
    """`torch.empty_like(x).bernoulli_(p) * keep_value` (x's shape and strides), drawn from and advancing the
    default generator exactly as torch does (where `_fast_path(x)`)."""
    state = torch.get_rng_state().numpy().copy()
    words = state[_WORDS].view(np.uint64).astype(np.uint32)  # each a 32-bit word
    position = _N + 1 - int(state[_LEFT].view(np.int32)[0])  # left = 1 right after seeding: a twist first
    dtype = _NUMPY_DTYPES[x.dtype]
    mask = np.empty(x.numel(), dtype)
    position = _bernoulli(words, position, np.uint64(np.ceil(p * 2.0**53)), dtype(keep_value), mask)
    state[_WORDS].view(np.uint64)[:] = words
    state[_LEFT].view(np.int32)[0] = _N + 1 - position
    state[_NEXT].view(np.uint64)[0] = position
    torch.set_rng_state(torch.from_numpy(state))
    order = _memory_order(x)
    in_memory_order = torch.from_numpy(mask).view([x.shape[d] for d in order])
    return in_memory_order.permute([order.index(d) for d in range(x.dim())])


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """`F.dropout(x, p, training)`, the same result to the bit (forward and backward) and the same random
    numbers used, with the mask drawn by `bernoulli_mask` where it can be."""
    if not training or p == 0 or x.numel() == 0:
        return x  # as torch: nothing drawn
    if p == 1 or not _fast_path(x):
        return F.dropout(x, p, training)
    # torch's _dropout_impl: noise = bernoulli(1 - p); noise /= 1 - p (in x's dtype); input * noise
    dtype = _NUMPY_DTYPES[x.dtype]
    return x * bernoulli_mask(x, 1 - p, dtype(1) / dtype(1 - p))


class Dropout(nn.Dropout):
    """`nn.Dropout` through `dropout` (the same masks, drawn faster on the CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)
