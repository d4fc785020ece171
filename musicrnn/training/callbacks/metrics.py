"""The metric callback: each stage's batches go to the model's scorer (which its output distribution names:
`OutputDistribution.scorer`, `musicrnn.nets.scores`), and each stage's epoch ends with the scorer's values
logged. One callback for every model: a note model logs pitch accuracy, perplexity and timing MSE beside
n-gram baselines, a piano-roll model frame NLL and accuracy beside an independent-keys baseline."""

from __future__ import annotations

import math

import pytorch_lightning as pl

from musicrnn.nets.scores import MetricOptions


class Metrics(pl.Callback):
    """`train_every_n_batches`: training metrics are estimated on every n-th training batch (the first of
    each epoch included); validation and test metrics always see every batch. Scoring a training batch
    (top-k accuracy over 6,400 positions) costs about 7% of a seed-model training step on 2 CPU cores
    (experiments/benchmarks/README.md), and the training loss is logged for every batch anyway. The other
    settings are `MetricOptions`' (each model's scorer reads those it needs)."""

    def __init__(
        self,
        top_k: int = 5,
        threshold: float = 0.5,
        baselines: bool = True,
        baseline_smoothing: float = 0.1,
        train_every_n_batches: int = 1,
    ):
        super().__init__()
        if train_every_n_batches < 1:
            raise ValueError(f"train_every_n_batches must be >= 1, got {train_every_n_batches}")
        self.options = MetricOptions(top_k, threshold, baselines, baseline_smoothing)
        self.train_every_n_batches = train_every_n_batches
        self.scorer = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        head = getattr(pl_module, "head", None)
        if head is not None:
            datamodule = getattr(trainer, "datamodule", None)
            self.scorer = head.scorer(pl_module.net, self.options, datamodule, pl_module.device)

    def update(self, split: str, trainer: pl.Trainer, outputs) -> None:
        if trainer.sanity_checking or self.scorer is None or not isinstance(outputs, dict):
            return
        self.scorer.update(split, outputs)

    def log_epoch(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.scorer is None:
            return
        values = self.scorer.compute(split)
        finite = {k: v for k, v in values.items() if math.isfinite(float(v))}
        if finite:
            # torchmetrics has already gathered every DDP process's counts; sync_dist only tells Lightning so.
            pl_module.log_dict(finite, on_step=False, on_epoch=True, prog_bar=False, sync_dist=True)

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
