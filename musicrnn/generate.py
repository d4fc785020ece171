"""`musicrnn-generate`: write MIDI continuations sampled from a trained checkpoint.

    musicrnn-generate ckpt_path=PATH num_notes=300 temperature=1.0 primer=some.mid output=out.mid
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from musicrnn.checkpoint import load_note_module
from musicrnn.conf_dir import CONFIG_DIR
from musicrnn.errors import MusicrnnError, one_line
from musicrnn.midi_io import read_midi, write_midi
from musicrnn.models.note_module import NoteLSTMModule
from musicrnn.representation import events_to_notes, notes_to_events
from musicrnn.sampling import generate_events

log = logging.getLogger(__name__)


def load_primer(module: NoteLSTMModule, primer: str | os.PathLike | None, primer_notes: int, primer_index: int = 0) -> np.ndarray:
    """The (P, 3) events the model reads first: the last `primer_notes` notes of a MIDI file, or a held-out
    piece stored in the checkpoint."""
    time_unit = module.hparams.time_unit
    if primer is not None:
        events = notes_to_events(read_midi(primer), time_unit)
    else:
        if not module.primers:
            raise MusicrnnError("the checkpoint stores no held-out primer: pass primer=some.mid")
        events = np.asarray(module.primers[primer_index % len(module.primers)], dtype=np.float32)
    return events[-primer_notes:] if primer_notes > 0 else events


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
        module.net, primer_events, num_notes,
        num_samples=num_samples, temperature=temperature, top_k=top_k, top_p=top_p,
        timing_temperature=timing_temperature, seed=seed,
    )
    time_unit = module.hparams.time_unit
    paths = []
    for events, path in zip(samples, output_paths(output, num_samples)):
        if include_primer:
            events = np.concatenate([primer_events, events])
        notes = events_to_notes(events, time_unit)
        paths.append(write_midi(notes, path, time_unit=time_unit))
    return paths


def generate(cfg: DictConfig) -> list[Path]:
    module = load_note_module(cfg.ckpt_path)
    primer = load_primer(module, cfg.primer, int(cfg.primer_notes), int(cfg.primer_index))
    paths = generate_midi(
        module,
        primer,
        cfg.output,
        num_notes=int(cfg.num_notes),
        num_samples=int(cfg.num_samples),
        temperature=float(cfg.temperature),
        top_k=cfg.top_k,
        top_p=cfg.top_p,
        timing_temperature=cfg.timing_temperature,
        include_primer=bool(cfg.include_primer),
        seed=cfg.seed,
    )
    for path in paths:
        print(f"wrote {path} ({cfg.num_notes} generated notes)")
    return paths


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="generate")
def main(cfg: DictConfig) -> None:
    try:
        generate(cfg)
    except (MusicrnnError, ValueError, OmegaConfBaseException) as error:  # bad input or arguments: one line
        print(f"musicrnn-generate: error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
