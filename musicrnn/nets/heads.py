"""The output-distribution seam: what a network's output means as a probability distribution over the next
step, and everything that follows from that alone.

An `OutputDistribution` (a "head") turns a network's output into the training loss and the per-target
quantities the metric callbacks score, and draws one generated step from it. The LightningModule, the
generation loop and the ensembles are written against this protocol, so a new output distribution is one
new class here (plus its network's output layer, config and tests), and nothing above it changes.

The three today:
- `NoteHeads`: the note model's softmax over pitch, with step and duration either regressed (the seed
  paper) or categorical over quantised values;
- `BernoulliKeys`: one independent Bernoulli per key of the next piano-roll frame;
- `NADEKeys`: the keys of the next frame drawn jointly from a NADE the recurrent state conditions (RNN-NADE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from musicrnn.nets.repetition import ngram_bans, penalise, recent_classes_mask
from musicrnn.representations.notes import (
    DURATION,
    PITCH,
    STEP,
    VELOCITY,
    VELOCITY_BINS,
    bin_velocity,
    dequantise_time,
    num_features,
    quantise_time,
    velocity_bin,
)

TRAIN_POSITIONS = ("all", "last")


@dataclass(frozen=True)
class SamplingSettings:
    """How one step is drawn. temperature <= 0 is greedy. top_k / top_p filter the classes of a categorical
    output (pitch); timing_temperature and velocity_temperature are the temperatures of categorical timing
    and of velocity (None: `temperature`).

    Repetition control, on pitch (note models) or keys (piano rolls) only, never on timing or velocity:
    `repetition_penalty` (CTRL's, > 1 discourages) on every pitch or key played within the last
    `repetition_window` steps; `no_repeat_ngram` = n > 0 forbids a pitch that would repeat an n-gram of pitches
    found within that window (note models)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    timing_temperature: float | None = None
    velocity_temperature: float | None = None
    repetition_penalty: float = 1.0
    repetition_window: int = 16
    no_repeat_ngram: int = 0

    def __post_init__(self) -> None:
        if self.repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.repetition_window < 1:
            raise ValueError(f"repetition_window must be >= 1, got {self.repetition_window}")
        if self.no_repeat_ngram < 0:
            raise ValueError(f"no_repeat_ngram must be >= 0 (0 = off), got {self.no_repeat_ngram}")

    @property
    def controls_repetition(self) -> bool:
        return self.repetition_penalty != 1.0 or self.no_repeat_ngram > 0


class StepLoss(NamedTuple):
    loss: torch.Tensor  # what the optimiser minimises
    count: int  # how many targets it averages over (the weight of this batch in an epoch mean)
    logged: dict[str, torch.Tensor]  # parts of the loss logged as {stage}/{name}
    outputs: dict[str, torch.Tensor]  # detached per-target values for the metric callbacks


class OutputDistribution(Protocol):
    #: the sampling settings this distribution honours (others are refused by musicrnn-generate)
    sampling_options: tuple[str, ...]

    def loss(self, output: Any, inputs: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor | None) -> StepLoss:
        """The loss of a teacher-forced pass: `output` of the network on `inputs`, scored against `targets`
        (each (batch, time, features)); `lengths` marks the real steps of padded items (None: all real)."""

    def step_size(self, net: nn.Module) -> int:
        """Features per generated step."""

    def draw_uniforms(self, length: int, num_samples: int, generator: torch.Generator, device) -> torch.Tensor | None:
        """Random numbers drawn before generation starts (None: `sample_step` draws from `generator`)."""

    def sample_step(
        self, output: Any, index: int, uniforms, settings: SamplingSettings, generator, history=None
    ) -> torch.Tensor:
        """The next step, (batch, step_size), from the network's output at the last position; `history` is
        (batch, steps so far, step_size): the primer and what was generated (for repetition control; None: no
        repetition control)."""

    def log_prob(self, output: Any, steps: torch.Tensor) -> torch.Tensor:
        """(batch, time) log-likelihood under the model (no temperature, no filters) of `steps` ((batch, time,
        step_size)), each given the network's output at the same position (the prediction of that step)."""

    def finish(self, steps: np.ndarray) -> np.ndarray:
        """Generated steps as the representation's array."""

    def prepare(self, net: nn.Module, datamodule: Any) -> None:
        """Before fitting: set output-layer parameters from the training data, where the head wants that."""

    def scorer(self, net: nn.Module, options: Any, datamodule: Any, device: Any) -> Any:
        """What the metric callback scores this distribution's outputs with (`musicrnn.nets.scores`), its
        baselines fitted on `datamodule`'s training split where it has one."""


# -- sampling from a categorical distribution ----------------------------------------------------------------
def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Mask all but the `top_k` most likely classes and/or the smallest set whose probability reaches
    `top_p` (nucleus sampling) with -inf. The most likely class always survives."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        # Stable, so that tied classes enter in class order; float64, as the sampling itself (and the
        # compiled loop, which mirrors this) computes probabilities.
        sorted_logits, order = torch.sort(logits, descending=True, stable=True, dim=-1)
        probs = torch.softmax(sorted_logits.double(), dim=-1)
        # Drop a class once the classes before it already reach top_p.
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_class(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """One class (a pitch, or a timing bin) per row of `logits`; temperature <= 0 means greedy (argmax).

    Sampling is by inverse CDF: the first class whose cumulative probability (float64) exceeds `uniform`
    (one float64 in [0, 1) per row; drawn from `generator` when not given). One uniform per row, fixed in
    advance, is what lets the compiled generation loop (`compiled_sampling`) draw the same notes as this one.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    if uniform is None:
        uniform = torch.rand(logits.shape[:-1], generator=generator, dtype=torch.float64, device=logits.device)
    probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p).double(), dim=-1)
    cumulative = probs.cumsum(dim=-1)
    target = (uniform * cumulative[..., -1]).unsqueeze(-1)
    return torch.searchsorted(cumulative, target, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)


# -- the note model's heads ----------------------------------------------------------------------------------
def positive_pressure_mse(prediction: torch.Tensor, target: torch.Tensor, penalty: float) -> torch.Tensor:
    """MSE plus `penalty` times the mean negative part of the prediction (the TF tutorial's loss for step
    and duration, which must not go below zero)."""
    return F.mse_loss(prediction, target) + penalty * torch.relu(-prediction).mean()


class NoteHeads:
    """Pitch: a softmax over MIDI pitches (cross-entropy). Step and duration: a regression value each
    (`timing_head="regression"`: MSE plus a penalty on negative predictions) or a softmax over multiples of
    `timing_resolution` (`"categorical"`: cross-entropy, so timing has a likelihood and a temperature).
    With `velocity`, a softmax over `velocity_bins` bins of MIDI velocity (cross-entropy).
    The loss is the weighted sum of the parts. `train_positions="all"` scores the next note at every
    position (as language models do); `"last"` only at the final one (the TF tutorial / paper setup)."""

    def __init__(
        self,
        pitch_loss_weight: float = 0.05,
        step_loss_weight: float = 1.0,
        duration_loss_weight: float = 1.0,
        negative_penalty: float = 10.0,
        train_positions: str = "all",
        timing_head: str = "regression",
        timing_classes: int = 101,
        timing_resolution: float = 0.02,
        velocity: bool = False,
        velocity_bins: int = VELOCITY_BINS,
        velocity_loss_weight: float = 1.0,
    ):
        if train_positions not in TRAIN_POSITIONS:
            raise ValueError(f"train_positions must be one of {TRAIN_POSITIONS}, got {train_positions!r}")
        self.weights = (pitch_loss_weight, step_loss_weight, duration_loss_weight)
        self.negative_penalty = negative_penalty
        self.train_positions = train_positions
        self.categorical_timing = timing_head == "categorical"
        self.timing_classes = timing_classes
        self.timing_resolution = timing_resolution
        self.velocity = velocity
        self.velocity_bins = velocity_bins
        self.velocity_loss_weight = velocity_loss_weight
        self.sampling_options = (
            "temperature", "top_k", "top_p", "timing_temperature", "repetition_penalty", "repetition_window",
            "no_repeat_ngram",
        ) + (("velocity_temperature",) if velocity else ())  # fmt: skip

    def _timing_loss(self, output, name: str, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(loss, per-position NLL or None) of one timing head."""
        logits = getattr(output, f"{name}_logits")
        if logits is None:
            prediction = getattr(output, name).reshape(-1)
            return positive_pressure_mse(prediction, target, self.negative_penalty), None
        classes = quantise_time(target, self.timing_resolution, self.timing_classes)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), classes, reduction="none")
        return nll.mean(), nll

    def loss(self, output, inputs, targets, lengths=None) -> StepLoss:
        if self.train_positions == "last":
            output = type(output)(*(t[:, -1:] if t is not None else None for t in output))
            inputs, targets = inputs[:, -1:], targets[:, -1:]
        logits = output.pitch_logits.reshape(-1, output.pitch_logits.shape[-1])
        pitch_target = targets[..., PITCH].reshape(-1).long()
        step_target = targets[..., STEP].reshape(-1)
        duration_target = targets[..., DURATION].reshape(-1)

        pitch_nll = F.cross_entropy(logits, pitch_target, reduction="none")
        pitch_loss = pitch_nll.mean()
        step_loss, step_nll = self._timing_loss(output, "step", step_target)
        duration_loss, duration_nll = self._timing_loss(output, "duration", duration_target)
        pitch_weight, step_weight, duration_weight = self.weights
        loss = pitch_weight * pitch_loss + step_weight * step_loss + duration_weight * duration_loss
        outputs = {
            "pitch_logits": logits.detach(),
            "pitch_nll": pitch_nll.detach(),
            "pitch_target": pitch_target,
            "previous_pitch": inputs[..., PITCH].reshape(-1).long(),
            "step": output.step.reshape(-1).detach(),
            "step_target": step_target,
            "duration": output.duration.reshape(-1).detach(),
            "duration_target": duration_target,
        }
        if step_nll is not None:
            outputs["step_nll"], outputs["duration_nll"] = step_nll.detach(), duration_nll.detach()
        logged = {"pitch_loss": pitch_loss, "step_loss": step_loss, "duration_loss": duration_loss}
        if self.velocity:
            velocity_logits = output.velocity_logits.reshape(-1, self.velocity_bins)
            velocity_target = velocity_bin(targets[..., VELOCITY].reshape(-1), self.velocity_bins)
            velocity_nll = F.cross_entropy(velocity_logits, velocity_target, reduction="none")
            logged["velocity_loss"] = velocity_nll.mean()
            loss = loss + self.velocity_loss_weight * logged["velocity_loss"]
            outputs.update(
                velocity_logits=velocity_logits.detach(),
                velocity_nll=velocity_nll.detach(),
                velocity_target=velocity_target,
                previous_velocity=velocity_bin(inputs[..., VELOCITY].reshape(-1), self.velocity_bins),
            )
        return StepLoss(loss, pitch_target.numel(), logged, outputs)

    def step_size(self, net) -> int:
        return num_features(self.velocity)

    def draw_uniforms(self, length, num_samples, generator, device) -> torch.Tensor:
        # Every random number up front, one per (note, feature, sample): the torch loop and the compiled one
        # read the same numbers, so they draw the same notes.
        features = num_features(self.velocity)
        return torch.rand(length, features, num_samples, generator=generator, dtype=torch.float64, device=device)

    def pitch_logits(self, logits: torch.Tensor, settings: SamplingSettings, history: torch.Tensor) -> torch.Tensor:
        """The last position's pitch logits after repetition control (none unless the settings ask for it)."""
        if not settings.controls_repetition or history is None:
            return logits
        pitches = history[..., PITCH].long()
        window = settings.repetition_window
        if settings.repetition_penalty != 1.0:
            recent = recent_classes_mask(pitches[:, -window:], logits.shape[-1])
            logits = penalise(logits, recent, settings.repetition_penalty)
        if settings.no_repeat_ngram > 0:
            banned = ngram_bans(pitches, settings.no_repeat_ngram, window, logits.shape[-1])
            if banned is not None:
                banned &= ~banned.all(dim=-1, keepdim=True)  # a step with every pitch banned: none is
                logits = logits.masked_fill(banned, float("-inf"))
        return logits

    def sample_step(self, output, index, uniforms, settings: SamplingSettings, generator, history=None) -> torch.Tensor:
        """Pitch sampled (repetition control, then top-k / top-p, apply to it); step and duration the
        regression outputs clamped at 0, or sampled at the timing temperature from categorical heads; velocity
        sampled at the velocity temperature and written as its bin's velocity."""
        batch = output.pitch_logits.shape[0]
        row = torch.empty(batch, num_features(self.velocity), device=output.pitch_logits.device)
        logits = self.pitch_logits(output.pitch_logits[:, -1], settings, history)
        pitch = sample_class(logits, settings.temperature, settings.top_k, settings.top_p, uniform=uniforms[index, 0])
        row[:, PITCH] = pitch.float()
        timing_temperature = (
            settings.temperature if settings.timing_temperature is None else settings.timing_temperature
        )
        for column, name in ((STEP, "step"), (DURATION, "duration")):
            logits = getattr(output, f"{name}_logits")
            if logits is None:
                row[:, column] = getattr(output, name)[:, -1].clamp(min=0.0)
            else:
                timing = sample_class(logits[:, -1], timing_temperature, uniform=uniforms[index, column])
                row[:, column] = dequantise_time(timing.float(), self.timing_resolution)
        if self.velocity:
            temperature = (
                settings.temperature if settings.velocity_temperature is None else settings.velocity_temperature
            )
            classes = sample_class(output.velocity_logits[:, -1], temperature, uniform=uniforms[index, VELOCITY])
            row[:, VELOCITY] = bin_velocity(classes, self.velocity_bins).float()
        return row

    def log_prob(self, output, steps: torch.Tensor) -> torch.Tensor:
        """log p(pitch) + log p(step class) + log p(duration class) (categorical timing; regression timing
        has no likelihood and adds nothing) + log p(velocity bin) (with velocity)."""

        def class_log_prob(logits, classes):
            return torch.log_softmax(logits.float(), dim=-1).gather(-1, classes.unsqueeze(-1)).squeeze(-1)

        total = class_log_prob(
            output.pitch_logits, steps[..., PITCH].long().clamp(0, output.pitch_logits.shape[-1] - 1)
        )
        for column, name in ((STEP, "step"), (DURATION, "duration")):
            logits = getattr(output, f"{name}_logits")
            if logits is not None:
                total = total + class_log_prob(
                    logits, quantise_time(steps[..., column], self.timing_resolution, self.timing_classes)
                )
        if self.velocity:
            total = total + class_log_prob(
                output.velocity_logits, velocity_bin(steps[..., VELOCITY], self.velocity_bins)
            )
        return total

    def finish(self, steps: np.ndarray) -> np.ndarray:
        return steps

    def prepare(self, net, datamodule) -> None:
        """With velocity: start the velocity head's bias at the log-frequencies of the training split's bins,
        so that training starts from the unigram baseline instead of spending its first steps (and the
        shared layers' gradients) on which bins exist at all; on a corpus at one velocity, such as music21's
        chorales, the velocity loss then starts near 0 and leaves the rest of the model as it was."""
        if not self.velocity or not hasattr(datamodule, "train_statistics"):
            return
        counts = datamodule.train_statistics()["velocity_counts"]
        bins = np.asarray(counts, dtype=np.float64).reshape(self.velocity_bins, -1).sum(axis=1)
        with torch.no_grad():
            net.velocity_head.bias.copy_(torch.log(torch.as_tensor((bins + 0.1) / (bins + 0.1).sum())))

    def scorer(self, net, options, datamodule, device):
        from musicrnn.nets.scores import NoteScores  # torchmetrics, loaded when metrics are wanted

        return NoteScores(options, datamodule, device, velocity_bins=self.velocity_bins if self.velocity else 0)


# -- the piano-roll model's head -----------------------------------------------------------------------------
def frame_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of each frame in nats: binary cross-entropy summed over the keys (the
    benchmark literature's frame-level NLL, before averaging over frames)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=-1)


def key_log_odds(frequencies, eps: float = 1e-4) -> torch.Tensor:
    """log(p / (1 - p)) of each key's on-frequency, clipped so that a key never seen costs a finite amount."""
    p = torch.as_tensor(frequencies, dtype=torch.float32).clamp(eps, 1 - eps)
    return torch.log(p / (1 - p))


def target_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(batch, steps) True where a target frame is real: item i has lengths[i] - 1 of them."""
    return torch.arange(steps, device=lengths.device).unsqueeze(0) < (lengths.unsqueeze(1) - 1)


class BernoulliKeys:
    """Each key of the next frame on with probability sigmoid(logit), independently of the other keys given
    the past (the sigmoid output of the piano-roll benchmarks). The loss is the frame NLL over real frames.

    `init_output_bias` starts each key's output bias at its log-odds in the training split (the datamodule's
    `key_frequencies`), so training starts from the independent-keys baseline. Without it a stacked LSTM
    spends tens of epochs on a plateau learning which keys are rare before it learns anything about the
    past (on JSB Chorales, 2 x LSTM 256: val NLL 9.6 after 40 epochs without, 8.6 after 20 with)."""

    sampling_options = ("temperature", "repetition_penalty", "repetition_window")

    def __init__(self, num_keys: int, init_output_bias: bool = True):
        self.num_keys = num_keys
        self.init_output_bias = init_output_bias

    def loss(self, output, inputs, targets, lengths=None) -> StepLoss:
        logits = output
        if lengths is None:
            lengths = torch.full((targets.shape[0],), targets.shape[1] + 1, dtype=torch.long, device=targets.device)
        mask = target_mask(lengths, targets.shape[1])
        nll = frame_nll(logits, targets)[mask]
        outputs = {"frame_nll": nll.detach(), "frame_logits": logits[mask].detach(), "frame_target": targets[mask]}
        return StepLoss(nll.mean(), nll.numel(), {}, outputs)

    def step_size(self, net) -> int:
        return self.num_keys

    def draw_uniforms(self, length, num_samples, generator, device) -> None:
        return None

    @staticmethod
    def recent_keys(settings: SamplingSettings, history: torch.Tensor) -> torch.Tensor | None:
        """(batch, keys) True for the keys on within the last `repetition_window` frames, when penalised."""
        if settings.repetition_penalty == 1.0 or history is None:
            return None
        return history[:, -settings.repetition_window :].amax(dim=1) > 0

    def sample_step(self, output, index, uniforms, settings: SamplingSettings, generator, history=None) -> torch.Tensor:
        """Each key drawn from sigmoid(logit / temperature), after the repetition penalty on the keys of the
        last `repetition_window` frames; temperature <= 0 switches a key on when its probability is above 0.5."""
        last = output[:, -1]
        recent = self.recent_keys(settings, history)
        if recent is not None:
            last = penalise(last, recent, settings.repetition_penalty)
        if settings.temperature <= 0:
            return (last > 0).float()
        return torch.bernoulli(torch.sigmoid(last / settings.temperature), generator=generator)

    def log_prob(self, output, steps: torch.Tensor) -> torch.Tensor:
        return -frame_nll(output, steps)

    def finish(self, steps: np.ndarray) -> np.ndarray:
        return steps.astype(bool)

    def prepare(self, net, datamodule) -> None:
        if self.init_output_bias and hasattr(datamodule, "key_frequencies"):
            with torch.no_grad():
                net.head.bias.copy_(key_log_odds(datamodule.key_frequencies()))

    def scorer(self, net, options, datamodule, device):
        from musicrnn.nets.scores import FrameScores  # torchmetrics, loaded when metrics are wanted

        return FrameScores(self.num_keys, options, datamodule, device)


class NADEKeys(BernoulliKeys):
    """The keys of the next frame drawn jointly from a NADE whose biases the recurrent state sets (RNN-NADE;
    `musicrnn.nets.nade`): p(frame | past) = prod_i p(v_i | v_<i, past), lowest key first. The network's
    output (`NADEOutput`, or an ensemble's `MixtureNADEOutput`) gives the conditionals' logits given the true
    keys below in one parallel pass, so the loss is the same frame NLL as the independent keys' (summed
    binary cross-entropy of the conditionals: exactly -log p(frame)), and frame accuracy thresholds those
    conditionals. Sampling draws the keys one at a time at `temperature`, all samples of a batch at once."""

    def loss(self, output, inputs, targets, lengths=None) -> StepLoss:
        return super().loss(output.conditional_logits(targets), inputs, targets, lengths)

    def sample_step(self, output, index, uniforms, settings: SamplingSettings, generator, history=None) -> torch.Tensor:
        """The keys lowest first, each conditional after the repetition penalty when its key was on within
        the last `repetition_window` frames."""
        recent = self.recent_keys(settings, history)
        return output.sample(settings.temperature, generator, recent, settings.repetition_penalty)

    def log_prob(self, output, steps: torch.Tensor) -> torch.Tensor:
        return output.log_prob(steps)
