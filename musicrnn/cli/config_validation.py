"""Check a composed config before any work: unknown keys, wrong types and out-of-range values stop the run
with one line naming the key, the value and what is allowed.

The schema of a group (data, model, trainer) is the typed constructor its `_target_` names: the class's
signature says which keys exist and their types, so a new constructor argument needs no second schema to
keep in step (Hydra's dataclass schemas would repeat every argument). Ranges that a type cannot say are in
`RANGES`; the generation settings (`musicrnn-generate`, `musicrnn-evaluate`, training's end-of-run sample)
in `GENERATION_RANGES`. What depends on the data (a seq_len longer than every piece) is checked when the data
is read, with the same kind of message (`NoteSequenceDataModule.setup`).
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

from omegaconf import DictConfig, OmegaConf

from musicrnn.cli import static_targets
from musicrnn.cli.errors import missing_value_message
from musicrnn.errors import MusicrnnError


class ConfigError(MusicrnnError):
    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"{key}={value!r}: {allowed}")


Rule = tuple[Callable[[Any], bool], str]
_int_at_least = lambda low: (lambda v: v >= low, f"allowed: an integer >= {low}")  # noqa: E731
_whole_at_least = lambda low: (lambda v: isinstance(v, int) and v >= low, f"allowed: an integer >= {low}")  # noqa: E731
_positive = (lambda v: v > 0, "allowed: a number > 0")
_fraction = (lambda v: 0 <= v < 1, "allowed: a number in [0, 1)")

# By constructor argument name, for the data and model groups.
RANGES: dict[str, Rule] = {
    "hidden_size": _int_at_least(1),
    "num_layers": _int_at_least(1),
    "dropout": _fraction,
    "weight_dropout": _fraction,
    "dense_size": _int_at_least(0),
    "pitch_embedding_dim": _int_at_least(0),
    "seq_len": _int_at_least(1),
    "batch_size": _int_at_least(1),
    "stride": _int_at_least(1),
    "learning_rate": _positive,
    "timing_classes": _int_at_least(2),
    "timing_resolution": _positive,
    "val_fraction": _fraction,
    "test_fraction": _fraction,
    "transpose": _int_at_least(0),
    "num_workers": _int_at_least(0),
}

# Top-level generation keys (null always allowed: "not set").
GENERATION_RANGES: dict[str, Rule] = {
    "temperature": (lambda v: v > 0, "allowed: a number > 0 (greedy decoding: greedy=true)"),
    "timing_temperature": (lambda v: v > 0, "allowed: a number > 0, or null (= temperature)"),
    "top_p": (lambda v: 0 < v <= 1, "allowed: a number in (0, 1], or null"),
    "top_k": _int_at_least(1),
    "velocity_temperature": (lambda v: v > 0, "allowed: a number > 0, or null (= temperature)"),
    "repetition_penalty": (lambda v: v > 0, "allowed: a number > 0 (1 = no penalty, > 1 discourages repeats)"),
    "repetition_window": _whole_at_least(1),
    "no_repeat_ngram": _whole_at_least(0),
    "beam_size": _whole_at_least(1),
    "branch_factor": _whole_at_least(1),
    "steps_per_iteration": _whole_at_least(1),
    "num_notes": _int_at_least(1),
    "num_frames": _int_at_least(1),
    "num_samples": _int_at_least(1),
    "primer_notes": _int_at_least(0),
    "primer_frames": _int_at_least(0),
}


def type_allows(value: Any, hint: Any) -> bool:
    """Whether `value` (a plain config value) fits the annotation `hint`; annotations this cannot judge
    (classes, callables) pass, and the constructor judges them."""
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(type_allows(value, arg) for arg in args)
    if origin is Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or hint in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def describe(hint: Any) -> str:
    text = str(hint).replace("typing.", "").replace("NoneType", "None")
    return getattr(hint, "__name__", text) if not typing.get_args(hint) else text


def _target_signature(target: str) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(parameter names, their annotations, takes **kwargs) of a `_target_`: read from its source without
    importing it (`static_targets`: milliseconds, where importing would load torch and Lightning), else by
    importing it."""
    static = static_targets.signature(target)
    if static is not None:
        return dict.fromkeys(static.parameters, inspect.Parameter.empty), static.annotations, static.open_ended
    module_name, _, name = target.rpartition(".")
    cls = getattr(importlib.import_module(module_name), name)
    parameters = dict(inspect.signature(cls).parameters)
    try:
        hints = typing.get_type_hints(cls.__init__ if isinstance(cls, type) else cls)  # a class or a builder
    except Exception:  # an annotation that cannot be resolved here: check keys, not types
        hints = {}
    hints = {key: hints.get(key, parameter.annotation) for key, parameter in parameters.items()}
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    return {k: p for k, p in parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}, hints, open_ended


def validate_group(name: str, node: DictConfig | None, check_types: bool = True) -> None:
    """One `_target_` group: every key an argument of the target, of its type, in its range."""
    if node is None or "_target_" not in node:
        return
    values = OmegaConf.to_container(node, resolve=True)
    parameters, hints, open_ended = _target_signature(values["_target_"])
    for key, value in values.items():
        if key.startswith("_"):
            continue
        full_key = f"{name}.{key}"
        if key not in parameters:
            if open_ended:
                continue
            settings = ", ".join(p for p in parameters if p not in ("self", "args", "kwargs"))
            raise ConfigError(
                full_key, value, f"not a setting of {values['_target_'].rpartition('.')[2]} (its settings: {settings})"
            )
        hint = hints.get(key, inspect.Parameter.empty)
        if check_types and not isinstance(hint, str) and not type_allows(value, hint):
            raise ConfigError(full_key, value, f"allowed: {describe(hint)}")
        if key in RANGES and value is not None and not isinstance(value, bool) and isinstance(value, (int, float)):
            check, allowed = RANGES[key]
            if not check(value):
                raise ConfigError(full_key, value, allowed)


def validate_generation(settings: dict, prefix: str = "") -> None:
    """The sampling settings of a generate/evaluate config or of training's `sample:` block."""
    for key, (check, allowed) in GENERATION_RANGES.items():
        value = settings.get(key)
        if value is None or (key == "temperature" and settings.get("greedy") is True):  # greedy ignores it
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not check(value):
            raise ConfigError(prefix + key, value, allowed)


def validate_known_keys(cfg: DictConfig, config_file: Path, command: str) -> None:
    """For a command whose every setting is in one config file (musicrnn-generate): a key the file lacks, such
    as `+num_note=50`, is a typo or another command's setting, and would otherwise be ignored in silence."""
    known = set(OmegaConf.load(config_file)) - {"defaults", "hydra"}
    for key in cfg:
        if key not in known:
            raise ConfigError(
                str(key),
                OmegaConf.to_container(cfg, resolve=False)[key],
                f"not a setting of {command} (its settings: {', '.join(sorted(known))})",
            )


def validate_run_config(cfg: DictConfig) -> None:
    """The checks every CLI runs on its composed config before reading data or checkpoints."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:  # a required value (`???`) not given: named before any work starts
        raise MusicrnnError(missing_value_message(missing[0]))
    validate_group("data", cfg.get("data"))
    validate_group("model", cfg.get("model"))
    validate_group("trainer", cfg.get("trainer"))  # annotations too rich to judge (callables, classes) pass
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError("seed", seed, "allowed: an integer, or null (unseeded)")
    sample = cfg.get("sample")
    if sample:  # training's end-of-run sample: 0 or null notes means no sample
        values = OmegaConf.to_container(sample, resolve=True)
        validate_generation(
            {k: v for k, v in values.items() if not (k in ("num_notes", "num_frames") and not v)}, "sample."
        )
