"""Note-model metrics as a Lightning callback: pitch accuracy (top-1, top-k), pitch perplexity, step and
duration MSE (and timing perplexity for categorical timing heads), for train/val/test, beside the unigram
and bigram pitch baselines that give them a floor to read against.

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

from musicrnn.representations.notes import NUM_PITCHES
from musicrnn.training.callbacks.stage_metrics import StageMetrics


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
        self.step_nll = MeanMetric()
        self.duration_nll = MeanMetric()
        self.has_timing_nll = False

    def update(
        self, logits, nll, target, step, step_target, duration, duration_target, step_nll=None, duration_nll=None
    ) -> None:
        self.acc_top1.update(logits, target)
        self.acc_topk.update(logits, target)
        self.nll.update(nll)
        self.step_mse.update(step, step_target)
        self.duration_mse.update(duration, duration_target)
        if step_nll is not None:
            self.step_nll.update(step_nll)
            self.duration_nll.update(duration_nll)
            self.has_timing_nll = True

    def compute(self, prefix: str) -> dict[str, torch.Tensor]:
        nll = self.nll.compute()
        values = {
            f"{prefix}pitch_acc_top1": self.acc_top1.compute(),
            f"{prefix}pitch_acc_top{self.top_k}": self.acc_topk.compute(),
            f"{prefix}pitch_nll": nll,
            f"{prefix}pitch_perplexity": torch.exp(nll),
            f"{prefix}step_mse": self.step_mse.compute(),
            f"{prefix}duration_mse": self.duration_mse.compute(),
        }
        if self.has_timing_nll:
            values[f"{prefix}step_perplexity"] = torch.exp(self.step_nll.compute())
            values[f"{prefix}duration_perplexity"] = torch.exp(self.duration_nll.compute())
        return values

    def reset(self) -> None:
        for metric in self.children():
            if isinstance(metric, Metric):
                metric.reset()
        self.has_timing_nll = False


def smoothed_log_probs(counts: np.ndarray, k: float) -> np.ndarray:
    """log of add-k smoothed relative frequencies along the last axis."""
    counts = np.asarray(counts, dtype=np.float64) + k
    return np.log(counts / counts.sum(axis=-1, keepdims=True))


class NoteMetrics(StageMetrics):
    """Logs `{stage}/pitch_acc_top1`, `{stage}/pitch_acc_top{top_k}`, `{stage}/pitch_perplexity`,
    `{stage}/pitch_nll`, `{stage}/step_mse`, `{stage}/duration_mse` (and `{stage}/step_perplexity`,
    `{stage}/duration_perplexity` for categorical timing heads) and, for val and test, the same for two
    baselines fitted on the training split, scored on the very same targets:

    - `unigram_*`: pitch frequencies (add-k smoothed; its top-1 is "always the most frequent pitch"),
      training-mean step and duration;
    - `bigram_*`: P(pitch | previous pitch), add-k smoothed, training-mean step and duration.
    """

    def __init__(
        self, top_k: int = 5, baselines: bool = True, baseline_smoothing: float = 0.1, train_every_n_batches: int = 1
    ):
        super().__init__()
        if train_every_n_batches < 1:
            raise ValueError(f"train_every_n_batches must be >= 1, got {train_every_n_batches}")
        self.train_every_n_batches = train_every_n_batches
        self.top_k = top_k
        self.baselines = baselines
        self.baseline_smoothing = baseline_smoothing
        self.scores: dict[str, _NoteScores] = {}
        self.baseline_scores: dict[str, dict[str, _NoteScores]] = {}
        self.baseline_log_probs: dict[str, torch.Tensor] = {}
        self.step_mean = self.duration_mean = 0.0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        device = pl_module.device
        for split in ("train", "val", "test"):
            self.scores[split] = _NoteScores(self.top_k).to(device)
        datamodule = getattr(trainer, "datamodule", None)
        if self.baselines and datamodule is not None and hasattr(datamodule, "train_statistics"):
            stats = datamodule.train_statistics()
            k = self.baseline_smoothing
            self.baseline_log_probs = {
                "unigram": torch.tensor(
                    smoothed_log_probs(stats["pitch_counts"], k), dtype=torch.float32, device=device
                ),
                "bigram": torch.tensor(
                    smoothed_log_probs(stats["bigram_counts"], k), dtype=torch.float32, device=device
                ),
            }
            self.step_mean, self.duration_mean = stats["step_mean"], stats["duration_mean"]
            for split in ("val", "test"):
                self.baseline_scores[split] = {
                    name: _NoteScores(self.top_k).to(device) for name in self.baseline_log_probs
                }

    def update(self, split: str, trainer: pl.Trainer, outputs) -> None:
        if trainer.sanity_checking or not isinstance(outputs, dict) or "pitch_logits" not in outputs:
            return
        o = outputs
        self.scores[split].update(
            o["pitch_logits"],
            o["pitch_nll"],
            o["pitch_target"],
            o["step"],
            o["step_target"],
            o["duration"],
            o["duration_target"],
            o.get("step_nll"),
            o.get("duration_nll"),
        )
        baselines = self.baseline_scores.get(split)
        if not baselines:  # training batches: no baselines, so no per-batch work for them
            return
        target = o["pitch_target"]
        mean_step = torch.full_like(o["step_target"], self.step_mean)
        mean_duration = torch.full_like(o["duration_target"], self.duration_mean)
        for name, scores in baselines.items():
            table = self.baseline_log_probs[name].to(target.device)
            log_probs = table.expand(len(target), -1) if name == "unigram" else table[o["previous_pitch"]]
            nll = -log_probs.gather(1, target.unsqueeze(1)).squeeze(1)
            scores.update(log_probs, nll, target, mean_step, o["step_target"], mean_duration, o["duration_target"])

    def log_epoch(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or split not in self.scores or self.scores[split].nll.update_count == 0:
            return  # nothing seen: not a note model, or no batch in this stage
        values = self.scores[split].compute(f"{split}/")
        self.scores[split].reset()
        for name, scores in self.baseline_scores.get(split, {}).items():
            values.update(scores.compute(f"{split}/{name}_"))
            scores.reset()
        finite = {k: v for k, v in values.items() if math.isfinite(float(v))}
        # torchmetrics has already gathered every DDP process's counts; sync_dist only tells Lightning so.
        pl_module.log_dict(finite, on_step=False, on_epoch=True, prog_bar=False, sync_dist=True)
