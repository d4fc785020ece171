"""The CLIs' error lines: bad input of any kind ends a command with one line naming the thing and the reason
(`COMMAND: error: ...`), Hydra's and OmegaConf's own errors included."""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from musicrnn.errors import MusicrnnError, one_line


@contextmanager
def errors_as_one_line(command: str, *also: type[BaseException]) -> Iterator[None]:
    """A CLI's guard: bad input (a MusicrnnError, a Hydra/OmegaConf config error, or one of `also`) ends
    the program with `COMMAND: error: ...` on one line and exit status 1, not a traceback."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    try:
        yield
    except (MusicrnnError, InstantiationException, OmegaConfBaseException, *also) as error:
        print(
            f"{command}: error: {omegaconf_line(error) if isinstance(error, OmegaConfBaseException) else one_line(error)}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None


def omegaconf_line(error: BaseException) -> str:
    """An OmegaConf error without its `full_key: ... object_type=...` detail lines; a required value that is
    not set says how to set it."""
    from omegaconf.errors import MissingMandatoryValue

    key = getattr(error, "full_key", None)
    if isinstance(error, MissingMandatoryValue) and key:
        return missing_value_message(key)
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def missing_value_message(key: str) -> str:
    """What a CLI says of a required value (`???` in a config) that was not given."""
    return f"Missing mandatory value: {key} (set it on the command line: {key}=...)"


def hydra_error_line(error: BaseException) -> str:
    """Hydra's composition errors on one line: an override of a key that does not exist names the key and the
    setting it resembles (else Hydra's hint, the `+` that would add it); a config group option that does not
    exist lists the ones there are; an override that does not parse is named."""
    lines = [line.strip() for line in str(error).split("Config search path:")[0].splitlines() if line.strip()]
    cause = error.__cause__
    if lines and lines[0].startswith("Could not override '") and "is not in struct" in str(cause):
        key = lines[0].split("'")[1]
        siblings = [str(k) for k in getattr(getattr(cause, "parent_node", None), "keys", list)() if k != "hydra"]
        close = difflib.get_close_matches(key.rsplit(".", 1)[-1], siblings, n=1)
        if close:  # a typo: name the setting that exists
            return (
                f"{key}: no such setting (did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}?)"
            )
        hint = lines[1] if len(lines) > 1 else ""  # "To append to your config use +model.hiden_size=3"
        return f"{key}: no such setting ({hint[:1].lower()}{hint[1:]})"
    if getattr(error, "override", None) and lines:  # an OverrideParseException
        return f"{error.override}: not an override Hydra can parse ({lines[0]}; {' '.join(lines[1:])})"
    options = next((i for i, line in enumerate(lines) if line.startswith("Available options in")), None)
    if options is not None:
        return f"{' '.join(lines[:options])} ({lines[options].rstrip(':')}: {', '.join(lines[options + 1 :])})"
    return " ".join(lines)


def run_hydra_cli(command: str, main: Callable[[], object]) -> object:
    """Run a `@hydra.main` entry point so that Hydra's own errors (an override of a key that does not exist,
    a config group option that does not exist, an override that does not parse) are one line too. Hydra
    prints those over several lines itself; with HYDRA_FULL_ERROR=1 it raises them instead, to be caught
    here. A user who sets HYDRA_FULL_ERROR=1 gets Hydra's full traceback, as Hydra documents."""
    from hydra.errors import HydraException

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return main()
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        return main()
    except HydraException as error:
        print(f"{command}: error: {hydra_error_line(error)}", file=sys.stderr)
        raise SystemExit(1) from None
