"""The measurements behind "what limits it" in experiments/benchmarks/README.md, re-runnable:

python -m experiments.benchmarks.profiles lstm         # the training step: as the paper has it, no dropout, no oneDNN
python -m experiments.benchmarks.profiles generation   # one compiled generation step at batch 1, 8, 16, part by part
python -m experiments.benchmarks.profiles pianoroll    # the JSB recipe's training step by operator; padding vs packing
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np


def lstm_steps_per_second(variant: str, repeats: int = 30) -> float:
    """Time steps/s of the seed model's LSTM stack + dense + heads, forward + backward + Adam, batch 64 x 100."""
    import torch

    torch.manual_seed(0)
    if variant == "no_onednn":
        torch.backends.mkldnn.enabled = False
    lstm = torch.nn.LSTM(3, 128, num_layers=3, dropout=0.0 if variant == "no_dropout" else 0.3, batch_first=True)
    head = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 130))
    optimiser = torch.optim.Adam([*lstm.parameters(), *head.parameters()])
    x = torch.rand(64, 100, 3)

    def step():
        out, _ = lstm(x)
        loss = head(out).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    for _ in range(5):
        step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return 64 * 100 * repeats / (time.perf_counter() - started)


# The products of one generation step, (inputs, outputs) each, and the LSTM layers' hidden size.
SEED_MODEL_PRODUCTS = ((131, 512), (256, 512), (256, 512), (128, 256), (256, 130)), 128  # 3 layers, dense, heads
# The default note_lstm: [pitch embedding 64, step, duration, velocity embedding 16, h] x 4 gates, layer 2, the
# heads (128 pitches + 101 + 101 timing classes + 32 velocity bins).
DEFAULT_MODEL_PRODUCTS = ((82 + 256, 1024), (512, 1024), (256, 362)), 256


def generation_parts(batch: int = 16, repeats: int = 2000, model=SEED_MODEL_PRODUCTS) -> dict[str, float]:
    """Microseconds per generation step at `batch` (one thread), part by part, inside Numba like the compiled
    loop: the model's products taken as one BLAS call each, then as the loop takes them (8 rows and a column
    block a call), the LSTM cells of its layers, the sampling of a pitch; and the weight bytes a step reads
    over the products' time (GB/s: at batch 1 a step reads every weight once for ~2 FLOP per weight)."""
    from numba import njit

    from musicrnn.generation.compiled_sampling import _affine, _lstm_cell, _sample, column_blocks

    @njit
    def whole_products(xs, ws, n):
        for _ in range(n):
            for x, w in zip(xs, ws):
                np.dot(x, w)

    @njit
    def block_products(xs, blocks, biases, outs, n):
        for _ in range(n):
            for x, w, b, o in zip(xs, blocks, biases, outs):
                _affine(x, w, b, o)

    @njit
    def cells(gates, h, c, n, layers):
        for _ in range(n):
            for _layer in range(layers):
                _lstm_cell(gates, h, c)

    @njit
    def sampling(logits, n):
        total = 0
        for _ in range(n):
            for b in range(logits.shape[0]):
                total += _sample(logits[b], 0.5, 1.0, 0, 1.0)
        return total

    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    shapes, hidden = model
    layers = sum(n == 4 * hidden for _, n in shapes)
    xs = tuple(f32(batch, k) for k, _ in shapes)
    ws = tuple(f32(k, n) for k, n in shapes)
    blocks = tuple(column_blocks(w) for w in ws)
    biases = tuple(f32(n) for _, n in shapes)
    outs = tuple(np.empty((batch, n), np.float32) for _, n in shapes)
    gates, h, c, logits = (
        f32(batch, 4 * hidden),
        np.zeros((batch, hidden), np.float32),
        np.zeros((batch, hidden), np.float32),
        f32(batch, 128),
    )
    timings = {}
    for name, run in (
        ("products, one BLAS call each", lambda n: whole_products(xs, ws, n)),
        ("products, 8 rows x column blocks (the loop)", lambda n: block_products(xs, blocks, biases, outs, n)),
        ("LSTM cells", lambda n: cells(gates, h, c, n, layers)),
        ("sampling", lambda n: sampling(logits, n)),
    ):
        run(1)
        started = time.perf_counter()
        run(repeats)
        timings[name] = (time.perf_counter() - started) / repeats * 1e6
    weight_bytes = sum(4 * k * n for k, n in shapes)
    timings["weights read per step (MB)"] = weight_bytes / 1e6
    timings["weight bytes / products' time (GB/s)"] = (
        weight_bytes / timings["products, 8 rows x column blocks (the loop)"] / 1e3
    )
    return timings


def pianoroll_step_profile(jsb: str, steps: int = 12) -> str:
    """torch.profiler's operator table over `steps` training steps of the JSB recipe's network (the benchmark's
    `pianoroll_recipe`), and the LSTM alone, forward + backward, over the same padded batches against the same
    batches as packed sequences (which skip the padding)."""
    from torch.nn.utils.rnn import pack_padded_sequence
    from torch.profiler import ProfilerActivity, profile

    from experiments.benchmarks.suite import pianoroll_recipe

    model, batches, train, _ = pianoroll_recipe(jsb)
    batches = batches[: steps + 2]
    train(batches[:2])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train(batches[2:])
    lines = [prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)]
    real = sum(int((lengths - 1).sum()) for _, lengths in batches)
    padded = sum(rolls.shape[0] * (rolls.shape[1] - 1) for rolls, _ in batches)
    lines.append(f"frames computed / real target frames, padded batches: {padded / real:.2f}")
    lstm = model.net.rnn
    for packed in (False, True):
        started = time.perf_counter()
        for rolls, lengths in batches:
            inputs = rolls[:, :-1]
            if packed:
                inputs = pack_padded_sequence(inputs, lengths - 1, batch_first=True, enforce_sorted=False)
            out, _ = lstm(inputs)
            (out.data if packed else out).sum().backward()
        lines.append(
            f"LSTM forward + backward, {'packed' if packed else 'padded'}: {time.perf_counter() - started:.2f} s"
        )
    return "\n".join(lines)


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="all", choices=("lstm", "generation", "pianoroll", "all"))
    parser.add_argument("--jsb", default=os.environ.get("MUSICRNN_JSB_CHORALES"), help="the JSB Chorales pickle")
    args = parser.parse_args()
    what = args.what
    if what in ("lstm", "all"):
        for variant in ("as_paper", "no_dropout", "no_onednn"):  # each in its own process: oneDNN is a global switch
            code = f"from experiments.benchmarks.profiles import lstm_steps_per_second as f; print(f({variant!r}))"
            rate = float(
                subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            )
            print(f"training step, {variant}: {rate:,.0f} time steps/s")
    if what in ("generation", "all"):
        for model_name, model in (("seed model", SEED_MODEL_PRODUCTS), ("default note_lstm", DEFAULT_MODEL_PRODUCTS)):
            for batch in (1, 8, 16):
                for name, value in generation_parts(batch, model=model).items():
                    unit = "" if "(" in name else " us"
                    print(f"generation step, {model_name}, batch {batch}, one thread, {name}: {value:.1f}{unit}")
    if what in ("pianoroll", "all") and args.jsb:
        print(pianoroll_step_profile(args.jsb))


if __name__ == "__main__":
    main()
