"""Crash and resume: a training process killed with SIGKILL leaves readable checkpoints, and `ckpt_path=last`
resumes it to the same weights as a run that was never stopped (CPU, fixed seed)."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from musicrnn.training.checkpoint_io import read_checkpoint
from tests.helpers import cli, console_command, train_args

pytestmark = pytest.mark.slow

EPOCHS = 6
# No sample logger, logger or final test/sample: only training, which is what is compared.
QUIET = [
    "logger=none",
    "~callbacks.sample_logger",
    "~callbacks.early_stopping",
    "test=false",
    "sample.num_notes=0",
    "seed=7",
]
RUN = [f"trainer.max_epochs={EPOCHS}", *QUIET]
# A run that cannot end on its own within the test, so that every planned kill lands on a live process.
ENDLESS = ["trainer.max_epochs=100000", *QUIET]


def train_command(corpus: Path, logs: Path, *extra: str, run: list[str] = RUN) -> list[str]:
    return [*console_command("musicrnn-train"), *train_args(corpus, logs, *run, *extra)]


def checkpoints(logs: Path) -> list[Path]:
    return sorted(logs.glob("train/runs/*/checkpoints/*.ckpt"))


def epoch_of(path: Path) -> int:
    return int(read_checkpoint(path)["epoch"])


def wait_until(process: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "training never reached the point to kill it"
        time.sleep(0.02)


def kill_when(process: subprocess.Popen, ready, timeout: float = 240) -> None:
    wait_until(process, ready, timeout)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_sigkill_then_ckpt_path_last_ends_with_the_same_weights_as_an_unstopped_run(session_corpus, tmp_path):
    cli("musicrnn-train", *train_args(session_corpus, tmp_path / "straight", *RUN), cwd=tmp_path)
    (straight,) = (tmp_path / "straight").glob("train/runs/*/checkpoints/last.ckpt")

    logs = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(session_corpus, logs), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def two_epochs_saved() -> bool:
        last = [p for p in checkpoints(logs) if p.name == "last.ckpt"]
        return bool(last) and epoch_of(last[0]) >= 1

    kill_when(process, two_epochs_saved)
    assert process.returncode == -signal.SIGKILL
    (killed_last,) = [p for p in checkpoints(logs) if p.name == "last.ckpt"]
    assert epoch_of(killed_last) < EPOCHS - 1, "the run finished before the kill: nothing was resumed"

    result = cli("musicrnn-train", *train_args(session_corpus, logs, *RUN, "ckpt_path=last"), cwd=tmp_path)
    assert f"resuming from {killed_last}" in result.stdout + result.stderr
    (resumed_last,) = [p for p in checkpoints(logs) if p.name == "last.ckpt" and p != killed_last]
    expected, resumed = read_checkpoint(straight), read_checkpoint(resumed_last)
    assert resumed["epoch"] == expected["epoch"] == EPOCHS - 1
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], tensor), f"{name} differs after resuming"
    for (key, value), other in zip(
        expected["optimizer_states"][0]["state"].items(), resumed["optimizer_states"][0]["state"].values()
    ):
        assert torch.equal(value["exp_avg"], other["exp_avg"]), f"optimizer state {key} differs after resuming"


def test_checkpoints_stay_readable_whenever_the_process_is_killed(session_corpus, tmp_path):
    """Kills at random moments (seeded): every checkpoint file left behind loads, and no temporary file is
    ever mistaken for one."""
    rng = random.Random(0)
    logs = tmp_path / "logs"
    for attempt in range(3):
        process = subprocess.Popen(
            train_command(session_corpus, logs, run=ENDLESS),
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # Wait for the first checkpoint of this run, then kill at a random moment in the next ~2 s, while
        # it goes on writing one checkpoint an epoch.
        before = set(checkpoints(logs))
        wait_until(process, lambda: bool(set(checkpoints(logs)) - before))
        time.sleep(rng.uniform(0.0, 2.0))
        assert process.poll() is None, f"attempt {attempt}: training ended on its own before the kill"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        for path in checkpoints(logs):
            checkpoint = read_checkpoint(path)
            assert "state_dict" in checkpoint and "musicrnn_random_state" in checkpoint
    assert checkpoints(logs)
