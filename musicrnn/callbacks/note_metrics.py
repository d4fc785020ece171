"""Note-model metrics as a Lightning callback: pitch accuracy (top-1, top-k), pitch perplexity, step and
duration MSE, for train/val/test, beside the unigram baseline that gives accuracy a floor to read against.

The callback reads what the LightningModule's steps return (logits, per-position NLL, predictions and
targets), so it adds no forward pass; torchmetrics does the accumulation and the cross-process sync.
"""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric, MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy

from musicrnn.representation import NUM_PITCHES


class _NoteScores(torch.nn.Module):
    """The accumulators of one stage for one predictor (the model or the baseline)."""

    def __init__(self, top_k: int):
        super().__init__()
        self.top_k = top_k
        self.acc_top1 = MulticlassAccuracy(NUM_PITCHES, top_k=1, average="micro")
        self.acc_topk = MulticlassAccuracy(NUM_PITCHES, top_k=top_k, average="micro")
        self.nll = MeanMetric()
        self.step_mse = MeanSquaredError()
        self.duration_mse = MeanSquaredError()

    def update(self, logits, nll, target, step, step_target, duration, duration_target) -> None:
        self.acc_top1.update(logits, target)
        self.acc_topk.update(logits, target)
        self.nll.update(nll)
        self.step_mse.update(step, step_target)
        self.duration_mse.update(duration, duration_target)

    def compute(self, prefix: str) -> dict[str, torch.Tensor]:
        nll = self.nll.compute()
        return {
            f"{prefix}pitch_acc_top1": self.acc_top1.compute(),
            f"{prefix}pitch_acc_top{self.top_k}": self.acc_topk.compute(),
            f"{prefix}pitch_nll": nll,
            f"{prefix}pitch_perplexity": torch.exp(nll),
            f"{prefix}step_mse": self.step_mse.compute(),
            f"{prefix}duration_mse": self.duration_mse.compute(),
        }

    def reset(self) -> None:
        for metric in self.children():
            if isinstance(metric, Metric):
                metric.reset()


class NoteMetrics(pl.Callback):
    """Logs `{stage}/pitch_acc_top1`, `{stage}/pitch_acc_top{top_k}`, `{stage}/pitch_perplexity`,
    `{stage}/pitch_nll`, `{stage}/step_mse`, `{stage}/duration_mse` and, for val and test, the same
    for the unigram baseline as `{stage}/unigram_*`: the training split's pitch frequencies (add-one
    smoothed) for pitch, the training means for step and duration.
    """

    def __init__(self, top_k: int = 5, unigram_baseline: bool = True):
        super().__init__()
        self.top_k = top_k
        self.unigram_baseline = unigram_baseline
        self.scores: dict[str, _NoteScores] = {}
        self.baseline_scores: dict[str, _NoteScores] = {}
        self.unigram_log_probs: torch.Tensor | None = None
        self.step_mean = self.duration_mean = 0.0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        device = pl_module.device
        for split in ("train", "val", "test"):
            self.scores[split] = _NoteScores(self.top_k).to(device)
        datamodule = getattr(trainer, "datamodule", None)
        if self.unigram_baseline and datamodule is not None and hasattr(datamodule, "train_statistics"):
            stats = datamodule.train_statistics()
            counts = np.asarray(stats["pitch_counts"], dtype=np.float64) + 1.0
            self.unigram_log_probs = torch.tensor(np.log(counts / counts.sum()), dtype=torch.float32, device=device)
            self.step_mean, self.duration_mean = stats["step_mean"], stats["duration_mean"]
            for split in ("val", "test"):
                self.baseline_scores[split] = _NoteScores(self.top_k).to(device)

    def _update(self, split: str, trainer: pl.Trainer, outputs) -> None:
        if trainer.sanity_checking or not isinstance(outputs, dict) or "pitch_logits" not in outputs:
            return
        o = outputs
        self.scores[split].update(
            o["pitch_logits"], o["pitch_nll"], o["pitch_target"], o["step"], o["step_target"], o["duration"], o["duration_target"]
        )
        if split in self.baseline_scores:
            target = o["pitch_target"]
            log_probs = self.unigram_log_probs.to(target.device)
            self.baseline_scores[split].update(
                log_probs.expand(len(target), -1),
                -log_probs[target],
                target,
                torch.full_like(o["step_target"], self.step_mean),
                o["step_target"],
                torch.full_like(o["duration_target"], self.duration_mean),
                o["duration_target"],
            )

    def _log(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or split not in self.scores:
            return
        values = self.scores[split].compute(f"{split}/")
        if split in self.baseline_scores:
            values.update(self.baseline_scores[split].compute(f"{split}/unigram_"))
            self.baseline_scores[split].reset()
        self.scores[split].reset()
        finite = {k: v for k, v in values.items() if math.isfinite(float(v))}
        pl_module.log_dict(finite, on_step=False, on_epoch=True, prog_bar=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._update("train", trainer, outputs)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("val", trainer, outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("test", trainer, outputs)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._log("train", trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._log("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._log("test", trainer, pl_module)
