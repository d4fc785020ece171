"""The measurements behind "what limits it" in experiments/benchmarks/README.md, re-runnable:

python -m experiments.benchmarks.profiles lstm         # the training step: as the paper has it, no dropout, no oneDNN
python -m experiments.benchmarks.profiles generation   # one compiled generation step at batch 8 and 16, part by part
"""

from __future__ import annotations

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


def generation_parts(batch: int = 16, repeats: int = 2000) -> dict[str, float]:
    """Microseconds per generation step at `batch` (one thread), part by part, inside Numba like the compiled
    loop: the seed model's five products taken as one BLAS call each, then as the loop takes them (8 rows
    and a column block a call), the LSTM cells of its three layers, the sampling."""
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
    def cells(gates, h, c, n):
        for _ in range(n):
            for _layer in range(3):
                _lstm_cell(gates, h, c)

    @njit
    def sampling(logits, n):
        total = 0
        for _ in range(n):
            for b in range(logits.shape[0]):
                total += _sample(logits[b], 0.5, 1.0)
        return total

    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    # The seed model's products: layer 1 ([pitch, step, duration, h] x 4 gates), layers 2-3, dense, heads.
    shapes = ((131, 512), (256, 512), (256, 512), (128, 256), (256, 130))
    xs = tuple(f32(batch, k) for k, _ in shapes)
    ws = tuple(f32(k, n) for k, n in shapes)
    blocks = tuple(column_blocks(w) for w in ws)
    biases = tuple(f32(n) for _, n in shapes)
    outs = tuple(np.empty((batch, n), np.float32) for _, n in shapes)
    gates, h, c, logits = (
        f32(batch, 512),
        np.zeros((batch, 128), np.float32),
        np.zeros((batch, 128), np.float32),
        f32(batch, 128),
    )
    timings = {}
    for name, run in (
        ("products, one BLAS call each", lambda n: whole_products(xs, ws, n)),
        ("products, 8 rows x column blocks (the loop)", lambda n: block_products(xs, blocks, biases, outs, n)),
        ("LSTM cells", lambda n: cells(gates, h, c, n)),
        ("sampling", lambda n: sampling(logits, n)),
    ):
        run(1)
        started = time.perf_counter()
        run(repeats)
        timings[name] = (time.perf_counter() - started) / repeats * 1e6
    return timings


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", default="all", choices=("lstm", "generation", "all"))
    what = parser.parse_args().what
    if what in ("lstm", "all"):
        for variant in ("as_paper", "no_dropout", "no_onednn"):  # each in its own process: oneDNN is a global switch
            code = f"from experiments.benchmarks.profiles import lstm_steps_per_second as f; print(f({variant!r}))"
            rate = float(
                subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            )
            print(f"training step, {variant}: {rate:,.0f} time steps/s")
    if what in ("generation", "all"):
        for batch in (8, 16):
            for name, micros in generation_parts(batch).items():
                print(f"generation step at batch {batch}, one thread, {name}: {micros:.0f} us")


if __name__ == "__main__":
    main()
