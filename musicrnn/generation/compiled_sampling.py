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

Covered: `NoteLSTM` and `NoteEnsembleNet` (stacked ensembles) on the CPU: any pitch and timing input,
regression or categorical timing, velocity, temperatures, greedy sampling, top-k, top-p, the repetition
penalty and no_repeat_ngram. Beam search, likelihoods, other networks and other devices take the torch loop
(`supports` and `generation.sampling.generate_steps` say which).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from numba import njit
from threadpoolctl import ThreadpoolController
from torch import nn


def supports(net: nn.Module) -> bool:
    """Whether `compiled_note_loop` can generate from `net` (every sampling setting is covered)."""
    from musicrnn.nets.ensemble import NoteEnsembleNet
    from musicrnn.nets.note_lstm import NoteLSTM

    if not isinstance(net, (NoteLSTM, NoteEnsembleNet)):
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in net.state_dict().values())


# OpenBLAS multiplies small matrices (M * N * K <= 1e6 on AVX-512) with a kernel that reads its operands in
# place; a larger product first copies the weight matrix into its packed layout, on every call. A (8, 256) x
# (256, 512) product, a layer of the seed model at 8 samples, is just over: 40 us, against 2 x 10 us for its
# two column halves (experiments/benchmarks/README.md). So products take at most ROWS rows at a time and the
# weights are stored cut into column blocks that keep each call under that size, for the rows a product
# really has: at batch 1 every product of the default model is already small, and whole matrices take 50 us
# a note where blocks cut for 8 rows take 69 (python -m experiments.benchmarks.profiles generation).
ROWS = 8
SMALL_PRODUCT = 1_000_000


def column_blocks(weight: np.ndarray, rows: int = ROWS) -> np.ndarray:
    """(..., in, out) -> (..., blocks, in, out / blocks): the fewest equal column blocks for which a product of
    `rows` rows stays a small one."""
    inputs, outputs = weight.shape[-2:]
    counts = [n for n in range(1, outputs + 1) if outputs % n == 0 and rows * inputs * (outputs // n) <= SMALL_PRODUCT]
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
    Every matrix is kept as `column_blocks` for products of `rows` rows."""

    def __init__(self, net: nn.Module, rows: int = ROWS):
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
        self.first_weight, self.first_bias = column_blocks(array(layers[0][0]), rows), array(layers[0][1])
        hidden = self.first_bias.shape[1] // 4
        k = self.first_weight.shape[0]
        # Layers after the first share one shape: one array (layers - 1, K, blocks, 2 hidden, width).
        rest = column_blocks(array(torch.stack([w for w, _ in layers[1:]])), rows) if len(layers) > 1 else None
        self.rest_weight = rest if rest is not None else np.zeros((0, k, 1, 2 * hidden, 4 * hidden), np.float32)
        self.rest_bias = (
            array(torch.stack([b for _, b in layers[1:]]))
            if len(layers) > 1
            else np.zeros((0, k, 4 * hidden), np.float32)
        )
        self.has_dense = dense is not None
        self.dense_weight = column_blocks(array(dense[0]), rows) if dense else np.zeros((k, 1, 1, 1), np.float32)
        self.dense_bias = array(dense[1]) if dense else np.zeros((k, 1), np.float32)
        self.head_weight, self.head_bias = column_blocks(array(head[0]), rows), array(head[1])
        self.table = array(table) if table is not None else np.zeros((0, k, 0), np.float32)
        self.velocity_table = array(velocity_table) if velocity_table is not None else np.zeros((0, k, 0), np.float32)
        self.head_sizes = np.array(stepper.head_sizes, dtype=np.int64)  # pitch, step, duration[, velocity]
        self.log_weights = log_weights.detach().double().cpu().numpy()


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # (finding the loaded BLAS libraries once: ~1 ms)


def single_threaded_blas(wanted: bool = True):
    """One BLAS thread per caller while the loop's own threads run (or a no-op when not `wanted`). A product
    at batch 1 (the primer's, or a sample's) wakes OpenBLAS's threads, which then spin for a while on the
    cores the loop's threads need: 16 samples of 256 notes took 86-105 ms after one, 57 ms without."""
    return _blas().limit(limits=1, user_api="blas") if wanted else contextlib.nullcontext()


@functools.cache
def _threads(count: int) -> ThreadPoolExecutor:
    """A pool kept for the process: starting threads for each call cost 1.8 ms, a tenth of 256 notes at 16."""
    return ThreadPoolExecutor(count, thread_name_prefix="musicrnn-sampling")


# The loop's weights for each network and product size, rebuilt when any of its tensors changes (a
# tensor's version counts its in-place updates, so an optimiser step or load_state_dict is seen): fusing and
# cutting them takes ~6 ms, a fifth of generating 256 notes at batch 1.
_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # net -> {rows: (key, weights)}


def member_weights(net: nn.Module, rows: int) -> MemberWeights:
    """`MemberWeights(net, rows)`, cached while the network's tensors stay as they are."""
    key = tuple((t.data_ptr(), t._version) for t in net.state_dict(keep_vars=True).values())
    layouts = _WEIGHTS.setdefault(net, {})
    if rows not in layouts or layouts[rows][0] != key:
        layouts[rows] = (key, MemberWeights(net, rows))
    return layouts[rows][1]


class LoopNetwork(NamedTuple):
    """What the compiled step reads of a network: its weights (`MemberWeights`) and the settings that shape
    its inputs and heads. A named tuple, which Numba reads by field."""

    first_weight: np.ndarray
    first_bias: np.ndarray
    rest_weight: np.ndarray
    rest_bias: np.ndarray
    has_dense: bool
    dense_weight: np.ndarray
    dense_bias: np.ndarray
    head_weight: np.ndarray
    head_bias: np.ndarray
    table: np.ndarray
    velocity_table: np.ndarray
    log_weights: np.ndarray
    offsets: np.ndarray  # where each head's outputs start among the predictions
    sizes: np.ndarray  # pitch, step, duration[, velocity] outputs
    categorical: np.ndarray  # which heads are softmaxes
    num_pitches: int
    log_timing: bool
    resolution: np.float32
    velocity_bins: int


def _network(weights: MemberWeights, config) -> LoopNetwork:
    sizes = weights.head_sizes
    return LoopNetwork(
        weights.first_weight, weights.first_bias, weights.rest_weight, weights.rest_bias, weights.has_dense,
        weights.dense_weight, weights.dense_bias, weights.head_weight, weights.head_bias, weights.table,
        weights.velocity_table, weights.log_weights,
        offsets=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
        sizes=np.asarray(sizes, np.int64),
        categorical=np.array([True, *(size > 1 for size in sizes[1:3]), True][: len(sizes)]),
        num_pitches=config.num_pitches,
        log_timing=config.timing_input == "log",
        resolution=np.float32(config.timing_resolution),
        velocity_bins=config.velocity_bins,
    )  # fmt: skip


def primer_state(net: nn.Module, primer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predictions (1, heads), h, c (layers, K, 1, hidden)) after `primer` ((P, features)) from a zero state,
    in the loop's arithmetic: one row, which every sample then starts from (they share the primer)."""
    weights = member_weights(net, 1)
    layers, members = weights.rest_weight.shape[0] + 1, weights.first_weight.shape[0]
    hidden = weights.first_bias.shape[1] // 4
    h = np.zeros((layers, members, 1, hidden), np.float32)
    c = np.zeros_like(h)
    predictions = np.zeros((1, int(weights.head_sizes.sum())), np.float32)
    scratch = _scratch(h, weights)
    _feed_primer(np.ascontiguousarray(primer, np.float32), predictions, h, c, scratch, _network(weights, net.config))
    return predictions, h, c


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
    top_p: float | None = None,
    history: np.ndarray | None = None,
    repetition: tuple[float, int, int] = (1.0, 16, 0),
) -> None:
    """Fill `out` (samples, notes, features) float32 from the predictions after the primer: `predictions`
    (samples, heads) float32, the heads' outputs side by side (pitch logits, step and duration as a value
    each or logits over their classes, velocity logits), and the LSTM state `h`, `c` ((layers, K, samples,
    hidden), updated in place). `uniforms` (notes, features, samples) float64 are the sampling's random
    numbers; `temperatures` those of pitch, step, duration and velocity. `history` (samples, P + notes)
    int64 holds the primer's pitches in its first P columns (the loop writes the pitches it draws after
    them), read by `repetition` = (repetition_penalty, repetition_window, no_repeat_ngram).

    Samples are independent, so a batch is cut into `threads` parts (default: torch's thread count) that run
    at once, each in its own thread (the loop holds no GIL; its products are single-threaded small ones)."""
    bounds = np.linspace(0, out.shape[0], min(threads or torch.get_num_threads(), out.shape[0]) + 1).astype(int)
    spans = list(itertools.pairwise(bounds))
    weights = member_weights(net, min(max(hi - lo for lo, hi in spans), ROWS))
    network = _network(weights, net.config)
    settings = (
        np.asarray(temperatures, np.float64),
        int(top_k or 0),
        float(top_p) if top_p is not None and 0.0 < top_p < 1.0 else 1.0,
        float(repetition[0]),
        int(repetition[1]),
        int(repetition[2]),
    )
    if history is None:
        history = np.zeros((out.shape[0], out.shape[1]), np.int64)
    primer_length = history.shape[1] - out.shape[1]
    predictions = np.ascontiguousarray(predictions, np.float32)
    parts = [
        (
            out[lo:hi],
            np.ascontiguousarray(uniforms[:, :, lo:hi]),
            predictions[lo:hi].copy(),
            np.ascontiguousarray(h[:, :, lo:hi]),
            np.ascontiguousarray(c[:, :, lo:hi]),
            history[lo:hi].copy(),
        )
        for lo, hi in spans
    ]

    def run(part):
        part_out, part_uniforms, part_predictions, part_h, part_c, part_history = part
        scratch = _scratch(part_h, weights)
        _note_loop(
            part_out, part_uniforms, part_predictions, part_h, part_c, part_history, primer_length, scratch,
            network, *settings,
        )  # fmt: skip

    if len(parts) == 1:
        run(parts[0])
    else:
        with single_threaded_blas():
            list(_threads(len(parts)).map(run, parts))  # list(): re-raises a part's error
    for (lo, hi), part in zip(spans, parts):
        h[:, :, lo:hi], c[:, :, lo:hi] = part[3], part[4]


@njit(cache=True, error_model="numpy")
def _sample(logits, u, temperature, top_k, top_p):
    """`sample_class`'s rule for one row: argmax when temperature <= 0, else the class whose cumulative
    softmax(logits / temperature) (float64) first exceeds u times the total; with 0 < top_k < classes, over
    the classes whose scaled logit is at least the k-th largest (`filter_logits`: ties at the k-th stay);
    with top_p < 1, over the likeliest classes whose probabilities before them sum to less than top_p."""
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
        kth = values[_descending_order(values)[top_k - 1]]  # the k-th largest
    scaled = np.empty(classes, np.float64)
    top = -np.inf
    for p in range(classes):
        value = logits[p] * scale
        scaled[p] = np.float64(value) if value >= kth else -np.inf
        top = max(top, scaled[p])
    if top_p < 1.0:
        _nucleus(scaled, top, top_p)
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


@njit(cache=True, error_model="numpy")
def _descending_order(values):
    """The indices of `values` from largest to smallest, ties in index order (a stable bottom-up merge sort:
    numba's own `argsort(kind="mergesort")` took 2.6 s to compile)."""
    n = values.shape[0]
    order = np.arange(n)
    spare = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j = lo, mid
            for k in range(lo, hi):
                if i < mid and (j >= hi or values[order[i]] >= values[order[j]]):
                    spare[k] = order[i]
                    i += 1
                else:
                    spare[k] = order[j]
                    j += 1
        order, spare = spare, order
        width *= 2
    return order


@njit(cache=True, error_model="numpy")
def _nucleus(scaled, top, top_p):
    """`filter_logits`' nucleus in place (-inf outside it): in descending order (stable, so ties in class
    order), a class is dropped once the probabilities (float64 softmax) of the classes before it reach top_p."""
    order = _descending_order(scaled)
    total = 0.0
    for p in range(scaled.shape[0]):
        total += math.exp(scaled[p] - top)
    cumulative = 0.0
    for j in range(order.shape[0]):
        p = order[j]
        probability = math.exp(scaled[p] - top) / total
        cumulative += probability
        if cumulative - probability >= top_p:  # as torch computes what comes before: cumsum - probs
            scaled[p] = -np.inf


@njit(cache=True)
def _control_repetition(logits, history, length, penalty, window, ngram, seen):
    """`NoteHeads.pitch_logits` for one row, in place: CTRL's penalty on each pitch of the last `window` of
    the `length` pitches so far in `history`, then -inf on each pitch that would complete an n-gram of that
    window (none when that bans every pitch)."""
    classes = logits.shape[0]
    start = max(length - window, 0)
    if penalty != 1.0:
        seen[:] = False
        for t in range(start, length):
            if 0 <= history[t] < classes:
                seen[history[t]] = True
        shrink, grow = np.float32(1.0 / penalty), np.float32(penalty)  # torch: x / p as x * (1 / p), in float32
        for p in range(classes):
            if seen[p]:
                logits[p] = logits[p] * shrink if logits[p] > 0 else logits[p] * grow
    span = length - start
    if ngram < 1 or span < ngram:
        return
    seen[:] = False
    for j in range(start, length - ngram + 1):
        follows = True
        for q in range(ngram - 1):  # the n - 1 pitches before this n-gram's last against the last n - 1
            if history[j + q] != history[length - ngram + 1 + q]:
                follows = False
                break
        last = history[j + ngram - 1]
        if follows and 0 <= last < classes:
            seen[last] = True
    banned = 0
    for p in range(classes):
        banned += seen[p]
    if banned == classes:
        return
    for p in range(classes):
        if seen[p]:
            logits[p] = -np.inf


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


@njit(cache=True, nogil=True, error_model="numpy")
def _advance(notes_in, predictions, h, c, scratch, network):
    """Feed one note per row (`notes_in`, (batch, features): pitch, step, duration[, velocity], as generated)
    through every member: the state `h`, `c` moves on in place and `predictions` becomes the next note's (the
    members' mixture for an ensemble). `scratch` (`_scratch`) and `network` (a `LoopNetwork`) come as tuples:
    unpacking them into arguments at each call site took numba ~2 s of compiling each."""
    first_rows, rows, gates, dense_out, heads, member_log_probs = scratch
    first_weight, first_bias, rest_weight, rest_bias = (
        network.first_weight, network.first_bias, network.rest_weight, network.rest_bias
    )  # fmt: skip
    dense_weight, dense_bias, head_weight, head_bias = (
        network.dense_weight, network.dense_bias, network.head_weight, network.head_bias
    )  # fmt: skip
    table, velocity_table, log_weights = network.table, network.velocity_table, network.log_weights
    offsets, sizes, categorical = network.offsets, network.sizes, network.categorical
    num_pitches, log_timing, resolution = network.num_pitches, network.log_timing, network.resolution
    has_dense, velocity_bins = network.has_dense, network.velocity_bins
    layers, members, batch, hidden = h.shape
    features = notes_in.shape[1]
    inputs = first_weight.shape[2] - hidden
    pitch_inputs = table.shape[2] if table.shape[2] > 0 else 1
    velocity_embedded = velocity_table.shape[2] > 0
    if members > 1:
        predictions[:] = 0.0
    for k in range(members):
        # The note, encoded as `encode_events` does, beside layer 0's state.
        for b in range(batch):
            pitch = notes_in[b, 0]
            if table.shape[2] > 0:
                row = min(max(int(pitch), 0), num_pitches - 1)
                for e in range(pitch_inputs):
                    first_rows[b, e] = table[row, k, e]
            else:
                first_rows[b, 0] = pitch / np.float32(num_pitches)
            for t in range(2):
                value = notes_in[b, 1 + t]
                if log_timing:
                    value = np.float32(math.log1p(max(value, np.float32(0.0)) / resolution))
                first_rows[b, pitch_inputs + t] = value
            if features > 3:
                velocity = notes_in[b, 3]
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
                log_total = math.log(total)
                for p in range(lo, lo + size):
                    member_log_probs[k, b, p] = heads[b, p] - top - log_total + log_weights[k]
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


def _scratch(h: np.ndarray, weights: MemberWeights):
    """The scratch arrays `_advance` writes: layer inputs, gates, dense and head outputs, members' log-probs."""
    layers, members, batch, hidden = h.shape
    return (
        np.zeros((batch, weights.first_weight.shape[2]), np.float32),
        np.zeros((batch, 2 * hidden), np.float32),
        np.empty((batch, 4 * hidden), np.float32),
        np.empty((batch, weights.dense_bias.shape[1]), np.float32),
        np.empty((batch, weights.head_bias.shape[1]), np.float32),
        np.empty((members, batch, weights.head_bias.shape[1]), np.float64),
    )


@njit(cache=True, nogil=True, error_model="numpy")  # nogil: halves of a batch run in two threads at once
def _note_loop(
    out, uniforms, predictions, h, c, history, primer_length, scratch, network,
    temperatures, top_k, top_p, penalty, window, ngram,
):  # fmt: skip
    """Sample `out` (batch, notes, features) note by note from `predictions`, feeding each note back through
    `_advance`."""
    batch, notes, features = out.shape
    offsets, sizes, categorical = network.offsets, network.sizes, network.categorical
    resolution, velocity_bins = network.resolution, network.velocity_bins
    bin_width = 128 // velocity_bins
    pitch_logits = np.empty(sizes[0], np.float32)
    seen = np.zeros(sizes[0], np.bool_)
    controls = penalty != 1.0 or ngram > 0
    fed = np.empty((batch, features), np.float32)
    for i in range(notes):
        # Each feature as `NoteHeads.sample_step` draws it: a class of a categorical head by `sample_class`'s
        # rule, a regressed value clamped at 0.
        for b in range(batch):
            for f in range(features):
                lo = offsets[f]
                if f == 0:  # repetition control, top-k and top-p apply to the pitch only
                    pitch_logits[:] = predictions[b, lo : lo + sizes[f]]
                    if controls:
                        _control_repetition(pitch_logits, history[b], primer_length + i, penalty, window, ngram, seen)
                    chosen = _sample(pitch_logits, uniforms[i, f, b], temperatures[f], top_k, top_p)
                    out[b, i, f] = chosen
                    history[b, primer_length + i] = chosen
                elif categorical[f]:
                    chosen = _sample(predictions[b, lo : lo + sizes[f]], uniforms[i, f, b], temperatures[f], 0, 1.0)
                    if f < 3:
                        out[b, i, f] = np.float32(chosen) * resolution  # dequantise_time, in float32
                    else:
                        out[b, i, f] = chosen * bin_width + bin_width // 2  # bin_velocity
                else:
                    out[b, i, f] = max(predictions[b, lo], np.float32(0.0))
        if i + 1 < notes:
            fed[:] = out[:, i]  # (a C-ordered copy: `_advance` is then compiled for one array layout only)
            _advance(fed, predictions, h, c, scratch, network)


@njit(cache=True, nogil=True, error_model="numpy")
def _feed_primer(primer, predictions, h, c, scratch, network):
    """The state and predictions after `primer` ((P, features)), fed note by note from a zero state."""
    fed = np.empty((1, primer.shape[1]), np.float32)
    for j in range(primer.shape[0]):
        fed[0] = primer[j]
        _advance(fed, predictions, h, c, scratch, network)


def generate_after_primer(
    net: nn.Module, uniforms: torch.Tensor, length: int, settings, primer: np.ndarray
) -> np.ndarray:
    """The notes after `primer` ((P, features)): the compiled loop's part of `generation.sampling.generate_steps`,
    the primer included (fed once, every sample starting from its state). Returns (batch, length, features)
    float32, batch = uniforms' last axis."""
    batch = uniforms.shape[-1]
    temperature = settings.temperature
    timing = temperature if settings.timing_temperature is None else settings.timing_temperature
    velocity = temperature if settings.velocity_temperature is None else settings.velocity_temperature
    temperatures = np.array([temperature, timing, timing, velocity], np.float64)
    history = np.zeros((batch, len(primer) + length), np.int64)
    history[:, : len(primer)] = primer[:, 0].astype(np.int64)  # the pitches, as the torch loop reads them
    result = np.empty((batch, length, net.config.num_features), np.float32)
    # (The primer's batch-1 products wake OpenBLAS's threads too: the limit covers them as well as the loop.)
    with single_threaded_blas(min(batch, torch.get_num_threads()) > 1):
        one_predictions, one_h, one_c = primer_state(net, primer)
        predictions = np.repeat(one_predictions, batch, axis=0)
        h, c = (np.repeat(s, batch, axis=2) for s in (one_h, one_c))
        compiled_note_loop(
            net, result, uniforms.cpu().numpy().copy(), predictions, h, c, temperatures,
            top_k=settings.top_k, top_p=settings.top_p, history=history,
            repetition=(settings.repetition_penalty, settings.repetition_window, settings.no_repeat_ngram),
        )  # fmt: skip
    return result
