"""Load a musicrnn checkpoint for inference, with one-line errors for anything that is not one."""

from __future__ import annotations

import os
from pathlib import Path

from musicrnn.errors import CheckpointError
from musicrnn.training.checkpoint_io import read_checkpoint
from musicrnn.training.checkpoint_paths import expand_checkpoints  # noqa: F401 (where it was)
from musicrnn.training.models import MODELS
from musicrnn.training.module import CHECKPOINT_FORMAT_VERSION, SequenceModel


def load_module(path: str | os.PathLike) -> SequenceModel:
    """Rebuild a trained model from a checkpoint alone (no training config), on the CPU, in eval mode: the
    builder its musicrnn section names (`training.models.MODELS`), called with its saved settings.

    The checkpoint is read by `checkpoint_io.read_checkpoint` (an allow-list of pickle globals, then
    `weights_only=True`): loading one from someone else cannot run code.
    """
    path = Path(path).expanduser()
    checkpoint = read_checkpoint(path)
    meta = checkpoint.get("musicrnn") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        raise CheckpointError(path, "not a musicrnn checkpoint (no 'musicrnn' section)")
    model = meta.get("model")
    if model not in MODELS:
        raise CheckpointError(path, f"holds an unknown model {model!r}, expected one of {sorted(MODELS)}")
    build, version = MODELS[model], CHECKPOINT_FORMAT_VERSION
    saved_version = meta.get("format_version")
    if isinstance(saved_version, int) and saved_version > version:
        raise CheckpointError(
            path,
            f"format version {saved_version} was written by a newer musicrnn; this one reads version {version}: upgrade musicrnn",
        )
    if saved_version != version:
        raise CheckpointError(path, f"format version {saved_version}, this musicrnn reads version {version}")
    try:
        module = build(**checkpoint["hyper_parameters"])
        module.load_state_dict(checkpoint["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(path, f"model does not match its settings ({str(error).splitlines()[0]})") from None
    module.on_load_checkpoint(checkpoint)
    return module.eval()
