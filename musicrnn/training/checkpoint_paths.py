"""Which checkpoint files a `ckpt_path` setting names: paths only, no torch, so a CLI can say that a
checkpoint is missing before it imports anything heavy."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from musicrnn.errors import CheckpointError


def expand_checkpoints(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """A checkpoint path, a list of paths, or a glob (`'logs/x/multirun/**/best.ckpt'`, sorted) -> paths."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.path.expanduser(str(spec))
        if any(char in text for char in "*?["):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise CheckpointError(text, "no checkpoint matches this pattern")
            return matches
        return [Path(text)]
    paths = [path for item in spec for path in expand_checkpoints(item)]
    if not paths:
        raise CheckpointError("[]", "an empty list of checkpoints")
    return paths


def existing_checkpoints(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """`expand_checkpoints`, each path checked to be a file: a missing checkpoint is said before any work."""
    paths = expand_checkpoints(spec)
    for path in paths:
        if not path.is_file():
            raise CheckpointError(path, "file not found")
    return paths
