"""How both LightningModules log their loss, so that DDP runs report the same numbers as one process."""

from __future__ import annotations

import pytorch_lightning as pl
import torch


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
