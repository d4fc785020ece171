"""`train()` in process, composed the way the CLI composes it."""

from __future__ import annotations

import pytest

from musicrnn.cli.train import train
from tests.helpers import composed

pytestmark = pytest.mark.slow


def _cfg(corpus, out, seed, *extra):
    return composed(
        "train",
        [
            "data=midi_dir",
            f"data.path={corpus}",
            f"paths.output_dir={out}",
            f"seed={seed}",
            "model.hidden_size=16",
            "model.num_layers=2",
            "model.dense_size=16",
            "data.seq_len=16",
            "data.batch_size=16",
            "data.transpose=3",
            "trainer.max_epochs=2",
            "trainer.accelerator=cpu",
            "trainer.enable_progress_bar=false",
            "sample.num_notes=10",
            "logger=none",
            *extra,
        ],
    )


def test_the_same_seed_gives_the_same_metrics_on_cpu(session_corpus, tmp_path):
    first, _ = train(_cfg(session_corpus, tmp_path / "a", seed=5))
    second, _ = train(_cfg(session_corpus, tmp_path / "b", seed=5))
    other, _ = train(_cfg(session_corpus, tmp_path / "c", seed=6))
    assert first["test/pitch_nll"] > 0 and set(first) == set(second)
    assert first == second
    assert other["test/pitch_nll"] != first["test/pitch_nll"]


def test_bf16_mixed_precision_trains_and_tests(session_corpus, tmp_path):
    """`trainer.precision=bf16-mixed` (what `trainer=gpu` offers for recent GPUs) runs end to end; here on the
    CPU's bfloat16 autocast, with metrics close to fp32's after the same two epochs."""
    mixed, objects = train(_cfg(session_corpus, tmp_path / "bf16", 5, "+trainer.precision=bf16-mixed"))
    full, _ = train(_cfg(session_corpus, tmp_path / "fp32", seed=5))
    assert objects["trainer"].precision == "bf16-mixed"
    assert 0 < mixed["test/pitch_nll"] < 10
    assert abs(mixed["test/pitch_nll"] - full["test/pitch_nll"]) < 0.1 * full["test/pitch_nll"]
