"""Samples from a trained model (or an ensemble) written as MIDI: the primer it continues, the generation
loop, the representation's writer. What the CLIs, training's end-of-run sample and the sample-logging
callback call."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from musicrnn.errors import MusicrnnError
from musicrnn.generation.sampling import BeamSearch, generate_steps
from musicrnn.nets.heads import SamplingSettings
from musicrnn.training.module import SequenceModel


def stored_primer(module: SequenceModel, primer_index: int):
    """The checkpoint's held-out piece number `primer_index`."""
    if not module.primers:
        raise MusicrnnError("the checkpoint stores no held-out primer: pass primer=some.mid")
    if not 0 <= primer_index < len(module.primers):
        last = len(module.primers) - 1
        raise MusicrnnError(
            f"primer_index={primer_index}: the checkpoint stores {len(module.primers)} held-out primers (0..{last})"
        )
    return module.primers[primer_index]


def load_primer(
    module: SequenceModel, primer: str | os.PathLike | None, primer_length: int = 0, primer_index: int = 0
) -> np.ndarray:
    """The steps the model reads first: the last `primer_length` steps (0: all) of a MIDI file in the model's
    representation, or of the held-out piece `primer_index` stored in the checkpoint."""
    representation = module.representation
    if primer is not None:
        return representation.primer_from_midi(primer, primer_length)
    steps = representation.as_primer(stored_primer(module, primer_index))
    return steps[-primer_length:] if primer_length > 0 else steps


def output_paths(output: str | os.PathLike, num_samples: int) -> list[Path]:
    output = Path(output)
    if num_samples == 1:
        return [output]
    return [output.with_name(f"{output.stem}_{i:02d}{output.suffix or '.mid'}") for i in range(num_samples)]


def sample_checkpoint(
    module: SequenceModel,
    output: str | os.PathLike,
    *,
    length: int,
    primer: str | os.PathLike | None = None,
    primer_index: int = 0,
    primer_length: int = 0,
    num_samples: int = 1,
    settings: SamplingSettings = SamplingSettings(),
    include_primer: bool = False,
    seed: int | None = None,
    beam: BeamSearch = BeamSearch(),
) -> list[Path]:
    """Sample `num_samples` continuations of `length` steps (notes, frames: the representation's) of the
    primer (each the best of a beam search, with `beam`) and write each to a MIDI file (`output`, or
    output_00.mid, output_01.mid, ... for several)."""
    primer_steps = load_primer(module, primer, primer_length, primer_index)
    samples = generate_steps(
        module.net, module.head, primer_steps, length, num_samples=num_samples, settings=settings, seed=seed,
        length_name=module.representation.length_setting, beam=beam,
    )  # fmt: skip
    return [
        module.representation.write_midi(steps, path, primer=primer_steps if include_primer else None)
        for steps, path in zip(samples, output_paths(output, num_samples))
    ]
