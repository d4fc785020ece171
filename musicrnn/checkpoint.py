"""Load a musicrnn checkpoint for inference, with one-line errors for anything that is not one."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from musicrnn.errors import CheckpointError
from musicrnn.models.note_module import CHECKPOINT_FORMAT_VERSION, NoteLSTMModule


def load_note_module(path: str | os.PathLike) -> NoteLSTMModule:
    """Rebuild the trained note model from a checkpoint alone (no training config), on the CPU, in eval mode.

    The checkpoint is read with `weights_only=True`: it holds only tensors and plain values, so loading
    one from someone else cannot run code.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, which would run arbitrary code: not for us.
        raise CheckpointError(path, "not a musicrnn checkpoint (not a PyTorch file of tensors and plain values)") from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(path, f"cannot be read ({first_line})") from None
    meta = checkpoint.get("musicrnn") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        raise CheckpointError(path, "not a musicrnn checkpoint (no 'musicrnn' section)")
    version = meta.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(path, f"format version {version}, this musicrnn reads version {CHECKPOINT_FORMAT_VERSION}")
    if meta.get("model") != "note_lstm":
        raise CheckpointError(path, f"holds a {meta.get('model')!r} model, expected 'note_lstm'")
    try:
        module = NoteLSTMModule(**checkpoint["hyper_parameters"])
        module.load_state_dict(checkpoint["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(path, f"model does not match its settings ({str(error).splitlines()[0]})") from None
    module.on_load_checkpoint(checkpoint)
    return module.eval()
