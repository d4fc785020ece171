"""The Lightning hooks every metric callback needs: route each stage's batch outputs to `update` and log at
the end of each stage's epoch. Subclasses implement `update(split, trainer, outputs)` and
`log_epoch(split, trainer, pl_module)`."""

from __future__ import annotations

import pytorch_lightning as pl


class StageMetrics(pl.Callback):
    """`train_every_n_batches`: training metrics are estimated on every n-th training batch (the first of
    each epoch included); validation and test metrics always see every batch. Scoring a training batch
    (top-k accuracy over 6,400 positions) costs about 7% of a seed-model training step on 2 CPU cores
    (experiments/benchmarks/README.md), and the training loss is logged for every batch anyway."""

    train_every_n_batches: int = 1

    def update(self, split: str, trainer: pl.Trainer, outputs) -> None:
        raise NotImplementedError

    def log_epoch(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx % self.train_every_n_batches == 0:
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
