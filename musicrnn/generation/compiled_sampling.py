"""The note-sampling loop compiled with Numba: after the primer, every note of every sample without a
Python-level operation per note.

Why not torch: at batch 1 a note is ~0.8 MFLOP, a few microseconds of arithmetic, but the torch stepper
dispatches ~70 operations per note at several microseconds each (~300 us a note; see
experiments/benchmarks/README.md). Here the whole loop is one compiled function: each layer's fused
[input, hidden] x weights product goes to BLAS (`np.dot`, in small pieces: see `column_blocks`), the gates,
the heads and the sampling are plain compiled loops, and a batch's samples run in parallel threads. It
runs the same arithmetic as `NoteLSTM.forward` / `NoteEnsembleNet.forward` in eval mode, and samples with
the same rule and the same uniforms as `musicrnn.nets.heads.sample_class`, so for one seed it gives the same
notes as the torch loop (timing equal to float rounding; a pitch could differ only if a uniform fell within
rounding of a class boundary).

Covered: `NoteLSTM` and `NoteEnsembleNet` on the CPU with regression timing heads (the paper's model),
any pitch input and timing input, temperature or greedy sampling without top-k/top-p. Everything else
takes the torch loop (`supports` says which).
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit
from torch import nn


def supports(net: nn.Module, top_k: int | None, top_p: float | None) -> bool:
    """Whether `compiled_note_loop` can generate from `net` with these sampling settings."""
    from musicrnn.nets.ensemble import NoteEnsembleNet
    from musicrnn.nets.note_lstm import NoteLSTM

    if not isinstance(net, (NoteLSTM, NoteEnsembleNet)):
        return False
    if top_p is not None and 0.0 < top_p < 1.0:  # top-k is covered; nucleus sampling is not yet
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in net.state_dict().values())


# OpenBLAS multiplies small matrices (M * N * K <= 1e6 on AVX-512) with a kernel that reads its operands in
# place; a larger product first copies the weight matrix into its packed layout, on every call. A (8, 256) x
# (256, 512) product, a layer of the seed model at 8 samples, is just over: 40 us, against 2 x 10 us for its
# two column halves (experiments/benchmarks/README.md). So products take at most ROWS rows at a time and the
# weights are stored cut into column blocks that keep each call under that size.
ROWS = 8
SMALL_PRODUCT = 1_000_000


def column_blocks(weight: np.ndarray) -> np.ndarray:
    """(..., in, out) -> (..., blocks, in, out / blocks): the fewest equal column blocks for which a product of
    ROWS rows stays a small one."""
    inputs, outputs = weight.shape[-2:]
    counts = [n for n in range(1, outputs + 1) if outputs % n == 0 and ROWS * inputs * (outputs // n) <= SMALL_PRODUCT]
    count = counts[0] if counts else outputs  # (one column a block when even that is large)
    blocks = weight.reshape(*weight.shape[:-1], count, outputs // count)
    return np.ascontiguousarray(np.moveaxis(blocks, -2, -3))


@njit(cache=True, error_model="numpy")
def _affine(x, blocks, bias, out):
    """out = x @ W + bias, with W as `column_blocks` (blocks, in, width): ROWS rows and one block a product."""
    count, _, width = blocks.shape
    for r0 in range(0, x.shape[0], ROWS):
        r1 = min(r0 + ROWS, x.shape[0])
        rows = x[r0:r1]
        for j in range(count):
            product = np.dot(rows, blocks[j])
            for r in range(r1 - r0):
                for n in range(width):
                    out[r0 + r, j * width + n] = product[r, n] + bias[j * width + n]


class MemberWeights:
    """A `NoteLSTM` (K = 1) or an LSTM ensemble's K members as NumPy arrays in the loop's layout, taken from
    the network's torch stepper (`net.stepper()`), which already fuses them: per layer the input and
    recurrent weights as one (K, input + hidden, 4 hidden) matrix with the gates in i, f, o, g order, the
    biases summed, the three heads as one (K, features, pitches + 2) matrix; the dense layer as (K, in, out).
    Every matrix is kept as `column_blocks`."""

    def __init__(self, net: nn.Module):
        from musicrnn.nets.ensemble import NoteEnsembleNet

        stepper = net.stepper()
        if isinstance(net, NoteEnsembleNet):  # every tensor already has the member axis first
            layers = list(zip(stepper.rnn.weights, (b.squeeze(1) for b in stepper.rnn.biases)))
            dense = (stepper.dense[0], stepper.dense[1].squeeze(1)) if stepper.dense is not None else None
            head = (stepper.head_weight, stepper.head_bias.squeeze(1))
            table = net.pitch_tables  # (pitches, K, dim) or None
            velocity_table = net.velocity_tables  # (bins, K, dim) or None
            log_weights = net.log_weights
        else:  # one network: a member axis of 1
            layers = [(w[None], b) for w, b in zip(stepper.weights, stepper.biases)]
            linear = net.dense[0] if isinstance(net.dense, nn.Sequential) else None
            dense = (linear.weight.t()[None], linear.bias[None]) if linear is not None else None
            head = (stepper.head_weight[None], stepper.head_bias)
            table = net.pitch_embedding.weight[:, None] if net.pitch_embedding is not None else None
            embedding = net.velocity_embedding
            velocity_table = embedding.weight[:, None] if embedding is not None else None
            log_weights = torch.zeros(1)
        array = lambda t: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)  # noqa: E731
        self.first_weight, self.first_bias = column_blocks(array(layers[0][0])), array(layers[0][1])
        hidden = self.first_bias.shape[1] // 4
        k = self.first_weight.shape[0]
        # Layers after the first share one shape: one array (layers - 1, K, blocks, 2 hidden, width).
        rest = column_blocks(array(torch.stack([w for w, _ in layers[1:]]))) if len(layers) > 1 else None
        self.rest_weight = rest if rest is not None else np.zeros((0, k, 1, 2 * hidden, 4 * hidden), np.float32)
        self.rest_bias = (
            array(torch.stack([b for _, b in layers[1:]]))
            if len(layers) > 1
            else np.zeros((0, k, 4 * hidden), np.float32)
        )
        self.has_dense = dense is not None
        self.dense_weight = column_blocks(array(dense[0])) if dense else np.zeros((k, 1, 1, 1), np.float32)
        self.dense_bias = array(dense[1]) if dense else np.zeros((k, 1), np.float32)
        self.head_weight, self.head_bias = column_blocks(array(head[0])), array(head[1])
        self.table = array(table) if table is not None else np.zeros((0, k, 0), np.float32)
        self.velocity_table = array(velocity_table) if velocity_table is not None else np.zeros((0, k, 0), np.float32)
        self.head_sizes = np.array(stepper.head_sizes, dtype=np.int64)  # pitch, step, duration[, velocity]
        self.log_weights = log_weights.detach().double().cpu().numpy()


def compiled_note_loop(
    net: nn.Module,
    out: np.ndarray,
    uniforms: np.ndarray,
    predictions: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    temperatures: np.ndarray,
    threads: int | None = None,
    top_k: int | None = None,
) -> None:
    """Fill `out` (samples, notes, features) float32 from the predictions after the primer: `predictions`
    (samples, heads) float32, the heads' outputs side by side (pitch logits, step and duration as a value
    each or logits over their classes, velocity logits), and the LSTM state `h`, `c` ((layers, K, samples,
    hidden), updated in place). `uniforms` (notes, features, samples) float64 are the sampling's random
    numbers; `temperatures` those of pitch, step, duration and velocity.

    Samples are independent, so a batch is cut into `threads` parts (default: torch's thread count) that run
    at once, each in its own thread (the loop holds no GIL; its products are single-threaded small ones)."""
    weights = MemberWeights(net)
    config = net.config
    sizes = weights.head_sizes
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    categorical = np.array([True, *(size > 1 for size in sizes[1:3]), True][: len(sizes)])
    fixed = (
        weights.first_weight,
        weights.first_bias,
        weights.rest_weight,
        weights.rest_bias,
        weights.has_dense,
        weights.dense_weight,
        weights.dense_bias,
        weights.head_weight,
        weights.head_bias,
        weights.table,
        weights.velocity_table,
        weights.log_weights,
        np.asarray(temperatures, np.float64),
        offsets,
        np.asarray(sizes, np.int64),
        categorical,
        config.num_pitches,
        config.timing_input == "log",
        np.float32(config.timing_resolution),
        config.velocity_bins,
        int(top_k or 0),
    )
    predictions = np.ascontiguousarray(predictions, np.float32)
    bounds = np.linspace(0, out.shape[0], min(threads or torch.get_num_threads(), out.shape[0]) + 1).astype(int)
    spans = list(itertools.pairwise(bounds))
    if len(spans) == 1:
        _note_loop(out, uniforms, predictions, h, c, *fixed)
        return
    parts = [
        (
            out[lo:hi],
            np.ascontiguousarray(uniforms[:, :, lo:hi]),
            predictions[lo:hi].copy(),
            np.ascontiguousarray(h[:, :, lo:hi]),
            np.ascontiguousarray(c[:, :, lo:hi]),
        )
        for lo, hi in spans
    ]
    with ThreadPoolExecutor(len(parts)) as pool:
        list(pool.map(lambda part: _note_loop(*part, *fixed), parts))  # list(): re-raises a part's error
    for (lo, hi), part in zip(spans, parts):
        h[:, :, lo:hi], c[:, :, lo:hi] = part[-2], part[-1]


@njit(cache=True, error_model="numpy")
def _sample(logits, u, temperature, top_k):
    """`sample_class`'s rule for one row: argmax when temperature <= 0, else the class whose cumulative
    softmax(logits / temperature) (float64) first exceeds u times the total; with 0 < top_k < classes, over
    the classes whose scaled logit is at least the k-th largest (`filter_logits`: ties at the k-th stay)."""
    classes = logits.shape[0]
    if temperature <= 0:
        best = 0
        for p in range(1, classes):
            if logits[p] > logits[best]:
                best = p
        return best
    scale = np.float32(1.0 / temperature)  # torch divides a float32 tensor by a scalar as x * (1 / t)
    kth = -np.inf
    if 0 < top_k < classes:  # compared in float32, as torch compares the scaled float32 logits
        values = np.empty(classes, np.float32)
        for p in range(classes):
            values[p] = logits[p] * scale
        kth = np.sort(values)[classes - top_k]
    scaled = np.empty(classes, np.float64)
    top = -np.inf
    for p in range(classes):
        value = logits[p] * scale
        scaled[p] = np.float64(value) if value >= kth else -np.inf
        top = max(top, scaled[p])
    total = 0.0
    for p in range(classes):
        scaled[p] = math.exp(scaled[p] - top)
        total += scaled[p]
    cumulative = 0.0
    for p in range(classes):
        scaled[p] = cumulative = cumulative + scaled[p] / total
    target = u * cumulative
    for p in range(classes):
        if scaled[p] > target:
            return p
    return classes - 1


# tanh as a ratio of polynomials (Eigen's float tanh: error < 4e-7 over the line), multiplies, adds and one
# divide, all of which vectorise (see `_lstm_cell`), where the libm calls `math.exp`/`math.tanh` (~7 ns a value)
# took half the time of a step at batch 16.
# sigmoid(x) = (1 + tanh(x / 2)) / 2.
_TANH_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5, _A7 = (
    np.float32(4.89352455891786e-03),
    np.float32(6.37261928875436e-04),
    np.float32(1.48572235717979e-05),
    np.float32(5.12229709037114e-08),
)
_A9, _A11, _A13 = np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = (
    np.float32(4.89352518554385e-03),
    np.float32(2.26843463243900e-03),
    np.float32(1.18534705686654e-04),
    np.float32(1.19825839466702e-06),
)
_HALF = np.float32(0.5)


@njit(cache=True, inline="always")
def _tanh(x):
    x = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


@njit(cache=True, inline="always")
def _sigmoid(x):
    return _HALF + _HALF * _tanh(_HALF * x)


# fastmath: no NaN/inf checks in min/max; error_model="numpy": no zero-divisor check (and exception path) on
# each divide. With both, and 1-D views of each gate, LLVM compiles the loop to 16-lane AVX-512 (or 8-lane
# AVX2) instructions: 9x faster than the same loop on 2-D indices (45 -> 5 us for 3 layers at batch 8).
@njit(cache=True, fastmath=True, error_model="numpy")
def _lstm_cell(gates, h, c):
    """PyTorch's LSTM cell from pre-activations (rows, 4 hidden) in the steppers' i, f, o, g order; h and c
    in place."""
    hidden = h.shape[1]
    for b in range(h.shape[0]):
        row, hb, cb = gates[b], h[b], c[b]
        ig, fg, og, gg = row[:hidden], row[hidden : 2 * hidden], row[2 * hidden : 3 * hidden], row[3 * hidden :]
        for j in range(hidden):
            cell = _sigmoid(fg[j]) * cb[j] + _sigmoid(ig[j]) * _tanh(gg[j])
            cb[j] = cell
            hb[j] = _sigmoid(og[j]) * _tanh(cell)


@njit(cache=True, nogil=True)  # nogil: halves of a batch run in two threads at once
def _note_loop(
    out,
    uniforms,
    predictions,
    h,
    c,
    first_weight,
    first_bias,
    rest_weight,
    rest_bias,
    has_dense,
    dense_weight,
    dense_bias,
    head_weight,
    head_bias,
    table,
    velocity_table,
    log_weights,
    temperatures,
    offsets,
    sizes,
    categorical,
    num_pitches,
    log_timing,
    resolution,
    velocity_bins,
    top_k,
):
    layers, members, batch, hidden = h.shape
    notes, features = out.shape[1], out.shape[2]
    width = predictions.shape[1]
    inputs = first_weight.shape[2] - hidden
    pitch_inputs = table.shape[2] if table.shape[2] > 0 else 1
    velocity_embedded = velocity_table.shape[2] > 0
    bin_width = 128 // velocity_bins
    first_rows = np.zeros((batch, inputs + hidden), np.float32)
    rows = np.zeros((batch, 2 * hidden), np.float32)
    gates = np.empty((batch, 4 * hidden), np.float32)
    dense_out = np.empty((batch, dense_bias.shape[1]), np.float32)
    heads = np.empty((batch, head_bias.shape[1]), np.float32)
    member_log_probs = np.empty((members, batch, width), np.float64)
    for i in range(notes):
        # Each feature as `NoteHeads.sample_step` draws it: a class of a categorical head by `sample_class`'s
        # rule, a regressed value clamped at 0.
        for b in range(batch):
            for f in range(features):
                lo = offsets[f]
                if categorical[f]:
                    k = top_k if f == 0 else 0  # top-k filters the pitch only
                    chosen = _sample(predictions[b, lo : lo + sizes[f]], uniforms[i, f, b], temperatures[f], k)
                    if f == 0:
                        out[b, i, f] = chosen
                    elif f < 3:
                        out[b, i, f] = np.float32(chosen) * resolution  # dequantise_time, in float32
                    else:
                        out[b, i, f] = chosen * bin_width + bin_width // 2  # bin_velocity
                else:
                    out[b, i, f] = max(predictions[b, lo], np.float32(0.0))
        if i + 1 == notes:
            break
        if members > 1:
            predictions[:] = 0.0
        for k in range(members):
            # The note just sampled, encoded as `encode_events` does, beside layer 0's state.
            for b in range(batch):
                pitch = out[b, i, 0]
                if table.shape[2] > 0:
                    row = min(max(int(pitch), 0), num_pitches - 1)
                    for e in range(pitch_inputs):
                        first_rows[b, e] = table[row, k, e]
                else:
                    first_rows[b, 0] = pitch / np.float32(num_pitches)
                for t in range(2):
                    value = out[b, i, 1 + t]
                    if log_timing:
                        value = np.float32(math.log1p(max(value, np.float32(0.0)) / resolution))
                    first_rows[b, pitch_inputs + t] = value
                if features > 3:
                    velocity = out[b, i, 3]
                    if velocity_embedded:
                        scaled = np.float32(velocity) * np.float32(velocity_bins) / np.float32(128.0)
                        row = min(max(int(math.floor(scaled)), 0), velocity_bins - 1)
                        for e in range(velocity_table.shape[2]):
                            first_rows[b, pitch_inputs + 2 + e] = velocity_table[row, k, e]
                    else:
                        first_rows[b, pitch_inputs + 2] = velocity / np.float32(127.0)
                first_rows[b, inputs:] = h[0, k, b]
            _affine(first_rows, first_weight[k], first_bias[k], gates)
            _lstm_cell(gates, h[0, k], c[0, k])
            for layer in range(1, layers):
                rows[:, :hidden] = h[layer - 1, k]
                rows[:, hidden:] = h[layer, k]
                _affine(rows, rest_weight[layer - 1, k], rest_bias[layer - 1, k], gates)
                _lstm_cell(gates, h[layer, k], c[layer, k])
            member_features = h[layers - 1, k]
            if has_dense:
                _affine(member_features, dense_weight[k], dense_bias[k], dense_out)
                member_features = np.maximum(dense_out, np.float32(0.0))
            _affine(member_features, head_weight[k], head_bias[k], heads)
            if members == 1:
                predictions[:] = heads
                continue
            weight = math.exp(log_weights[k])  # the member's weight in the mixture
            for b in range(batch):
                for f in range(features):
                    lo, size = offsets[f], sizes[f]
                    if not categorical[f]:  # the weighted mean of the members' predictions
                        predictions[b, lo] += np.float32(heads[b, lo] * weight)
                        continue
                    top = -np.inf  # log_softmax of this member's logits, plus its log weight
                    for p in range(lo, lo + size):
                        top = max(top, np.float64(heads[b, p]))
                    total = 0.0
                    for p in range(lo, lo + size):
                        total += math.exp(heads[b, p] - top)
                    for p in range(lo, lo + size):
                        member_log_probs[k, b, p] = heads[b, p] - top - math.log(total) + log_weights[k]
        if members > 1:  # the mixture: log of the weighted mean of the members' probabilities
            for b in range(batch):
                for f in range(features):
                    if not categorical[f]:
                        continue
                    for p in range(offsets[f], offsets[f] + sizes[f]):
                        top = -np.inf
                        for k in range(members):
                            top = max(top, member_log_probs[k, b, p])
                        total = 0.0
                        for k in range(members):
                            total += math.exp(member_log_probs[k, b, p] - top)
                        predictions[b, p] = top + math.log(total)


def generate_after_primer(net: nn.Module, output, state, uniforms: torch.Tensor, length: int, settings) -> np.ndarray:
    """The notes after the primer, from the network's output and state at the primer's end: the compiled
    loop's part of `generation.sampling.generate_steps`. Returns (batch, length, features) float32."""
    # The loop updates the state in place: its own copies, (layers, K, batch, hidden) (K = 1 for one network).
    h, c = (np.array(s.detach().cpu().numpy()[:, None] if s.dim() == 3 else s.detach().cpu().numpy()) for s in state)
    last = lambda t: t[:, -1].detach().cpu().numpy().reshape(t.shape[0], -1)  # noqa: E731
    parts = [
        output.pitch_logits,
        output.step_logits if output.step_logits is not None else output.step,
        output.duration_logits if output.duration_logits is not None else output.duration,
    ]
    parts += [output.velocity_logits] if output.velocity_logits is not None else []
    predictions = np.concatenate([last(t) for t in parts], axis=1)
    result = np.empty((predictions.shape[0], length, len(parts)), np.float32)
    temperature = settings.temperature
    timing = temperature if settings.timing_temperature is None else settings.timing_temperature
    velocity = temperature if settings.velocity_temperature is None else settings.velocity_temperature
    temperatures = np.array([temperature, timing, timing, velocity], np.float64)
    compiled_note_loop(
        net, result, uniforms.cpu().numpy().copy(), predictions, h, c, temperatures, top_k=settings.top_k
    )
    return result
