"""The benchmark suite runs end to end on a tiny setting (benchmarks measure; tests only check they run)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO, write_corpus

pytestmark = pytest.mark.slow


def test_the_benchmark_suite_runs_and_writes_its_table(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", num_pieces=12)
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.benchmarks", "--quick", "--corpus", str(corpus), "--out", str(out),
         "--pop909", str(corpus)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] and results["machine"]["torch"]
    names = [row["measurement"] for row in results["table"]]
    for expected in ("training: musicrnn / plain", "generation, batch 1: musicrnn (notes/s)",
                     "ensemble generation: time of K=5 / one model", "data preparation: 2 workers / 1"):
        assert expected in names
    assert all(row["value"] > 0 for row in results["table"])
    assert results["data_preparation_2"]["files"] == 12
    assert "| measurement | value | target | met |" in result.stdout
