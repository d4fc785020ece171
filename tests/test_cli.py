"""The real console scripts, end to end, on small real MIDI corpora (subprocesses, as a user runs them)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from musicrnn.midi.io import read_midi
from tests.helpers import TINY_MODEL, cli, clis, composed, require_shared, train_args, write_piece

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_run(session_corpus, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    work = tmp_path_factory.mktemp("train")
    result = cli("musicrnn-train", *train_args(session_corpus, work / "logs", "trainer.max_epochs=3"), cwd=work)
    (run_dir,) = (work / "logs" / "train" / "runs").iterdir()
    return run_dir, result


def test_train_writes_checkpoints_logs_and_a_sample(trained_run):
    run_dir, result = trained_run
    for line in ("best checkpoint", "TensorBoard", "sample", "test metrics", "pitch_acc_top1", "unigram    bigram"):
        assert line in result.stdout
    assert (run_dir / "checkpoints" / "best.ckpt").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert len(read_midi(run_dir / "samples" / "sample.mid")) == 20


def test_a_run_without_a_progress_bar_logs_one_line_per_epoch(trained_run):
    _, result = trained_run  # trainer.enable_progress_bar=false, 3 epochs
    lines = [line for line in result.stdout.splitlines() if "musicrnn.progress" in line or " epoch " in line]
    epochs = [
        re.search(
            r"epoch (\d+)/3: train/loss ([\d.]+), val/loss ([\d.]+) \(monitored val/loss, best ([\d.]+)\), ([\d.]+) s$",
            line,
        )
        for line in lines
    ]
    epochs = [m for m in epochs if m]
    assert [int(m.group(1)) for m in epochs] == [1, 2, 3]
    for m in epochs:
        assert float(m.group(4)) <= float(m.group(3)) + 1e-4  # the best so far is at most this epoch's


def test_tensorboard_shows_losses_metrics_for_every_stage_and_the_learning_rate(trained_run):
    run_dir, _ = trained_run
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for stage in ("train", "val", "test"):
        for metric in ("loss", "pitch_acc_top1", "pitch_acc_top5", "pitch_perplexity", "step_mse", "duration_mse"):
            name = f"{stage}/{metric}_epoch" if (stage, metric) == ("train", "loss") else f"{stage}/{metric}"
            assert name in tags, name
    assert {"val/unigram_pitch_acc_top1", "test/bigram_pitch_perplexity", "lr-Adam"} <= tags
    assert len(events.Scalars("val/loss")) == 3
    hparams = events.PluginTagToContent("hparams")  # what TensorBoard's HParams tab reads
    assert hparams and any(b"hidden_size" in content for content in hparams.values())


def test_checkpoint_is_self_sufficient(trained_run):
    run_dir, _ = trained_run
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    meta = checkpoint["musicrnn"]
    assert meta["format_version"] == 1 and meta["time_unit"] == "seconds" and len(meta["primers"]) >= 1
    assert checkpoint["hyper_parameters"]["hidden_size"] == 16


def test_generate_from_the_checkpoint_with_a_midi_primer(trained_run, tmp_path):
    run_dir, _ = trained_run
    primer = write_piece(tmp_path / "primer.mid", seed=99, num_bars=4)
    cli(
        "musicrnn-generate",
        f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
        "num_notes=37",
        "temperature=1.0",
        f"primer={primer}",
        "output=out.mid",
        cwd=tmp_path,
    )
    notes = read_midi(tmp_path / "out.mid")
    assert len(notes) == 37
    assert (notes["end"] > notes["start"]).all()
    assert not (tmp_path / ".hydra").exists() and not (tmp_path / "outputs").exists()


def test_generate_several_samples_from_a_stored_primer_reproducibly(trained_run, tmp_path):
    run_dir, _ = trained_run
    args = [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "num_notes=25", "num_samples=3", "top_k=10", "seed=3"]
    cli("musicrnn-generate", *args, "output=a/gen.mid", cwd=tmp_path)
    cli("musicrnn-generate", *args, "output=b/gen.mid", cwd=tmp_path)
    for i in range(3):
        a, b = read_midi(tmp_path / "a" / f"gen_{i:02d}.mid"), read_midi(tmp_path / "b" / f"gen_{i:02d}.mid")
        assert len(a) == 25 and (a == b).all()


def test_a_run_whose_stdout_is_a_file_prints_lines_not_a_progress_bar(session_corpus, tmp_path):
    # Captured stdout is not a terminal, as in a SLURM log: the bar (on by default) gives way to epoch lines.
    args = train_args(session_corpus, tmp_path / "logs", "trainer.max_epochs=2", "trainer.enable_progress_bar=true")
    result = cli("musicrnn-train", *args, "sample.num_notes=0", "test=false", "logger=none", cwd=tmp_path)
    assert "it/s" not in result.stdout and "\r" not in result.stdout
    assert re.search(r"epoch 1/2: train/loss [\d.]+, val/loss [\d.]+", result.stdout)
    assert re.search(r"epoch 2/2: ", result.stdout)


def test_generate_with_repetition_control_and_beam_search(trained_run, tmp_path):
    run_dir, _ = trained_run
    base = [f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", "num_notes=40", "num_samples=2", "seed=3"]
    controlled = [
        "no_repeat_ngram=2",
        "repetition_window=40",
        "beam_size=2",
        "branch_factor=2",
        "steps_per_iteration=4",
    ]
    result = cli("musicrnn-generate", *base, *controlled, "output=c/gen.mid", cwd=tmp_path)
    assert result.stdout.count("40 generated notes") == 2
    assert all(len(read_midi(tmp_path / "c" / f"gen_{i:02d}.mid")) == 40 for i in range(2))
    plain = cli("musicrnn-generate", *base, "beam_size=1", "branch_factor=1", "output=p/gen.mid", cwd=tmp_path)
    default = cli("musicrnn-generate", *base, "output=d/gen.mid", cwd=tmp_path)
    assert plain.returncode == default.returncode == 0
    for i in range(2):  # beam 1 x 1 is plain sampling
        assert (read_midi(tmp_path / "p" / f"gen_{i:02d}.mid") == read_midi(tmp_path / "d" / f"gen_{i:02d}.mid")).all()


def test_last_checkpoint_is_the_last_epoch_and_resumes_from_there(session_corpus, tmp_path):
    # mode=max makes "best" the worst epoch, so best.ckpt and last.ckpt must differ.
    first = tmp_path / "first"
    cli(
        "musicrnn-train",
        *train_args(
            session_corpus,
            first / "logs",
            "trainer.max_epochs=3",
            "callbacks.model_checkpoint.mode=max",
            "sample.num_notes=0",
        ),
        cwd=tmp_path,
    )
    (run_dir,) = (first / "logs" / "train" / "runs").iterdir()
    epoch = lambda path: torch.load(path, map_location="cpu", weights_only=True)["epoch"]  # noqa: E731
    assert epoch(run_dir / "checkpoints" / "last.ckpt") == 2
    assert epoch(run_dir / "checkpoints" / "best.ckpt") != 2

    second = tmp_path / "second"
    last = run_dir / "checkpoints" / "last.ckpt"
    cli(
        "musicrnn-train",
        *train_args(session_corpus, second / "logs", "trainer.max_epochs=4", f"ckpt_path={last}"),
        cwd=tmp_path,
    )
    (resumed,) = (second / "logs" / "train" / "runs").iterdir()
    assert epoch(resumed / "checkpoints" / "last.ckpt") == 3  # epochs 0-2 came from the checkpoint; only 3 ran here
    events = EventAccumulator(str(resumed / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("val/loss")) == 1


def test_multirun_gives_each_job_its_own_folder(session_corpus, tmp_path):
    cli(
        "musicrnn-train",
        "-m",
        *train_args(session_corpus, tmp_path / "logs", "trainer.max_epochs=1", "sample.num_notes=0"),
        "model.hidden_size=8,12",
        cwd=tmp_path,
    )
    (sweep,) = (tmp_path / "logs" / "train" / "multirun").iterdir()
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1"]
    sizes = []
    for job in jobs:
        assert (job / "checkpoints" / "best.ckpt").is_file() and list((job / "tensorboard").glob("events.*"))
        sizes.append(
            torch.load(job / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"]["hidden_size"]
        )
        assert (job / ".hydra" / "overrides.yaml").is_file()
    assert sizes == [8, 12]


def test_note_lstm_trains_and_samples_categorical_timing(session_corpus, tmp_path):
    cli(
        "musicrnn-train",
        *train_args(
            session_corpus, tmp_path / "logs", "model=note_lstm", "model.pitch_embedding_dim=8", "trainer.max_epochs=1"
        ),
        cwd=tmp_path,
    )
    (run_dir,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert {"test/step_perplexity", "test/duration_perplexity", "test/bigram_pitch_perplexity"} <= set(
        events.Tags()["scalars"]
    )
    cli(
        "musicrnn-generate",
        f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
        "num_notes=30",
        "timing_temperature=0.5",
        "output=cat.mid",
        cwd=tmp_path,
    )
    notes = read_midi(tmp_path / "cat.mid")
    assert len(notes) == 30
    # Sampled timing lies on the 0.02 s grid of the categorical heads (at 120 bpm, 480 ticks per beat).
    onsets = notes["start_tick"] / (480 * 2)
    np.testing.assert_allclose(onsets / 0.02, np.round(onsets / 0.02), atol=0.05)


def test_a_wrong_config_key_is_one_clear_line(tmp_path):
    result = cli("musicrnn-train", "model.hiden_size=64", cwd=tmp_path, check=False, as_module=True)
    assert result.returncode == 1 and result.stderr.strip() == (
        "musicrnn-train: error: model.hiden_size: no such setting (did you mean model.hidden_size?)"
    )
    result = cli("musicrnn-generate", "ckpt_path=x.ckpt", "model=seed_paper", cwd=tmp_path, check=False)
    assert result.returncode == 1 and result.stderr.strip().startswith("musicrnn-generate: error: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "model" in result.stderr


def test_a_folder_of_broken_files_is_one_clear_line(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mid").write_bytes(b"")
    result = cli("musicrnn-train", *train_args(tmp_path / "bad", tmp_path / "logs"), cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "musicrnn-train: error: no usable MIDI file under" in result.stderr


def test_a_missing_checkpoint_is_one_clear_line(tmp_path):
    result = cli("musicrnn-generate", "ckpt_path=nowhere/best.ckpt", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "musicrnn-generate: error: checkpoint nowhere/best.ckpt: file not found"
    result = cli(
        "musicrnn-train", "ckpt_path=nowhere/last.ckpt", f"paths.log_dir={tmp_path}", cwd=tmp_path, check=False
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "musicrnn-train: error: checkpoint nowhere/last.ckpt: file not found"


def test_a_file_that_is_not_a_checkpoint_is_one_clear_line(tmp_path):
    midi = write_piece(tmp_path / "song.mid", seed=1, num_bars=1)
    result = cli("musicrnn-generate", f"ckpt_path={midi}", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "weights_only" not in result.stderr
    assert "not a musicrnn checkpoint" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_generate_setting_that_does_not_exist_is_one_clear_line(tmp_path):
    # Checked before the checkpoint is read: a typo such as +num_note=50 would otherwise be ignored.
    result = cli("musicrnn-generate", "ckpt_path=nowhere/best.ckpt", "+num_note=50", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith(
        "musicrnn-generate: error: num_note=50: not a setting of musicrnn-generate (its settings: "
    )
    assert len(result.stderr.strip().splitlines()) == 1 and "num_notes" in result.stderr


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["primer_index=99"], r"primer_index=99: the checkpoint stores \d+ held-out primers \(0\.\.\d+\)"),
        (["primer_index=-1"], r"primer_index=-1: the checkpoint stores \d+ held-out primers"),
        (["num_frames=10"], r"num_frames=10: not a setting for .*best\.ckpt, a note model; it takes num_notes$"),
        (
            ["primer_frames=4", "num_notes=5"],
            r"primer_frames=4: not a setting for .*, a note model; it takes primer_notes$",
        ),
    ],
)
def test_generate_refuses_what_it_would_otherwise_ignore_or_wrap(
    trained_run, tmp_path, monkeypatch, overrides, expected
):
    """In process, on the composed config: a primer number the checkpoint does not have, and the piano-roll
    models' settings given for a note model."""
    from musicrnn.cli.generate import generate
    from musicrnn.errors import MusicrnnError

    run_dir, _ = trained_run
    monkeypatch.chdir(tmp_path)
    cfg = composed("generate", [f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", *overrides])
    with pytest.raises(MusicrnnError, match=expected):
        generate(cfg, [override.split("=")[0] for override in overrides])
    assert not list(tmp_path.glob("*.mid"))
    stored = len(torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["musicrnn"]["primers"])
    (written,) = generate(
        composed(
            "generate",
            [f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}", f"primer_index={stored - 1}", "num_notes=5"],
        )
    )
    assert len(read_midi(written)) == 5


@pytest.mark.parametrize(
    "args, expected",
    [
        (["data=midi_dir"], "Missing mandatory value: data.path"),
        (["data=pop909"], "MUSICRNN_POP909"),
    ],
    ids=["no-data-path", "no-pop909-variable"],
)
def test_missing_settings_are_one_clear_line(tmp_path, monkeypatch, args, expected):
    monkeypatch.delenv("MUSICRNN_POP909", raising=False)
    result = cli("musicrnn-train", *args, f"paths.log_dir={tmp_path}", cwd=tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()  # nothing else on stderr: no Lightning or seed lines before it
    assert line.startswith("musicrnn-train: error:") and expected in line


def test_default_config_runs_on_the_bach_chorales(tmp_path):
    """The README's first command (data=bach_chorales, model=seed_paper), on three chorales, one batch."""
    from musicrnn.data.bach_chorales import extract_bach_chorales

    works = ["bach/bwv269", "bach/bwv347", "bach/bwv267", "bach/bwv86.6"]
    chorales = extract_bach_chorales(tmp_path / "chorales", works=works, progress=False)
    assert len(list(chorales.glob("*.mid"))) == 4 and (chorales / ".complete").exists()
    assert all(len(read_midi(p)) > 100 for p in chorales.glob("*.mid"))
    result = cli(
        "musicrnn-train",
        f"data.path={chorales}",
        f"paths.log_dir={tmp_path / 'logs'}",
        "trainer.fast_dev_run=true",
        "data.seq_len=50",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert "musicrnn-train finished" in result.stdout and "test metrics" in result.stdout


@pytest.mark.shared_data
def test_pop909_config_reads_its_path_from_the_environment(tmp_path, monkeypatch):
    root = require_shared("pop909", "POP909")
    subset = tmp_path / "pop"
    for name in ("001", "002", "003", "004", "005"):
        shutil.copytree(root / name, subset / name, ignore=shutil.ignore_patterns("*.txt"))
    monkeypatch.setenv("MUSICRNN_POP909", str(subset))
    result = cli(
        "musicrnn-train",
        "data=pop909",
        f"paths.log_dir={tmp_path / 'logs'}",
        *TINY_MODEL,
        "trainer.fast_dev_run=true",
        cwd=tmp_path,
    )
    assert "prepared 5 of 5 MIDI files" in result.stdout + result.stderr


@pytest.mark.shared_data
def test_jsb_experiment_trains_tests_and_generates_from_the_piano_roll_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICRNN_JSB_CHORALES", str(require_shared("jsb_chorales", "JSB Chorales.pickle")))
    result = cli(
        "musicrnn-train",
        "experiment=jsb_lstm",
        f"paths.log_dir={tmp_path / 'logs'}",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "model.hidden_size=32",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    # The pickle's 229 training chorales of 13,807 frames (test_pianoroll checks both): every frame but each
    # piece's first is a target.
    assert (
        f"piano rolls (88 keys from MIDI 21, whole pieces): train 229 pieces / {13_807 - 229} target frames"
        in result.stdout + result.stderr
    )
    lines = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()[-6:] if line.startswith("    ")}
    nll, unigram_nll = map(float, lines["frame_nll"])
    assert 0 < nll < 88 * np.log(2) and 0 < unigram_nll < 88 * np.log(2)
    assert 0 <= float(lines["frame_accuracy"][0]) <= 1
    (run_dir,) = (tmp_path / "logs" / "jsb_lstm" / "runs").iterdir()
    sample = read_midi(run_dir / "samples" / "sample.mid")
    assert len(sample) > 0 and sample["start_beat"].max() < 64  # 64 quarter-note frames, after no primer

    out = tmp_path / "gen.mid"
    result = cli(
        "musicrnn-generate",
        f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
        "num_frames=32",
        "num_samples=2",
        "temperature=0.8",
        "seed=3",
        "include_primer=true",
        f"output={out}",
        cwd=tmp_path,
    )
    assert "32 generated frames" in result.stdout
    for path in (tmp_path / "gen_00.mid", tmp_path / "gen_01.mid"):
        notes = read_midi(path)
        assert len(notes) > 0 and notes["pitch"].min() >= 21 and notes["pitch"].max() <= 108
        assert notes["end_beat"].max() <= 16 + 32  # the stored primer (16 frames) and 32 generated frames
    best = f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}"
    result = cli("musicrnn-generate", best, "num_frames=8", "no_repeat_ngram=2", cwd=tmp_path, check=False)
    assert result.returncode == 1 and result.stderr.strip().endswith(
        "no_repeat_ngram=2: not a setting for " + best.split("=", 1)[1] + ", a piano-roll model"
    )
    penalised = cli("musicrnn-generate", best, "num_frames=8", "repetition_penalty=1.5", "beam_size=2", cwd=tmp_path)
    assert "8 generated frames" in penalised.stdout


@pytest.mark.shared_data
def test_checkpoints_and_data_of_the_wrong_kind_are_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICRNN_JSB_CHORALES", str(require_shared("jsb_chorales", "JSB Chorales.pickle")))
    logs = f"paths.log_dir={tmp_path / 'logs'}"
    cli(
        "musicrnn-train",
        "experiment=jsb_lstm",
        logs,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "model.hidden_size=16",
        "model.dense_size=16",
        "trainer.enable_progress_bar=false",
        "sample.num_frames=0",
        cwd=tmp_path,
    )
    (run_dir,) = (tmp_path / "logs" / "jsb_lstm" / "runs").iterdir()
    best = run_dir / "checkpoints" / "best.ckpt"
    assert not (run_dir / "samples").exists()  # sample.num_frames=0: no sample for a piano-roll model

    # Testing a checkpoint uses its own settings, whatever the model config says.
    tested = cli(
        "musicrnn-train",
        "train=false",
        "experiment=jsb_lstm",
        f"ckpt_path={best}",
        logs,
        "model.hidden_size=999",
        "trainer.enable_progress_bar=false",
        "sample.num_frames=0",
        cwd=tmp_path,
    )
    assert "frame_nll" in tested.stdout
    cases = [
        (
            ["train=false", f"ckpt_path={best}", "data=midi_dir", f"data.path={tmp_path}"],
            "the checkpoint holds a piano-roll model but the data config gives notes",
        ),
        (
            ["data=jsb_chorales"],
            "gives piano rolls but the model is a note model (note_lstm): add model=pianoroll_lstm",
        ),
        (["experiment=jsb_lstm", f"ckpt_path={best}", "model.hidden_size=32"], "does not fit the configured model"),
    ]
    runs = [("musicrnn-train", [*args, f"paths.log_dir={tmp_path / f'logs{i}'}"]) for i, (args, _) in enumerate(cases)]
    for (_, expected), result in zip(cases, clis(runs, cwd=tmp_path)):
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        (line,) = [line for line in result.stderr.splitlines() if line.startswith("musicrnn-train: error:")]
        assert expected in line
