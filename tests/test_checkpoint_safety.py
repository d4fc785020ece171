"""Safe checkpoints: an allow-list of pickle globals before `torch.load(weights_only=True)`, atomic writes,
clear errors for a newer format, a failed write that keeps the previous file, mismatched primers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musicrnn.errors import CheckpointError
from musicrnn.training.checkpoint import load_module
from musicrnn.training.checkpoint_io import ALLOWED_PICKLE_GLOBALS, pickle_globals, read_checkpoint, write_atomically
from tests.helpers import cli, clis, train_args


class CreatesAFile:
    """A pickle payload: unpickling it runs `os.system("touch MARKER")`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="module")
def trained(session_corpus, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("safety")
    cli(
        "musicrnn-train",
        *train_args(
            session_corpus, work / "logs", "trainer.max_epochs=1", "logger=none", "test=false", "sample.num_notes=0"
        ),
        cwd=work,
    )
    (best,) = (work / "logs").glob("train/runs/*/checkpoints/best.ckpt")
    return best


def malicious_copy(trained: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The real checkpoint with a payload hidden in its hyper-parameters."""
    marker = tmp_path / "payload-ran"
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["hyper_parameters"]["hidden_size"] = CreatesAFile(marker)
    path = tmp_path / "shared.ckpt"
    torch.save(checkpoint, path)
    return path, marker


@pytest.mark.slow  # trains (the `trained` fixture)
def test_every_checkpoint_musicrnn_writes_uses_only_allowed_types(trained):
    paths = sorted(trained.parent.glob("*.ckpt"))
    assert {"best.ckpt", "last.ckpt"} <= {p.name for p in paths}
    for path in paths:
        assert pickle_globals(path) <= ALLOWED_PICKLE_GLOBALS
        assert read_checkpoint(path)["musicrnn"]["model"] == "note_lstm"


@pytest.mark.slow  # trains, and runs every command in a subprocess
def test_a_checkpoint_carrying_code_is_refused_by_every_command_and_the_code_never_runs(
    trained, session_corpus, tmp_path
):
    path, marker = malicious_copy(trained, tmp_path)
    # The payload is real: an unguarded load runs it (in a child process, then the marker is removed).
    subprocess.run(
        [sys.executable, "-c", f"import torch; torch.load({str(path)!r}, weights_only=False)"],
        check=False,
        capture_output=True,
    )
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError, match="refused: it would load posix.system"):
        load_module(path)
    commands = [
        ("musicrnn-generate", [f"ckpt_path={path}", "output=x.mid"]),
        ("musicrnn-generate", [f"ckpt_path=[{path},{trained}]", "output=x.mid"]),  # an ensemble with one bad member
        (
            "musicrnn-train",
            train_args(session_corpus, tmp_path / "train_logs", f"ckpt_path={path}", "trainer.max_epochs=2"),
        ),  # resume
        (
            "musicrnn-evaluate",
            [
                a
                for a in train_args(
                    session_corpus, tmp_path / "logs", f"ckpt_path={path}", f"output_dir={tmp_path / 'ev'}"
                )
                if not a.startswith("sample.")
            ],
        ),
    ]
    for (command, _), result in zip(commands, clis(commands, cwd=tmp_path)):
        assert result.returncode == 1, (command, result.stderr[-2000:])
        error = result.stderr.strip().splitlines()[-1]
        assert error.startswith(f"{command}: error: checkpoint {path}: refused") and "posix.system" in error
        assert "Traceback" not in result.stderr
    assert not marker.exists(), "a command ran the payload"


@pytest.mark.slow  # trains (the `trained` fixture)
def test_a_newer_format_version_is_named(trained, tmp_path):
    checkpoint = torch.load(trained, weights_only=True)
    checkpoint["musicrnn"]["format_version"] = 99
    torch.save(checkpoint, tmp_path / "future.ckpt")
    with pytest.raises(CheckpointError, match="format version 99 was written by a newer musicrnn"):
        load_module(tmp_path / "future.ckpt")


@pytest.mark.slow  # trains (the `trained` fixture)
def test_not_a_checkpoint_and_a_truncated_one_are_named(trained, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a musicrnn checkpoint"):
        read_checkpoint(tmp_path / "notes.txt")
    data = trained.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a musicrnn checkpoint|cannot be read"):
        read_checkpoint(tmp_path / "cut.ckpt")


@pytest.mark.slow  # a subprocess
def test_a_failed_write_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(tmp_path):
    """A full disk, made real for one child process with RLIMIT_FSIZE (writes past the limit fail)."""
    target = tmp_path / "checkpoints" / "last.ckpt"
    write_atomically(b"previous checkpoint", target)
    script = f"""
import resource, signal
from musicrnn.training.checkpoint_io import write_atomically
from musicrnn.errors import CheckpointError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_atomically(b"x" * 100_000, {str(target)!r})
except CheckpointError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (
        f"checkpoint {target}: cannot be written (File too large) (the previous file there is intact)" in result.stdout
    )
    assert target.read_bytes() == b"previous checkpoint"
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]


def test_an_unwritable_output_folder_is_a_one_line_error(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(CheckpointError, match="cannot be written"):
        write_atomically(b"data", tmp_path / "a-file" / "best.ckpt")


@pytest.mark.slow  # trains, and runs musicrnn-generate
def test_a_primer_of_the_wrong_kind_or_without_notes_is_named(trained, tmp_path):
    import miditoolkit
    import numpy as np

    from musicrnn.generation.sampling import generate_events, generate_frames

    module = load_module(trained)
    features = module.head.step_size(module.net)  # pitch, step, duration, velocity: the default note_lstm's 4
    with pytest.raises(ValueError, match=rf"primer must have shape \(P >= 1, {features}\)"):
        generate_events(module.net, np.zeros((16, 88), np.float32), 5)  # a piano-roll primer for a note model
    from musicrnn.training.models import pianoroll_lstm

    roll_model = pianoroll_lstm(hidden_size=8, num_layers=1)
    with pytest.raises(ValueError, match=r"primer must have shape \(P >= 1, 88\)"):
        generate_frames(roll_model.net, np.zeros((16, 3), np.float32), 5)  # a note primer for a piano-roll model
    silent = miditoolkit.MidiFile()
    silent.instruments.append(miditoolkit.Instrument(program=0))
    silent.dump(str(tmp_path / "silent.mid"))
    result = cli(
        "musicrnn-generate",
        f"ckpt_path={trained}",
        f"primer={tmp_path / 'silent.mid'}",
        "output=x.mid",
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"musicrnn-generate: error: {tmp_path / 'silent.mid'}")
