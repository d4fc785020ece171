"""The one LightningModule: a network, its output distribution and its representation, trained as a
next-step model.

Every model variant is a `SequenceModel` built by a function in `training/models.py` from plain typed
settings (what Hydra instantiates and what a checkpoint stores), so the training loop, the checkpoint
contents, the ensembles, generation and the CLIs are written once, against the `Representation` and
`OutputDistribution` protocols, and never ask which model they hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from musicrnn.nets.heads import OutputDistribution
from musicrnn.representations.base import Representation

CHECKPOINT_FORMAT_VERSION = 1
LR_SCHEDULES = (None, "plateau")


@dataclass(frozen=True)
class OptimizerSettings:
    learning_rate: float = 1e-3  # Adam's
    weight_decay: float = 0.0  # Adam's L2 penalty
    lr_schedule: str | None = None  # None, or "plateau": multiply the rate by lr_factor when val/loss stalls
    lr_factor: float = 0.5
    lr_patience: int = 5  # epochs without a better val/loss before the rate drops

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")


def split_batch(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(inputs, targets, lengths) of a batch: a (batch, time + 1, features) tensor of windows, or a padded
    `(tensor, lengths)` pair. The model reads steps 0..T-1 and predicts steps 1..T."""
    tensor, lengths = batch if isinstance(batch, (tuple, list)) else (batch, None)
    return tensor[:, :-1], tensor[:, 1:], lengths


def log_loss(module: pl.LightningModule, stage: str, loss: torch.Tensor, batch_size: int) -> None:
    """`train/loss_step` (this process's batch: no all-reduce every step), `train/loss_epoch`, and
    `val/loss` / `test/loss`: epoch means weighted by `batch_size` targets, averaged over DDP processes."""
    if stage == "train":
        module.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size)
        module.log("train/loss_epoch", loss, on_step=False, on_epoch=True, batch_size=batch_size, sync_dist=True)
    else:
        module.log(
            f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size, sync_dist=True
        )


class SequenceModel(pl.LightningModule):
    """A next-step model: `net` reads (batch, time, features) steps of `representation` and its output is
    the distribution `head` over the next step. `settings` are the builder's arguments (saved as the
    checkpoint's hyperparameters, so `musicrnn.training.checkpoint.load_module` rebuilds the model from
    them alone); `model` names the builder."""

    def __init__(
        self,
        model: str,
        settings: dict[str, Any],
        net: nn.Module,
        head: OutputDistribution,
        representation: Representation,
        optimizer: OptimizerSettings,
    ):
        super().__init__()
        self.save_hyperparameters(dict(settings))
        self.model_name = model
        self.net = net
        self.head = head
        self.representation = representation
        self.optimizer_settings = optimizer
        # Held-out primers travel inside the checkpoint so that generation needs nothing else.
        self.primers: list[torch.Tensor] = []
        # The checkpoints an ensemble was built from (None for a single model).
        self.members: list[str] | None = None

    def forward(self, steps: torch.Tensor, state=None):
        return self.net(steps, state)

    def _step(self, batch, stage: str) -> dict[str, torch.Tensor]:
        inputs, targets, lengths = split_batch(batch)
        output, _ = self.net(inputs)
        result = self.head.loss(output, inputs, targets, lengths)
        log_loss(self, stage, result.loss, result.count)
        if result.logged:
            self.log_dict(
                {f"{stage}/{name}": value for name, value in result.logged.items()},
                on_step=False,
                on_epoch=True,
                batch_size=result.count,
                sync_dist=True,
            )
        # Everything the metric callbacks need, detached: they see it in on_*_batch_end.
        return {"loss": result.loss, **result.outputs}

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def configure_optimizers(self):
        settings = self.optimizer_settings
        optimizer = torch.optim.Adam(self.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
        if settings.lr_schedule is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=settings.lr_factor, patience=settings.lr_patience
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val/loss"}}

    def setup(self, stage: str) -> None:
        # Runs before Lightning restores a checkpoint, so a resumed run keeps its trained parameters.
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if stage == "fit" and datamodule is not None:
            self.head.prepare(self.net, datamodule)

    # -- checkpoint contents ------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "primers"):
            self.primers = [torch.from_numpy(np.asarray(p, dtype=np.float32)) for p in datamodule.primers()]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["musicrnn"] = {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "model": self.model_name,
            **self.representation.settings(),
            "primers": list(self.primers),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.primers = list(checkpoint.get("musicrnn", {}).get("primers", []))
