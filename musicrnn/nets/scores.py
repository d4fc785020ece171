"""What each output distribution is scored by, accumulated over an epoch with torchmetrics (which also does
the cross-process sync), beside baselines fitted on the training split that give the numbers a floor.

A scorer reads the detached per-target values a head's `loss` returns (`StepLoss.outputs`), so scoring adds
no forward pass. `musicrnn.training.callbacks.Metrics` routes each stage's batches to the model's scorer and
logs what it computes; a head names its scorer (`OutputDistribution.scorer`).

- `NoteScores`: pitch accuracy (top-1, top-k), pitch NLL and perplexity, step and duration MSE (and timing
  perplexity for categorical timing), velocity accuracy, NLL and perplexity (models with velocity), beside a
  unigram and a bigram baseline (add-k smoothed pitch and velocity-bin frequencies, the bigram's given the
  previous note's; the baselines predict the training-mean step and duration);
- `FrameScores`: frame NLL (binary cross-entropy summed over the keys, averaged over every target frame,
  in nats: the benchmark literature's NLL) and frame accuracy (TP / (TP + FP + FN) over all frames, Bay et
  al. 2009, the prediction thresholded), beside every key on with its training-split frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics import MeanMetric, MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy, MultilabelStatScores

from musicrnn.nets.heads import frame_nll, key_log_odds
from musicrnn.representations.notes import NUM_PITCHES

SPLITS = ("train", "val", "test")
BASELINE_SPLITS = ("val", "test")  # baselines are scored where the model is judged, not on training batches


@dataclass(frozen=True)
class MetricOptions:
    top_k: int = 5  # note models: the k of top-k pitch accuracy
    threshold: float = 0.5  # piano-roll models: a key is predicted on when its probability is above this
    baselines: bool = True  # score the training-split baselines beside the model (val and test)
    baseline_smoothing: float = 0.1  # note models: add-k smoothing of the unigram and bigram baselines

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")


# -- note models -----------------------------------------------------------------------------------------------
class _NoteAccumulators(torch.nn.Module):
    """The accumulators of one stage for one predictor (the model or a baseline)."""

    def __init__(self, top_k: int, velocity_bins: int = 0):
        super().__init__()
        self.top_k = top_k
        if velocity_bins:
            self.velocity_acc = MulticlassAccuracy(velocity_bins, top_k=1, average="micro")
            self.velocity_nll = MeanMetric()
        self.has_velocity = bool(velocity_bins)
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

    def update_velocity(self, logits, nll, target) -> None:
        self.velocity_acc.update(logits, target)
        self.velocity_nll.update(nll)

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
        if self.has_velocity and self.velocity_nll.update_count:
            velocity_nll = self.velocity_nll.compute()
            values[f"{prefix}velocity_acc"] = self.velocity_acc.compute()
            values[f"{prefix}velocity_nll"] = velocity_nll
            values[f"{prefix}velocity_perplexity"] = torch.exp(velocity_nll)
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


class NoteScores:
    """`{split}/pitch_acc_top1`, `pitch_acc_top{k}`, `pitch_nll`, `pitch_perplexity`, `step_mse`,
    `duration_mse` (and `step_perplexity`, `duration_perplexity` for categorical timing; `velocity_acc`,
    `velocity_nll`, `velocity_perplexity` with `velocity_bins`) and, for val and test, the same for two
    baselines fitted on the training split (`datamodule.train_statistics()`), scored on the very same targets:
    `unigram_*` (pitch and velocity-bin frequencies; its top-1 is "always the most frequent pitch") and
    `bigram_*` (P(pitch | previous pitch), P(velocity bin | previous note's bin)), both predicting the
    training-mean step and duration."""

    def __init__(self, options: MetricOptions, datamodule=None, device=None, velocity_bins: int = 0):
        self.velocity_bins = velocity_bins
        self.scores = {split: _NoteAccumulators(options.top_k, velocity_bins).to(device) for split in SPLITS}
        self.baseline_scores: dict[str, dict[str, _NoteAccumulators]] = {}
        self.baseline_log_probs: dict[str, torch.Tensor] = {}
        self.step_mean = self.duration_mean = 0.0
        if options.baselines and datamodule is not None and hasattr(datamodule, "train_statistics"):
            stats = datamodule.train_statistics()
            k = options.baseline_smoothing
            self.baseline_log_probs = {
                name: torch.tensor(smoothed_log_probs(stats[counts], k), dtype=torch.float32, device=device)
                for name, counts in (("unigram", "pitch_counts"), ("bigram", "bigram_counts"))
            }
            self.step_mean, self.duration_mean = stats["step_mean"], stats["duration_mean"]
            if velocity_bins:  # the statistics count MIDI velocities 0..127: sum them into the model's bins
                width = 128 // velocity_bins
                unigram = stats["velocity_counts"].reshape(velocity_bins, width).sum(axis=1)
                bigram = (
                    stats["velocity_bigram_counts"].reshape(velocity_bins, width, velocity_bins, width).sum(axis=(1, 3))
                )
                self.velocity_log_probs = {
                    name: torch.tensor(smoothed_log_probs(counts, k), dtype=torch.float32, device=device)
                    for name, counts in (("unigram", unigram), ("bigram", bigram))
                }
            for split in BASELINE_SPLITS:
                self.baseline_scores[split] = {
                    name: _NoteAccumulators(options.top_k, velocity_bins).to(device) for name in self.baseline_log_probs
                }

    def update(self, split: str, o: dict) -> None:
        if "pitch_logits" not in o:
            return
        self.scores[split].update(
            o["pitch_logits"], o["pitch_nll"], o["pitch_target"], o["step"], o["step_target"], o["duration"],
            o["duration_target"], o.get("step_nll"), o.get("duration_nll"),
        )  # fmt: skip
        if self.velocity_bins:
            self.scores[split].update_velocity(o["velocity_logits"], o["velocity_nll"], o["velocity_target"])
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
            if self.velocity_bins:
                table = self.velocity_log_probs[name].to(target.device)
                velocity = o["velocity_target"]
                log_probs = table.expand(len(velocity), -1) if name == "unigram" else table[o["previous_velocity"]]
                nll = -log_probs.gather(1, velocity.unsqueeze(1)).squeeze(1)
                scores.update_velocity(log_probs, nll, velocity)

    def compute(self, split: str) -> dict[str, torch.Tensor]:
        """The epoch's values (none when no batch was seen), then a fresh start."""
        if self.scores[split].nll.update_count == 0:
            return {}
        values = self.scores[split].compute(f"{split}/")
        self.scores[split].reset()
        for name, scores in self.baseline_scores.get(split, {}).items():
            values.update(scores.compute(f"{split}/{name}_"))
            scores.reset()
        return values


# -- piano-roll models -----------------------------------------------------------------------------------------
class _FrameAccumulators(torch.nn.Module):
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


class FrameScores:
    """`{split}/frame_nll` and `{split}/frame_accuracy` and, for val and test, `unigram_frame_nll` and
    `unigram_frame_accuracy`: every key on with its training-split frequency (`datamodule.key_frequencies()`),
    independently of the past."""

    def __init__(self, num_keys: int, options: MetricOptions, datamodule=None, device=None):
        self.scores = {split: _FrameAccumulators(num_keys, options.threshold).to(device) for split in SPLITS}
        self.baseline_scores: dict[str, _FrameAccumulators] = {}
        self.baseline_logits: torch.Tensor | None = None
        if options.baselines and datamodule is not None and hasattr(datamodule, "key_frequencies"):
            # Lightning has set the datamodule up before the callbacks, so its rolls are loaded.
            self.baseline_logits = key_log_odds(datamodule.key_frequencies()).to(device)
            self.baseline_scores = {
                split: _FrameAccumulators(num_keys, options.threshold).to(device) for split in BASELINE_SPLITS
            }

    def update(self, split: str, outputs: dict) -> None:
        if "frame_nll" not in outputs:
            return
        target = outputs["frame_target"]
        self.scores[split].update(outputs["frame_nll"], torch.sigmoid(outputs["frame_logits"]), target)
        if split in self.baseline_scores and self.baseline_logits is not None:
            logits = self.baseline_logits.to(target.device).expand_as(target)
            self.baseline_scores[split].update(frame_nll(logits, target), torch.sigmoid(logits), target)

    def compute(self, split: str) -> dict[str, torch.Tensor]:
        """The epoch's values (none when no batch was seen), then a fresh start."""
        if self.scores[split].nll.update_count == 0:
            return {}
        values = self.scores[split].compute(f"{split}/")
        self.scores[split].reset()
        if split in self.baseline_scores:
            values.update(self.baseline_scores[split].compute(f"{split}/unigram_"))
            self.baseline_scores[split].reset()
        return values
