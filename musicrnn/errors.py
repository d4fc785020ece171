"""User-facing errors: each renders as one line naming the thing and the reason."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


class MusicrnnError(Exception):
    """An error caused by the user's input (data, config, checkpoint), reported as one line."""


class MidiReadError(MusicrnnError):
    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CheckpointError(MusicrnnError):
    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"checkpoint {self.path}: {reason}")


def one_line(error: BaseException) -> str:
    """An error's message with its lines joined, for a CLI's single error line."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip())


@contextmanager
def errors_as_one_line(command: str, *also: type[BaseException]) -> Iterator[None]:
    """A CLI's guard: bad input (a MusicrnnError, a Hydra/OmegaConf config error, or one of `also`) ends
    the program with `COMMAND: error: ...` on one line and exit status 1, not a traceback."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except (MusicrnnError, InstantiationException, OmegaConfBaseException, *also) as error:
        print(f"{command}: error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(1) from None
