"""Piano-roll metrics as a Lightning callback: frame NLL and frame accuracy for train/val/test, beside an
independent-keys baseline fitted on the training split.

- `frame_nll`: binary cross-entropy summed over the keys, averaged over every target frame of every piece
  (a frame counts once, so long pieces weigh more), in nats: the benchmark literature's NLL.
- `frame_accuracy`: TP / (TP + FP + FN) over all frames (Bay et al. 2009), the prediction thresholded (on when
  the probability is above `threshold`), counts summed over the whole split before dividing.
- `unigram_*` (val and test): every key on with its training-split frequency, independently of the past.

The callback reads what the piano-roll model's steps return, so it adds no forward pass; torchmetrics does the
accumulation and the cross-process sync.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torchmetrics import MeanMetric
from torchmetrics.classification import MultilabelStatScores

from musicrnn.nets.heads import frame_nll, key_log_odds
from musicrnn.training.callbacks.stage_metrics import StageMetrics


class _FrameScores(torch.nn.Module):
    def __init__(self, num_keys: int, threshold: float):
        super().__init__()
        self.nll = MeanMetric()
        self.stats = MultilabelStatScores(num_labels=num_keys, threshold=threshold, average="micro")

    def update(self, nll: torch.Tensor, probs: torch.Tensor, target: torch.Tensor) -> None:
        self.nll.update(nll)
        self.stats.update(probs, target.long())

    def compute(self, prefix: str) -> dict[str, torch.Tensor]:
        tp, fp, _, fn, _ = self.stats.compute()
        denominator = (tp + fp + fn).float()
        accuracy = tp.float() / denominator if denominator > 0 else torch.tensor(float("nan"))
        return {f"{prefix}frame_nll": self.nll.compute(), f"{prefix}frame_accuracy": accuracy}

    def reset(self) -> None:
        self.nll.reset()
        self.stats.reset()


class PianoRollMetrics(StageMetrics):
    """Logs `{stage}/frame_nll` and `{stage}/frame_accuracy` for piano-roll models (and, for val and test,
    `{stage}/unigram_frame_nll`, `{stage}/unigram_frame_accuracy`). Does nothing for other models."""

    def __init__(self, threshold: float = 0.5, baselines: bool = True, train_every_n_batches: int = 1):
        super().__init__()
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        if train_every_n_batches < 1:
            raise ValueError(f"train_every_n_batches must be >= 1, got {train_every_n_batches}")
        self.train_every_n_batches = train_every_n_batches
        self.threshold = threshold
        self.baselines = baselines
        self.scores: dict[str, _FrameScores] = {}
        self.baseline_scores: dict[str, _FrameScores] = {}
        self.baseline_logits: torch.Tensor | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        num_keys = getattr(pl_module.hparams, "num_keys", None)
        if num_keys is None:
            return
        for split in ("train", "val", "test"):
            self.scores[split] = _FrameScores(num_keys, self.threshold).to(pl_module.device)
        datamodule = getattr(trainer, "datamodule", None)
        if self.baselines and datamodule is not None and hasattr(datamodule, "key_frequencies"):
            # Lightning has set the datamodule up before the callbacks, so its rolls are loaded.
            self.baseline_logits = key_log_odds(datamodule.key_frequencies()).to(pl_module.device)
            self.baseline_scores = {
                s: _FrameScores(num_keys, self.threshold).to(pl_module.device) for s in ("val", "test")
            }

    def update(self, split: str, trainer: pl.Trainer, outputs) -> None:
        if (
            trainer.sanity_checking
            or not isinstance(outputs, dict)
            or "frame_nll" not in outputs
            or split not in self.scores
        ):
            return
        target = outputs["frame_target"]
        self.scores[split].update(outputs["frame_nll"], torch.sigmoid(outputs["frame_logits"]), target)
        if split in self.baseline_scores and self.baseline_logits is not None:
            logits = self.baseline_logits.to(target.device).expand_as(target)
            self.baseline_scores[split].update(frame_nll(logits, target), torch.sigmoid(logits), target)

    def log_epoch(self, split: str, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or split not in self.scores or self.scores[split].nll.update_count == 0:
            return
        values = self.scores[split].compute(f"{split}/")
        self.scores[split].reset()
        if split in self.baseline_scores:
            values.update(self.baseline_scores[split].compute(f"{split}/unigram_"))
            self.baseline_scores[split].reset()
        finite = {k: v for k, v in values.items() if math.isfinite(float(v))}
        # torchmetrics has already gathered every DDP process's counts; sync_dist only tells Lightning so.
        pl_module.log_dict(finite, on_step=False, on_epoch=True, prog_bar=False, sync_dist=True)
