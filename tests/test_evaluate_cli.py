"""`musicrnn-evaluate`, `musicrnn-plot` and the SampleLogger callback, end to end through the console
scripts, on a corpus written by the tests and on the JSB Chorales benchmark."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from musicrnn.evaluation.musical import METRICS
from musicrnn.evaluation.repetition import DEFINITIONS as REPETITION_DEFINITIONS
from musicrnn.evaluation.repetition import MEASURES as REPETITION_MEASURES
from musicrnn.evaluation.yang_lerch import FEATURES
from musicrnn.midi.audio import audio_unavailable_reason
from musicrnn.midi.io import read_midi
from tests.helpers import cli, is_png, require_shared, train_args

pytestmark = pytest.mark.slow
AUDIO = audio_unavailable_reason() is None


@pytest.fixture(scope="module")
def run_with_samples(session_corpus, tmp_path_factory) -> Path:
    """A tiny training run whose SampleLogger fires after every validation epoch."""
    work = tmp_path_factory.mktemp("sampled")
    cli(
        "musicrnn-train",
        *train_args(
            session_corpus,
            work / "logs",
            "trainer.max_epochs=2",
            "callbacks.sample_logger.every_n_epochs=1",
            "callbacks.sample_logger.num_notes=40",
        ),
        cwd=work,
    )
    (run_dir,) = (work / "logs" / "train" / "runs").iterdir()
    return run_dir


def test_sample_logger_puts_novelty_images_and_audio_in_the_tensorboard_file(run_with_samples):
    events = EventAccumulator(
        str(run_with_samples / "tensorboard"), size_guidance={"images": 0, "audio": 0, "scalars": 0}
    )
    events.Reload()
    tags = events.Tags()
    assert {"samples/piano_roll", "samples/histograms"} <= set(tags["images"])
    assert len(events.Images("samples/piano_roll")) == 2  # one per validation epoch
    image = events.Images("samples/piano_roll")[0]
    assert image.width > 300 and image.encoded_image_string[:4] == b"\x89PNG"
    novelty = [e.value for e in events.Scalars("samples/novelty_mean")]
    copy_rate = [e.value for e in events.Scalars("samples/copy_rate_mean")]
    assert len(novelty) == 2 and all(0 <= v <= 1 for v in novelty + copy_rate)
    if AUDIO:
        (clip, *_) = events.Audio("samples/audio")
        assert clip.sample_rate == 44100 and clip.length_frames > 44100  # 40 notes last more than a second
    else:
        assert "samples/audio" not in tags["audio"]


def test_evaluate_writes_the_report_metrics_figures_and_samples(run_with_samples, session_corpus, tmp_path):
    best = run_with_samples / "checkpoints" / "best.ckpt"
    out = tmp_path / "eval"
    result = cli(
        "musicrnn-evaluate",
        f"ckpt_path={best}",
        "data=midi_dir",
        f"data.path={session_corpus}",
        "num_samples=6",
        "num_notes=48",
        "repetition_penalty=1.2",
        "no_repeat_ngram=4",
        "beam_size=2",
        "branch_factor=2",
        f"output_dir={out}",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    assert f"wrote {out / 'report.md'}" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(metrics["test"]["pitch_perplexity"]) and 0 <= metrics["test"]["pitch_acc_top1"] <= 1
    assert metrics["setup"]["samples_written"] == 6 and len(metrics["samples"]) == 6
    for sample in metrics["samples"]:
        assert len(read_midi(out / sample)) == 48
    for side in ("generated", "held_out"):
        novelty = metrics["novelty"][side]
        assert 0 <= novelty["novelty_mean"] <= 1 and 0 <= novelty["copy_rate_mean"] <= 1
        assert set(metrics["musical"][side]) == set(METRICS)
    assert set(metrics["yang_lerch"]) == set(FEATURES)
    assert all(0 <= row["overlap_area"] <= 1.0001 for row in metrics["yang_lerch"].values())
    sampling = metrics["setup"]["sampling"]
    assert (sampling["repetition_penalty"], sampling["no_repeat_ngram"], sampling["beam_size"]) == (1.2, 4, 2)
    for side in ("generated", "held_out"):
        assert set(metrics["repetition"][side]) == set(REPETITION_MEASURES)
        assert 0 <= metrics["repetition"][side]["repeated_4gram_share"]["mean"] <= 1
        assert metrics["log_likelihood"][side]["mean"] < 0
        assert abs(sum(metrics["velocity"][side]) - 1) < 1e-9
    # The corpus written by the tests plays its melody at 90 and its chords at 70.
    width = metrics["velocity"]["width"]
    assert metrics["velocity"]["held_out"][90 // width] > 0 and metrics["velocity"]["held_out"][70 // width] > 0
    report = (out / "report.md").read_text()
    assert "repetition_penalty 1.2" in report and "beam_size 2" in report
    for name, definition in REPETITION_DEFINITIONS.items():
        assert f"**{name}**: {definition}" in report
    for heading in (
        "## Test split",
        "## Novelty and copying",
        "## Musical statistics",
        "## Yang & Lerch",
        "## Repetition and structure",
        "## Velocity",
        "## Figures",
    ):
        assert heading in report
    assert set(metrics["figures"].values()) == {
        "figures/first_100_notes.png",
        "figures/whole_track.png",
        "figures/histograms.png",
        "figures/velocity.png",
        "figures/loss_curves.png",
    }
    for figure in metrics["figures"].values():
        assert f"]({figure})" in report and is_png(out / figure)
    if AUDIO:
        assert len(metrics["audio"]["wav"]) == 4 and all(
            (out / w).stat().st_size > 44100 for w in metrics["audio"]["wav"]
        )
    else:
        assert "audio not rendered" in result.stdout


def test_evaluate_an_ensemble_and_bad_checkpoints(run_with_samples, session_corpus, tmp_path):
    checkpoints = run_with_samples / "checkpoints"
    out = tmp_path / "ensemble"
    cli(
        "musicrnn-evaluate",
        f"ckpt_path=[{checkpoints / 'best.ckpt'},{checkpoints / 'last.ckpt'}]",
        "data=midi_dir",
        f"data.path={session_corpus}",
        "num_samples=2",
        "num_notes=24",
        "audio_samples=0",
        f"output_dir={out}",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["setup"]["checkpoints"]) == 2 and "Training and validation loss" not in metrics["figures"]

    result = cli(
        "musicrnn-evaluate",
        f"ckpt_path={tmp_path / 'missing.ckpt'}",
        f"output_dir={tmp_path / 'x'}",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"musicrnn-evaluate: error: checkpoint {tmp_path / 'missing.ckpt'}: file not found" in result.stderr
    result = cli("musicrnn-evaluate", f"output_dir={tmp_path / 'y'}", cwd=tmp_path, check=False)
    assert result.returncode == 1 and result.stderr.startswith("musicrnn-evaluate: error: ckpt_path is not set")


def test_plot_draws_loss_curves_and_a_midi_file(run_with_samples, session_corpus, tmp_path):
    result = cli("musicrnn-plot", f"run_dir={run_with_samples}", f"output_dir={tmp_path / 'figs'}", cwd=tmp_path)
    assert is_png(tmp_path / "figs" / "loss_curves.png") and "loss_curves.png" in result.stdout
    sample = run_with_samples / "samples" / "sample.mid"
    cli(
        "musicrnn-plot",
        f"midi={sample}",
        f"reference={session_corpus}",
        f"output_dir={tmp_path / 'figs'}",
        cwd=tmp_path,
    )
    for name in ("sample_first_100_notes.png", "sample_whole_track.png", "histograms.png"):
        assert is_png(tmp_path / "figs" / name), name
    bad = cli("musicrnn-plot", f"midi={tmp_path / 'nope.mid'}", cwd=tmp_path, check=False)
    assert (
        bad.returncode == 1
        and bad.stderr.strip()
        == f"musicrnn-plot: error: {tmp_path / 'nope.mid'}: cannot open: No such file or directory"
    )


@pytest.mark.shared_data
def test_evaluate_a_piano_roll_checkpoint_on_jsb_chorales(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICRNN_JSB_CHORALES", str(require_shared("jsb_chorales", "JSB Chorales.pickle")))
    cli(
        "musicrnn-train",
        "experiment=jsb_lstm",
        f"paths.log_dir={tmp_path / 'logs'}",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=4",
        "model.hidden_size=32",
        "model.dense_size=32",
        "sample.num_frames=0",
        "callbacks.sample_logger.every_n_epochs=2",
        "callbacks.sample_logger.audio=false",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    (run_dir,) = (tmp_path / "logs" / "jsb_lstm" / "runs").iterdir()
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert len(events.Images("samples/piano_roll")) == 1  # the piano-roll model's samples, after epoch 2
    out = tmp_path / "eval"
    cli(
        "musicrnn-evaluate",
        "experiment=jsb_lstm",
        f"ckpt_path={run_dir / 'checkpoints' / 'best.ckpt'}",
        "num_samples=4",
        "num_frames=32",
        "audio_samples=1",
        "repetition_penalty=1.3",
        "beam_size=2",
        f"output_dir={out}",
        "trainer.enable_progress_bar=false",
        cwd=tmp_path,
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["setup"]["training_pieces"] == 229 and metrics["setup"]["held_out_pieces"] == 77
    assert metrics["setup"]["length_unit"] == "frames" and 0 < metrics["test"]["frame_nll"] < 88 * math.log(2)
    assert metrics["samples"] == [f"samples/primer{i}_00.mid" for i in range(4)]  # one per primer, numbered alike
    for sample in metrics["samples"]:
        assert read_midi(out / sample)["end_beat"].max() <= 32  # 32 quarter-note frames
    assert metrics["setup"]["held_out_cut"] == "its first 32 beats (the samples' 32 frames)"
    assert 0 <= metrics["novelty"]["generated"]["novelty_mean"] <= 1
    assert metrics["musical"]["held_out"]["polyphony"]["mean"] > 2  # four-part chorales
    assert metrics["setup"]["sampling"]["repetition_penalty"] == 1.3
    assert metrics["log_likelihood"]["generated"]["mean"] < 0 and metrics["log_likelihood"]["held_out"]["mean"] < 0
