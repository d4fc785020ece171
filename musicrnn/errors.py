"""User-facing errors: each renders as one line naming the thing and the reason."""

from __future__ import annotations

import os


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
