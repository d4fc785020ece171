"""One log line per epoch, for runs whose progress bar is off or whose output is not a terminal (SLURM logs,
CI, `nohup`): a progress bar there writes nothing readable, or thousands of carriage returns."""

from __future__ import annotations

import logging
import math
import time

import pytorch_lightning as pl

log = logging.getLogger("musicrnn.progress")


class EpochProgressLine(pl.Callback):
    """At the end of every training epoch: `epoch 3/100: train/loss 2.4512, val/loss 2.5121 (monitored
    val/loss, best 2.5003), 4.6 s`. Values that were not logged this epoch (no validation) are left out."""

    def __init__(self, monitor: str | None = "val/loss", mode: str = "min"):
        self.monitor = monitor
        self.mode = mode
        self.best: float | None = None
        self.started = 0.0

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # A resumed run starts from the best its checkpoint callback restored.
        restored = getattr(trainer.checkpoint_callback, "best_model_score", None)
        if restored is not None and math.isfinite(float(restored)):
            self.best = float(restored)

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [
            f"{name.removesuffix('_epoch')} {float(metrics[name]):.4f}"
            for name in ("train/loss_epoch", "val/loss")
            if name in metrics
        ]
        if self.monitor and self.monitor in metrics:
            if self.monitor != "val/loss":
                parts.append(f"{self.monitor} {float(metrics[self.monitor]):.4f}")
            # Tracked here: the checkpoint callback updates its best after this hook has run.
            value = float(metrics[self.monitor])
            if math.isfinite(value) and (self.best is None or (value < self.best) == (self.mode == "min")):
                self.best = value
            shown = f", best {self.best:.4f}" if self.best is not None else ""
            parts[-1] += f" (monitored {self.monitor}{shown})"
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        seconds = time.perf_counter() - self.started
        log.info("epoch %d/%s: %s, %.1f s", trainer.current_epoch + 1, total, ", ".join(parts), seconds)
