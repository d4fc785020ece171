"""`musicrnn-generate`: write MIDI continuations sampled from a trained checkpoint (note or piano-roll model).

musicrnn-generate ckpt_path=PATH num_notes=300 temperature=1.0 primer=some.mid output=out.mid
musicrnn-generate ckpt_path=PIANOROLL.ckpt num_frames=64 temperature=0.8
musicrnn-generate ckpt_path=[a.ckpt,b.ckpt,c.ckpt]       # an ensemble: the members' mean probabilities
musicrnn-generate ckpt_path=PATH repetition_penalty=1.2 beam_size=4 branch_factor=2   # repetition control, beam
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.cli.config_validation import validate_generation, validate_known_keys
from musicrnn.cli.errors import errors_as_one_line, run_hydra_cli
from musicrnn.errors import MusicrnnError

if TYPE_CHECKING:
    from musicrnn.generation.sampling import BeamSearch
    from musicrnn.nets.heads import SamplingSettings
# torch is imported once the settings are checked (in `generate`), not by this module: a typo or --help is
# answered in well under a second.

log = logging.getLogger(__name__)
# The length and primer settings of generate.yaml, one of each per representation; the model's
# representation says which it reads (`length_setting`, `primer_setting`).
LENGTH_SETTINGS = ("num_notes", "num_frames")
PRIMER_SETTINGS = ("primer_notes", "primer_frames")
# Sampling settings some output distributions honour and others not (`sampling_options`).
SAMPLING_SETTINGS = (
    "temperature", "top_k", "top_p", "timing_temperature", "velocity_temperature", "repetition_penalty",
    "repetition_window", "no_repeat_ngram",
)  # fmt: skip
BEAM_SETTINGS = ("beam_size", "branch_factor", "steps_per_iteration")  # every model's (any head has a likelihood)


def sampling_from(settings: dict) -> tuple[SamplingSettings, BeamSearch]:
    """The sampling and beam-search settings of a plain generate/evaluate config (greedy: temperature 0)."""
    from musicrnn.generation.sampling import BeamSearch
    from musicrnn.nets.heads import SamplingSettings

    greedy = settings.get("greedy")
    sampling = SamplingSettings(
        temperature=0.0 if greedy else float(settings["temperature"]),
        top_k=settings.get("top_k"),
        top_p=settings.get("top_p"),
        timing_temperature=settings.get("timing_temperature"),
        velocity_temperature=settings.get("velocity_temperature"),
        repetition_penalty=float(settings.get("repetition_penalty", 1.0)),
        repetition_window=int(settings.get("repetition_window", 16)),
        no_repeat_ngram=int(settings.get("no_repeat_ngram", 0)),
    )
    beam = BeamSearch(*(int(settings.get(name, 1)) for name in BEAM_SETTINGS))
    return sampling, beam


def refused_settings(module) -> dict[str, str | None]:
    """The settings of generate.yaml that this model would ignore, each with what it takes instead (None:
    nothing): the other representations' length and primer, the sampling options its head does not honour."""
    representation, head = module.representation, module.head
    refused: dict[str, str | None] = {}
    refused.update(
        {name: representation.length_setting for name in LENGTH_SETTINGS if name != representation.length_setting}
    )
    refused.update(
        {name: representation.primer_setting for name in PRIMER_SETTINGS if name != representation.primer_setting}
    )
    refused.update({name: None for name in SAMPLING_SETTINGS if name not in head.sampling_options})
    return refused


def generate(cfg: DictConfig, overridden: Sequence[str] = ()) -> list[Path]:
    """Generate as `cfg` says; `overridden` names the settings the user gave (a setting this model would
    ignore, such as the other kind of model's length, is an error)."""
    validate_known_keys(cfg, CONFIG_DIR / "generate.yaml", "musicrnn-generate")
    settings = OmegaConf.to_container(cfg, resolve=True)  # plain Python from here on
    validate_generation(OmegaConf.to_container(cfg, resolve=False))  # before the checkpoint is read
    from musicrnn.training.checkpoint_paths import existing_checkpoints

    existing_checkpoints(settings["ckpt_path"])  # a missing file is said before torch loads
    from musicrnn.generation.samples import sample_checkpoint
    from musicrnn.training.ensemble import load_model

    module = load_model(settings["ckpt_path"], settings.get("ensemble_weights"))  # several: their ensemble
    refused = refused_settings(module)
    for key in overridden:
        if key in refused:
            kind = module.representation.model_noun
            instead = f"; it takes {refused[key]}" if refused[key] else ""
            raise MusicrnnError(
                f"{key}={settings.get(key)}: not a setting for {settings['ckpt_path']}, a {kind} model{instead}"
            )
    representation = module.representation
    length = int(settings[representation.length_setting])
    sampling, beam = sampling_from(settings)
    paths = sample_checkpoint(
        module,
        settings["output"],
        length=length,
        primer=settings["primer"],
        primer_index=int(settings["primer_index"]),
        primer_length=int(settings[representation.primer_setting]),
        num_samples=int(settings["num_samples"]),
        settings=sampling,
        beam=beam,
        include_primer=bool(settings["include_primer"]),
        seed=settings["seed"],
    )
    for path in paths:
        print(f"wrote {path} ({length} generated {representation.step_noun})")
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
