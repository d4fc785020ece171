"""Sweeps and scale-out through the real CLI: the basic sweeper, Optuna with SQLite (and resuming it),
the joblib and submitit_local launchers, DDP on CPU, a diverging trial, and musicrnn-sweep-report."""

from __future__ import annotations

import csv
import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import TINY_MODEL, cli, composed

pytestmark = pytest.mark.slow

TINY = [
    *(t for t in TINY_MODEL if not t.startswith("model.num_layers=")),
    "model.num_layers=1",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=4",
    "sample.num_notes=0",
]


def args(corpus: Path, logs: Path, *extra: str) -> list[str]:
    """The tiny run's overrides; a key given in `extra` replaces the tiny setting (one value per key, as
    the sweepers want)."""
    keys = {e.split("=", 1)[0] for e in extra}
    return [
        "data=midi_dir",
        f"data.path={corpus}",
        f"paths.log_dir={logs}",
        *(t for t in TINY if t.split("=", 1)[0] not in keys),
        *extra,
    ]


def multirun_dir(logs: Path) -> Path:
    (folder,) = (logs / "train" / "multirun").iterdir()
    return folder


def report(folder: Path, cwd: Path) -> tuple[str, list[dict]]:
    result = cli("musicrnn-sweep-report", str(folder), cwd=cwd)
    with open(folder / "sweep_report.csv") as handle:
        return result.stdout, list(csv.DictReader(handle))


def test_a_basic_multirun_reports_each_job_sorted_by_its_objective(session_corpus, tmp_path):
    logs = tmp_path / "logs"
    cli("musicrnn-train", "-m", *args(session_corpus, logs, "model.hidden_size=8,16"), cwd=tmp_path)
    folder = multirun_dir(logs)
    jobs = {}
    for job in ("0", "1"):
        summary = json.loads((folder / job / "metrics.json").read_text())
        assert (
            summary["monitor"] == "val/loss"
            and math.isfinite(summary["objective"])
            and Path(summary["best_checkpoint"]).is_file()
        )
        jobs[job] = summary["objective"]
        events = EventAccumulator(str(folder / job / "tensorboard"))
        events.Reload()
        assert events.Scalars("hp_metric")[-1].value == pytest.approx(
            summary["objective"]
        )  # the HParams tab's objective
        assert summary["objective"] == pytest.approx(min(e.value for e in events.Scalars("val/loss")))  # the best epoch

    stdout, rows = report(folder, tmp_path)
    assert [row["job"] for row in rows] == sorted(jobs, key=jobs.get)  # best first
    assert {row["overrides"] for row in rows} == {"model.hidden_size=8", "model.hidden_size=16"}
    assert all(row["status"] == "ok" and row["best_checkpoint"].endswith("checkpoints/best.ckpt") for row in rows)
    assert float(rows[0]["objective"]) == pytest.approx(min(jobs.values()))
    assert "| rank | job | overrides | objective | test/pitch_perplexity" in stdout
    assert (folder / "sweep_report.md").read_text() in stdout


def test_optuna_sweep_in_sqlite_resumes_from_its_storage(session_corpus, tmp_path):
    import optuna

    logs = tmp_path / "logs"
    search = ["hparams_search=note_optuna", "model.hidden_size=choice(8,16)", "data.seq_len=choice(8,16)"]
    cli("musicrnn-train", *args(session_corpus, logs, *search, "hydra.sweeper.n_trials=3"), cwd=tmp_path)
    storage = f"sqlite:///{logs / 'optuna_note_lstm.db'}"
    study = optuna.load_study(study_name="note_lstm", storage=storage)
    assert len(study.trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert set(study.trials[0].params) == {"model.hidden_size", "data.seq_len", "model.dropout", "model.learning_rate"}

    cli("musicrnn-train", *args(session_corpus, logs, *search, "hydra.sweeper.n_trials=1"), cwd=tmp_path)
    study = optuna.load_study(study_name="note_lstm", storage=storage)
    assert len(study.trials) == 4  # the same study, one more trial
    first_sweep = sorted((logs / "train" / "multirun").iterdir())[0]
    stdout, rows = report(first_sweep, tmp_path)
    assert len(rows) == 3 and "Optuna's best value" in stdout
    objectives = sorted(t.value for t in study.trials[:3])
    assert [float(row["objective"]) for row in rows] == pytest.approx(objectives)


def test_joblib_runs_two_jobs_in_parallel_processes(session_corpus, tmp_path):
    logs = tmp_path / "logs"
    result = cli(
        "musicrnn-train",
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *args(session_corpus, logs, "seed=1,2"),
        cwd=tmp_path,
    )
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    folder = multirun_dir(logs)
    assert all((folder / job / "metrics.json").is_file() for job in ("0", "1"))


def test_submitit_local_runs_a_job_as_a_cluster_would(session_corpus, tmp_path):
    logs = tmp_path / "logs"
    cli(
        "musicrnn-train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        *args(session_corpus, logs, "seed=1"),
        cwd=tmp_path,
    )
    folder = multirun_dir(logs)
    assert json.loads((folder / "0" / "metrics.json").read_text())["objective"] > 0
    assert any((folder / ".submitit").rglob("*_result.pkl"))  # submitit ran it as a job of its own


def test_ddp_on_cpu_shards_the_data_over_two_processes(session_corpus, tmp_path):
    from hydra.utils import instantiate

    run = tmp_path / "run"
    overrides = args(
        session_corpus,
        tmp_path / "logs",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=null",
        "data.batch_size=8",
    )
    result = cli("musicrnn-train", *overrides, f"hydra.run.dir={run}", cwd=tmp_path)
    assert (
        "Starting with 2 processes" in result.stdout + result.stderr
        and "distributed_backend=gloo" in result.stdout + result.stderr
    )

    cfg = composed("train", [o for o in overrides if not o.startswith("trainer")])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    windows = len(datamodule.datasets["train"])
    per_process = math.ceil(windows / 2)  # DistributedSampler: each process its own half (padded to equal size)
    expected_steps = 2 * math.ceil(per_process / 8)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["global_step"] == expected_steps
    summary = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(summary["objective"]) and 0 <= summary["metrics"]["test/pitch_acc_top1"] <= 1


def test_a_diverging_trial_gets_the_worst_objective_and_the_sweep_goes_on(session_corpus, tmp_path):
    logs = tmp_path / "logs"
    result = cli(
        "musicrnn-train",
        "-m",
        *args(session_corpus, logs, "model.learning_rate=inf,0.002", "trainer.max_epochs=3"),
        cwd=tmp_path,
    )
    assert (
        "the run diverged (val/loss is not finite): its objective is inf; no test and no sample"
        in result.stdout + result.stderr
    )
    folder = multirun_dir(logs)
    diverged = json.loads((folder / "0" / "metrics.json").read_text())  # strict JSON: non-finite values are null
    assert diverged["diverged"] and diverged["objective"] is None and diverged["best_checkpoint"] == ""
    assert not any(name.startswith("test/") for name in diverged["metrics"])  # not tested
    assert diverged["epochs"] == 1  # early stopping's check_finite ended it after the first non-finite epoch
    _, rows = report(folder, tmp_path)
    assert (
        [row["job"] for row in rows] == ["1", "0"] and rows[1]["status"] == "diverged" and rows[1]["objective"] == "inf"
    )


def test_sweep_report_on_a_folder_without_jobs_is_one_line(tmp_path):
    result = subprocess.run(["musicrnn-sweep-report", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.strip().startswith(
        f"musicrnn-sweep-report: error: {tmp_path}: no job folders (*/.hydra/overrides.yaml) here"
    )
