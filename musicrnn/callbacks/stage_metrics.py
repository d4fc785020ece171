"""The Lightning hooks every metric callback needs: route each stage's batch outputs to `update` and log at
the end of each stage's epoch. Subclasses implement `update(split, trainer, outputs)` and
`log_epoch(split, trainer, pl_module)`."""

from __future__ import annotations

import pytorch_lightning as pl


class StageMetrics(pl.Callback):
    def update(self, split: str, trainer: pl.Trainer, outputs) -> None:
        raise NotImplementedError

    def log_epoch(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.update("train", trainer, outputs)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.update("val", trainer, outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.update("test", trainer, outputs)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.log_epoch("train", trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.log_epoch("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self.log_epoch("test", trainer, pl_module)
