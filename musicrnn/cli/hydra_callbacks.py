"""Hydra callbacks (hydra.callbacks in a config): hooks around a whole run or multirun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

SQLITE_PREFIX = "sqlite:///"


class CreateSqliteFolder(Callback):
    """Create the folder of the Optuna sweeper's SQLite storage before the sweep opens it: SQLite creates
    the file but not its folder, so `sqlite:///logs/optuna_x.db` would fail on a fresh checkout.
    (Hydra calls this before it builds the sweeper, which opens the storage.)"""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        storage = OmegaConf.select(config, "hydra.sweeper.storage")
        if isinstance(storage, str) and storage.startswith(SQLITE_PREFIX) and not storage.endswith(":memory:"):
            Path(storage[len(SQLITE_PREFIX) :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
