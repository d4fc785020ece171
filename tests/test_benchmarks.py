"""The benchmark suite runs end to end on a tiny setting (benchmarks measure; tests only check they run)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO, quiet_trainer, write_corpus

pytestmark = pytest.mark.slow


def test_the_benchmark_suite_runs_and_writes_its_table(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", num_pieces=12)
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.benchmarks",
            "--quick",
            "--corpus",
            str(corpus),
            "--out",
            str(out),
            "--pop909",
            str(corpus),
            "--device",
            "cpu",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] and results["machine"]["torch"]
    names = [row["measurement"] for row in results["table"]]
    for expected in (
        "training: musicrnn / plain",
        "generation, batch 1: musicrnn, compiled loop (notes/s)",
        "ensemble generation, compiled loop: time of K=5 / one model",
        "cold preparation, 2 workers: symusic / miditoolkit",
        "piano-roll training, POP909 whole pieces, independent keys: FLOP/s / peak",
        "cpu (cpu): training, seed model, bf16 autocast (steps/s)",  # --device is honoured
        "CLI: `musicrnn-train model.hiden_size=3` prints its error (s)",
        "default note_lstm, batch 1: beam search 4 x 2 (notes of the result/s)",
    ):
        assert expected in names
    assert all(row["value"] > 0 for row in results["table"])
    assert results["data_preparation_symusic_2"]["files"] == results["data_preparation_miditoolkit_2"]["files"] == 12
    assert "| measurement | value | target | met |" in result.stdout
    assert all(row["met"] is None for row in results["table"])  # tiny sizes: no verdict on any target


def test_the_lightning_path_trains_exactly_like_the_plain_loop(tiny_corpus):
    """Same seed, same batches: the LightningModule under the Trainer (gradient clipping as configured) and the
    benchmark's plain loop reach the same weights and loss after N steps, dropout included: the speed-ups
    (training metrics on every 10th batch, the loss logging) change no result."""
    import copy

    import torch
    from torch.utils.data import DataLoader

    from experiments.benchmarks.suite import seed_loss
    from musicrnn.data import NoteSequenceDataModule
    from musicrnn.training.models import note_lstm

    dm = NoteSequenceDataModule(str(tiny_corpus), seq_len=16, batch_size=8)
    dm.setup()
    windows = torch.stack([dm.datasets["train"][i] for i in range(32)])
    torch.manual_seed(0)
    module = note_lstm(hidden_size=32, num_layers=3, dropout=0.3, dense_size=64, learning_rate=5e-3)
    plain_net = copy.deepcopy(module.net)

    torch.manual_seed(123)
    from musicrnn.training.callbacks import Metrics

    trainer = quiet_trainer(
        max_steps=4,
        gradient_clip_val=1.0,
        enable_checkpointing=False,
        callbacks=[Metrics()],
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_dataloaders=DataLoader(list(windows), batch_size=8, shuffle=False))

    torch.manual_seed(123)
    optimizer = torch.optim.Adam(plain_net.parameters(), lr=5e-3)
    plain_net.train()
    # Through a DataLoader too: creating its iterator draws one number from torch's generator, which
    # shifts every dropout mask after it.
    for batch in DataLoader(list(windows), batch_size=8, shuffle=False):
        optimizer.zero_grad()
        loss = seed_loss(plain_net, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain_net.parameters(), 1.0)
        optimizer.step()

    for (name, ours), theirs in zip(module.net.state_dict().items(), plain_net.state_dict().values()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6, msg=name)
    torch.manual_seed(5)
    after_lightning = seed_loss(module.net.train(), windows[:8])
    torch.manual_seed(5)
    assert seed_loss(plain_net, windows[:8]).item() == pytest.approx(after_lightning.item(), rel=1e-5)
