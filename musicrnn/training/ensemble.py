"""Ensembles ("average feature fusion"): several trained models of one kind averaged in probability space.

An ensemble is a `SequenceModel` like its members, holding the members' fused network (`nets/ensemble.py`:
all K members run at once and return the mixture's output) in place of one member's network, with the
members' head and representation. So `Trainer.test`, the metric callbacks and generation work on it
unchanged. Members must read and write the same representation, mean the same by their outputs, and share
the layer layout that lets them run batched; anything else is refused naming the member and the setting.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from musicrnn.errors import CheckpointError, MusicrnnError
from musicrnn.training.checkpoint import expand_checkpoints, load_module
from musicrnn.training.models import MODELS
from musicrnn.training.module import SequenceModel


def _shared_settings(module: SequenceModel) -> list[tuple[str, object, str]]:
    """(setting, value, what sharing it is for) of everything ensemble members must agree on, in the order
    they are checked."""
    net, config = module.net, module.net.config
    meaning = "representation and output shape"
    shared = [(name, value, meaning) for name, value in module.representation.settings().items()]
    shared += [(name, getattr(config, name), meaning) for name in net.ensemble_meaning]
    return shared


def ensemble_from_modules(
    modules: Sequence[SequenceModel],
    weights: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
) -> SequenceModel:
    """An ensemble of trained models of one kind: a model of their kind whose network is the fused one."""
    if not modules:
        raise MusicrnnError("an ensemble needs at least one checkpoint")
    names = list(names) if names is not None else [f"member {i}" for i in range(len(modules))]
    first = modules[0]
    if not hasattr(type(first.net), "fuse"):
        raise MusicrnnError(f"{names[0]}: cannot ensemble a {type(first.net).__name__}")
    reference = _shared_settings(first)
    for module, name in zip(modules[1:], names[1:]):
        if module.model_name != first.model_name:
            raise CheckpointError(
                name, f"holds a {module.model_name} model, but {names[0]} holds a {first.model_name} model"
            )
        for (setting, mine, what), (_, theirs, _) in zip(_shared_settings(module), reference):
            if mine != theirs:
                raise CheckpointError(
                    name,
                    f"{setting} is {mine!r}, but {names[0]} has {theirs!r} (ensemble members must share the {what})",
                )
    ensemble = MODELS[first.model_name](**dict(first.hparams))
    ensemble.net = type(first.net).fuse([m.net for m in modules], weights)
    ensemble.primers = list(first.primers)
    ensemble.members = list(names)
    return ensemble.eval()


def load_ensemble(paths: Sequence[str | os.PathLike], weights: Sequence[float] | None = None) -> SequenceModel:
    """The ensemble of the checkpoints at `paths` (uniform weights unless `weights` is given)."""
    return ensemble_from_modules([load_module(p) for p in paths], weights, [str(p) for p in paths])


def load_model(spec: str | os.PathLike | Sequence[str | os.PathLike], weights: Sequence[float] | None = None):
    """One checkpoint -> its model; several (a list or a glob) -> their ensemble (musicrnn.training.ensemble)."""
    paths = expand_checkpoints(spec)
    if len(paths) == 1 and weights is None:
        return load_module(paths[0])
    return load_ensemble(paths, weights)
