"""What several test modules share: MIDI writers (miditoolkit), the shared-data paths and skips, the console
scripts as a user runs them, the composed Hydra configs, quiet CPU trainers, and common checks.

Test modules import it as `tests.helpers` (the repository root is on the path: `pythonpath = ["."]` in
pyproject.toml); conftest.py keeps only fixtures and hooks. No test module imports another one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import miditoolkit
import numpy as np
import pytest

from musicrnn.midi.audio import audio_unavailable_reason

REPO = Path(__file__).resolve().parent.parent

# -- shared datasets ------------------------------------------------------------------------------------


def shared_data_dir() -> Path | None:
    """`$MUSICRNN_SHARED_DATA`, else ../shared/data beside the checkout; None when neither exists."""
    candidate = Path(os.environ.get("MUSICRNN_SHARED_DATA", REPO.parent / "shared" / "data"))
    return candidate if candidate.is_dir() else None


def require_shared(*parts: str) -> Path:
    """The shared dataset path `parts` under `shared_data_dir()`; skips the test when it is not there."""
    base = shared_data_dir()
    if base is None or not base.joinpath(*parts).exists():
        pytest.skip(f"shared dataset {'/'.join(parts)} not found: set MUSICRNN_SHARED_DATA to the shared/data folder")
    return base.joinpath(*parts)


# A test that generates through the Numba-compiled note loop is slow too: the first call in a fresh checkout
# compiles it (~16 s here: type inference and LLVM for every note model and sampling setting at once), which alone
# would take the quick suite past its minute. Later runs read Numba's cache.
COMPILES_THE_LOOP = pytest.mark.slow

needs_fluidsynth = pytest.mark.skipif(audio_unavailable_reason() is not None, reason=str(audio_unavailable_reason()))

# -- MIDI written here --------------------------------------------------------------------------------------


def write_piece(
    path: Path,
    seed: int,
    num_bars: int = 16,
    *,
    ticks_per_beat: int = 480,
    tempo_change: bool = True,
    with_drums: bool = True,
) -> Path:
    """A small, real two-hand piece: an eighth-note melody over quarter-note triads, an optional tempo
    change half-way (so seconds and beats differ non-trivially), and an optional drum track."""
    rng = np.random.default_rng(seed)
    midi = miditoolkit.MidiFile(ticks_per_beat=ticks_per_beat)
    midi.tempo_changes = [miditoolkit.TempoChange(100.0 + 10 * (seed % 5), 0)]
    if tempo_change:
        midi.tempo_changes.append(miditoolkit.TempoChange(140.0, num_bars * 2 * ticks_per_beat))
    melody = miditoolkit.Instrument(program=0, name="melody")
    chords = miditoolkit.Instrument(program=0, name="chords")
    drums = miditoolkit.Instrument(program=0, is_drum=True, name="drums")
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    key = 60 + int(rng.integers(-5, 6))
    degree = 7
    eighth = ticks_per_beat // 2
    for bar in range(num_bars):
        root = int(rng.choice([0, 3, 4, 5]))
        for beat in range(4):
            tick = (bar * 4 + beat) * ticks_per_beat
            for offset in (0, 2, 4):  # a triad on every beat
                pitch = key - 12 + scale[(root + offset) % 7] + 12 * ((root + offset) // 7)
                chords.notes.append(miditoolkit.Note(70, int(pitch), tick, tick + ticks_per_beat - 10))
            for half in range(2):
                degree = int(np.clip(degree + rng.integers(-2, 3), 0, 13))
                pitch = key + scale[degree % 7] + 12 * (degree // 7)
                start = tick + half * eighth
                melody.notes.append(miditoolkit.Note(90, int(pitch), start, start + eighth))
            drums.notes.append(miditoolkit.Note(100, 36 if beat % 2 == 0 else 38, tick, tick + 60))
    midi.instruments = [melody, chords] + ([drums] if with_drums else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.dump(str(path))
    return path


def write_corpus(root: Path, num_pieces: int = 24, num_bars: int = 8) -> Path:
    """`num_pieces` pieces in nested folders with mixed-case .mid/.midi suffixes."""
    suffixes = [".mid", ".MID", ".midi", ".Midi"]
    for i in range(num_pieces):
        folder = root / f"set{i % 3}" / ("deep" if i % 4 == 0 else "")
        write_piece(folder / f"piece{i:03d}{suffixes[i % len(suffixes)]}", seed=i, num_bars=num_bars)
    return root


# -- the console scripts and their configs -------------------------------------------------------------------

# A model and a run small enough to train in seconds on a CPU.
TINY_MODEL = [
    "model.hidden_size=16",
    "model.num_layers=2",
    "model.dense_size=16",
    "data.seq_len=16",
    "data.batch_size=16",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "sample.num_notes=20",
]

CLI_MODULES = {
    "musicrnn-train": "musicrnn.cli.train",
    "musicrnn-generate": "musicrnn.cli.generate",
    "musicrnn-evaluate": "musicrnn.cli.evaluate",
    "musicrnn-plot": "musicrnn.cli.plot",
    "musicrnn-sweep-report": "musicrnn.cli.sweep_report",
}


def console_command(name: str, as_module: bool = False) -> list[str]:
    """The console script as installed, else (or with as_module) `python -m musicrnn.<module>`."""
    script = shutil.which(name)
    return [script] if script and not as_module else [sys.executable, "-m", CLI_MODULES[name]]


def cli_environment() -> dict[str, str]:
    """The environment a console script runs in here: this one, with Hydra's one-line errors."""
    return {**os.environ, "HYDRA_FULL_ERROR": "0"}


def cli(name: str, *args: str, cwd: Path, check: bool = True, as_module: bool = False) -> subprocess.CompletedProcess:
    """Run a console script in a subprocess, as a user runs it; with check, a failure raises with its output."""
    result = subprocess.run(
        [*console_command(name, as_module), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_environment(),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{name} {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def clis(commands: list[tuple[str, list[str]]], cwd: Path) -> list[subprocess.CompletedProcess]:
    """`cli(name, *args, cwd=cwd, check=False)` for each (name, args) of `commands`, all started at once: their
    start-ups (imports, mostly) share the cores instead of queueing. The commands must not share an output
    folder. The results come in the order given."""
    started = [
        subprocess.Popen(
            [*console_command(name), *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_environment(),
        )
        for name, args in commands
    ]
    results = []
    for process in started:
        stdout, stderr = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def train_args(corpus: Path, logs: Path, *extra: str) -> list[str]:
    """musicrnn-train's overrides for the tiny model on a MIDI folder, logging under `logs`."""
    return ["data=midi_dir", f"data.path={corpus}", f"paths.log_dir={logs}", *TINY_MODEL, *extra]


def composed(config_name: str, overrides: list[str]):
    """A shipped config composed in process, as the console script composes it (Hydra's compose API)."""
    from hydra import compose, initialize_config_dir

    from musicrnn.cli.conf_dir import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


# -- in-process training and testing ---------------------------------------------------------------------


def quiet_trainer(**settings):
    """A Lightning Trainer on the CPU without logger, progress bar or model summary; `settings` add to or
    replace these."""
    import pytorch_lightning as pl

    defaults = dict(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    return pl.Trainer(**{**defaults, **settings})


def metrics_after_testing(module, datamodule, callback) -> dict[str, float]:
    """Every metric `callback` (and the module) logs in one `Trainer.test` over the datamodule's test split."""
    trainer = quiet_trainer(enable_checkpointing=False, callbacks=[callback])
    trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


# -- checks ------------------------------------------------------------------------------------------------------


def is_png(path: Path, min_bytes: int = 5000) -> bool:
    """A PNG file with something drawn in it (an empty figure is a few hundred bytes)."""
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > min_bytes
