"""`musicrnn-generate`: write MIDI continuations sampled from a trained checkpoint (note or piano-roll model).

musicrnn-generate ckpt_path=PATH num_notes=300 temperature=1.0 primer=some.mid output=out.mid
musicrnn-generate ckpt_path=PIANOROLL.ckpt num_frames=64 temperature=0.8
musicrnn-generate ckpt_path=[a.ckpt,b.ckpt,c.ckpt]       # an ensemble: the members' mean probabilities
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.cli.config_validation import validate_generation, validate_known_keys
from musicrnn.errors import MusicrnnError, errors_as_one_line, run_hydra_cli
from musicrnn.generation.sampling import generate_events, generate_frames
from musicrnn.midi.io import read_midi, write_midi
from musicrnn.representations.notes import events_to_notes, notes_to_events
from musicrnn.representations.pianoroll import notes_to_pianoroll, pianoroll_to_notes
from musicrnn.training.checkpoint import load_model
from musicrnn.training.note_module import NoteLSTMModule
from musicrnn.training.pianoroll_module import PianoRollModule

log = logging.getLogger(__name__)


def load_primer(
    module: NoteLSTMModule, primer: str | os.PathLike | None, primer_notes: int, primer_index: int = 0
) -> np.ndarray:
    """The (P, 3) events the model reads first: the last `primer_notes` notes of a MIDI file, or a held-out
    piece stored in the checkpoint."""
    time_unit = module.hparams.time_unit
    if primer is not None:
        events = notes_to_events(read_midi(primer), time_unit)
    else:
        events = np.asarray(stored_primer(module, primer_index), dtype=np.float32)
    return events[-primer_notes:] if primer_notes > 0 else events


def stored_primer(module: NoteLSTMModule | PianoRollModule, primer_index: int):
    """The checkpoint's held-out piece number `primer_index`."""
    if not module.primers:
        raise MusicrnnError("the checkpoint stores no held-out primer: pass primer=some.mid")
    if not 0 <= primer_index < len(module.primers):
        last = len(module.primers) - 1
        raise MusicrnnError(
            f"primer_index={primer_index}: the checkpoint stores {len(module.primers)} held-out primers (0..{last})"
        )
    return module.primers[primer_index]


def output_paths(output: str | os.PathLike, num_samples: int) -> list[Path]:
    output = Path(output)
    if num_samples == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{i:02d}{output.suffix or '.mid'}") for i in range(num_samples)]


def generate_midi(
    module: NoteLSTMModule,
    primer_events: np.ndarray,
    output: str | os.PathLike,
    *,
    num_notes: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    timing_temperature: float | None = None,
    include_primer: bool = False,
    seed: int | None = None,
) -> list[Path]:
    """Sample `num_samples` continuations of `primer_events` and write each to a MIDI file."""
    samples = generate_events(
        module.net,
        primer_events,
        num_notes,
        num_samples=num_samples,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        timing_temperature=timing_temperature,
        seed=seed,
    )
    time_unit = module.hparams.time_unit
    paths = []
    for events, path in zip(samples, output_paths(output, num_samples)):
        if include_primer:
            events = np.concatenate([primer_events, events])
        notes = events_to_notes(events, time_unit)
        paths.append(write_midi(notes, path, time_unit=time_unit))
    return paths


def load_primer_roll(
    module: PianoRollModule, primer: str | os.PathLike | None, primer_frames: int, primer_index: int = 0
) -> np.ndarray:
    """The (P, keys) frames a piano-roll model reads first: the last `primer_frames` frames of a MIDI file
    (on the checkpoint's grid and keys), or a held-out piece stored in the checkpoint."""
    hp = module.hparams
    if primer is not None:
        roll = notes_to_pianoroll(read_midi(primer), hp.steps_per_quarter, hp.lowest_pitch, hp.num_keys)
        if not roll.any():
            raise MusicrnnError(
                f"{primer}: no notes inside the model's keys {hp.lowest_pitch}..{hp.lowest_pitch + hp.num_keys - 1}"
            )
    else:
        roll = np.asarray(stored_primer(module, primer_index), dtype=bool)
    return roll[-primer_frames:] if primer_frames > 0 else roll


def generate_pianoroll_midi(
    module: PianoRollModule,
    primer_roll: np.ndarray,
    output: str | os.PathLike,
    *,
    num_frames: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    include_primer: bool = False,
    seed: int | None = None,
) -> list[Path]:
    """Sample `num_samples` continuations of `primer_roll` and write each to a MIDI file (one held note per
    run of active frames, on the checkpoint's grid, at 120 BPM)."""
    hp = module.hparams
    samples = generate_frames(
        module.net, primer_roll, num_frames, num_samples=num_samples, temperature=temperature, seed=seed
    )
    paths = []
    for roll, path in zip(samples, output_paths(output, num_samples)):
        if include_primer:
            roll = np.concatenate([np.asarray(primer_roll, dtype=bool), roll])
        notes = pianoroll_to_notes(roll, hp.steps_per_quarter, hp.lowest_pitch)
        paths.append(write_midi(notes, path, time_unit="beats"))
    return paths


def sample_checkpoint(
    module: NoteLSTMModule | PianoRollModule,
    output: str | os.PathLike,
    *,
    primer: str | os.PathLike | None = None,
    primer_index: int = 0,
    primer_notes: int = 100,
    primer_frames: int = 16,
    num_notes: int = 300,
    num_frames: int = 64,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    timing_temperature: float | None = None,
    include_primer: bool = False,
    seed: int | None = None,
) -> list[Path]:
    """Generate from whichever model the checkpoint holds: `num_notes` notes from a note model,
    `num_frames` frames from a piano-roll model."""
    if isinstance(module, PianoRollModule):
        roll = load_primer_roll(module, primer, primer_frames, primer_index)
        return generate_pianoroll_midi(
            module,
            roll,
            output,
            num_frames=num_frames,
            num_samples=num_samples,
            temperature=temperature,
            include_primer=include_primer,
            seed=seed,
        )
    events = load_primer(module, primer, primer_notes, primer_index)
    return generate_midi(
        module,
        events,
        output,
        num_notes=num_notes,
        num_samples=num_samples,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        timing_temperature=timing_temperature,
        include_primer=include_primer,
        seed=seed,
    )


def generate(cfg: DictConfig, overridden: Sequence[str] = ()) -> list[Path]:
    """Generate as `cfg` says; `overridden` names the settings the user gave (the other kind of model's
    length among them is an error: it would be ignored)."""
    validate_known_keys(cfg, CONFIG_DIR / "generate.yaml", "musicrnn-generate")
    validate_generation(OmegaConf.to_container(cfg, resolve=False))  # before the checkpoint is read
    module = load_model(cfg.ckpt_path, cfg.get("ensemble_weights"))  # several checkpoints: their ensemble
    pianoroll = isinstance(module, PianoRollModule)
    # The other kind of model's settings, each with what this kind takes instead (None: nothing).
    ignored = (
        {
            "num_notes": "num_frames",
            "primer_notes": "primer_frames",
            "top_k": None,
            "top_p": None,
            "timing_temperature": None,
        }
        if pianoroll
        else {"num_frames": "num_notes", "primer_frames": "primer_notes"}
    )
    for key in overridden:
        if key in ignored:
            kind = "a piano-roll" if pianoroll else "a note"
            instead = f"; it takes {ignored[key]}" if ignored[key] else ""
            raise MusicrnnError(f"{key}={cfg.get(key)}: not a setting for {cfg.ckpt_path}, {kind} model{instead}")
    paths = sample_checkpoint(
        module,
        cfg.output,
        primer=cfg.primer,
        primer_index=int(cfg.primer_index),
        primer_notes=int(cfg.primer_notes),
        primer_frames=int(cfg.primer_frames),
        num_notes=int(cfg.num_notes),
        num_frames=int(cfg.num_frames),
        num_samples=int(cfg.num_samples),
        temperature=0.0 if cfg.get("greedy") else float(cfg.temperature),
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        timing_temperature=cfg.timing_temperature,
        include_primer=bool(cfg.include_primer),
        seed=cfg.seed,
    )
    what = f"{cfg.num_frames} generated frames" if pianoroll else f"{cfg.num_notes} generated notes"
    for path in paths:
        print(f"wrote {path} ({what})")
    return paths


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def main(cfg: DictConfig) -> None:
    overrides = HydraConfig.get().overrides.task
    with errors_as_one_line("musicrnn-generate", ValueError):  # bad input or arguments: one line
        generate(cfg, [override.lstrip("+~").split("=")[0] for override in overrides])


def cli() -> None:
    """The `musicrnn-generate` console script: `main` with Hydra's own errors on one line too."""
    run_hydra_cli("musicrnn-generate", main)


if __name__ == "__main__":
    cli()
