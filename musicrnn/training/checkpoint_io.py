"""Reading and writing checkpoint files safely: an allow-list of pickle globals checked before anything is
unpickled, `torch.load(weights_only=True)`, and atomic writes (a temporary file renamed into place).

Every checkpoint musicrnn reads goes through `read_checkpoint` (generate, evaluate, ensembles, resuming:
`SafeCheckpointIO` is the Trainer's checkpoint plugin). A checkpoint is a zip whose `data.pkl` names the
Python objects to rebuild; musicrnn's hold only tensors, an OrderedDict and plain values. Anything else (a
shared file carrying `os.system` or any class) is refused by name before `torch.load` sees it, so its payload
never runs; `weights_only=True` is the second wall.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from musicrnn.errors import CheckpointError

# The globals (module.name) a musicrnn checkpoint's pickle may reference: tensor rebuilding and storages,
# the state dicts' OrderedDict. Plain values (dicts, lists, strings, numbers, None) need no global.
ALLOWED_PICKLE_GLOBALS = frozenset(
    {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict", "torch.Size"}
    | {
        f"torch.{kind}Storage"
        for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")
    }
)


def pickle_globals(path: Path) -> set[str]:
    """The `module.name` globals that a torch zip checkpoint's pickle references (read, not run)."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(names) != 1:
            raise CheckpointError(path, "not a musicrnn checkpoint (no single data.pkl inside)")
        data = archive.read(names[0])
    found, strings = set(), []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            found.add(str(argument).replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL":  # module and name are the last two strings pushed
            found.add(".".join(strings[-2:]) if len(strings) >= 2 else "<unknown>")
        if isinstance(argument, str):
            strings.append(argument)
    return found


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """A checkpoint's contents, or a `CheckpointError` naming the file and the reason."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    try:
        foreign = sorted(pickle_globals(path) - ALLOWED_PICKLE_GLOBALS)
    except (zipfile.BadZipFile, ValueError, EOFError, pickle.UnpicklingError) as error:
        raise CheckpointError(path, f"not a musicrnn checkpoint (not a PyTorch zip file: {error})") from None
    if foreign:
        raise CheckpointError(
            path,
            f"refused: it would load {', '.join(foreign)}, not on musicrnn's allow-list of checkpoint types "
            "(tensors and plain values); nothing in it was run",
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False, which would run arbitrary code: not for us.
        raise CheckpointError(
            path, "not a musicrnn checkpoint (not a PyTorch file of tensors and plain values)"
        ) from None
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(path, f"cannot be read ({first_line})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(path, f"not a musicrnn checkpoint (holds a {type(checkpoint).__name__}, not a dict)")
    return checkpoint


def write_atomically(data: bytes, path: str | os.PathLike) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over `path`: a
    process killed at any moment leaves either the old file or the new one, never half of one. A failed
    write (a full disk, no permission) removes the temporary file and raises a `CheckpointError`."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:  # the folder itself is the problem: there is no temporary file
            pass
        kept = " (the previous file there is intact)" if path.is_file() else ""
        raise CheckpointError(path, f"cannot be written ({error.strerror or error}){kept}") from None


class SafeCheckpointIO(TorchCheckpointIO):
    """The Trainer's checkpoint plugin: atomic writes, and reads through `read_checkpoint` (resuming from a
    shared checkpoint cannot run code)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("SafeCheckpointIO takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_atomically(buffer.getvalue(), path)

    def load_checkpoint(
        self, path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return read_checkpoint(path, map_location=map_location if map_location is not None else "cpu")
