"""The stacked-LSTM note model, in plain torch: (pitch, step, duration[, velocity]) rows in, next-note
predictions out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from musicrnn.nets.dropout import Dropout
from musicrnn.representations.notes import NUM_PITCHES, VELOCITY_BINS, num_features, quantise_time, velocity_bin

LSTMState = tuple[torch.Tensor, torch.Tensor]
TIMING_INPUTS = ("linear", "log")
TIMING_HEADS = ("regression", "categorical")


@dataclass(frozen=True)
class NoteLSTMConfig:
    hidden_size: int = 128  # units per LSTM layer (paper: 128)
    num_layers: int = 3  # stacked LSTM layers (paper: 3; TF tutorial: 1)
    dropout: float = 0.3  # between LSTM layers and on the last layer's output (paper: 0.3)
    dense_size: int = 256  # ReLU layer before the heads (paper: 256); 0 = heads read the LSTM (TF tutorial)
    num_pitches: int = NUM_PITCHES  # MIDI pitches 0..127, the softmax's classes
    pitch_embedding_dim: int = 0  # 0 = pitch enters as one number, pitch/128 (paper); >0 = a learned embedding
    timing_input: str = "linear"  # step/duration enter as they are (paper) or as log1p(value / timing_resolution)
    timing_head: str = "regression"  # regression (paper) or categorical: a softmax over quantised values
    timing_classes: int = 101  # categorical timing: values 0, r, 2r, ... (timing_classes - 1) * r
    timing_resolution: float = 0.02  # r, in the representation's time unit (seconds or beats)
    velocity: bool = False  # a fourth input and a softmax over velocity bins
    velocity_bins: int = VELOCITY_BINS
    velocity_embedding_dim: int = 0  # 0 = velocity enters as velocity/127; >0 = a learned embedding of its bin

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be >= 1, got {self.hidden_size}, {self.num_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dense_size < 0 or self.pitch_embedding_dim < 0 or self.velocity_embedding_dim < 0:
            raise ValueError(
                "dense_size, pitch_embedding_dim and velocity_embedding_dim must be >= 0, got "
                f"{self.dense_size}, {self.pitch_embedding_dim}, {self.velocity_embedding_dim}"
            )
        if self.timing_input not in TIMING_INPUTS:
            raise ValueError(f"timing_input must be one of {TIMING_INPUTS}, got {self.timing_input!r}")
        if self.timing_head not in TIMING_HEADS:
            raise ValueError(f"timing_head must be one of {TIMING_HEADS}, got {self.timing_head!r}")
        if self.timing_classes < 2 or self.timing_resolution <= 0:
            raise ValueError(
                f"need timing_classes >= 2 and timing_resolution > 0, got {self.timing_classes}, {self.timing_resolution}"
            )
        if not 2 <= self.velocity_bins <= 128 or 128 % self.velocity_bins:
            raise ValueError(f"velocity_bins must divide 128 (2, 4, ..., 128), got {self.velocity_bins}")

    @property
    def num_features(self) -> int:
        """Columns of an input row: pitch, step, duration, and velocity when the model has it."""
        return num_features(self.velocity)

    @property
    def input_size(self) -> int:
        """Width of the LSTM's input: pitch (1 or its embedding), step, duration, velocity (1 or its embedding)."""
        velocity = (self.velocity_embedding_dim or 1) if self.velocity else 0
        return (self.pitch_embedding_dim or 1) + 2 + velocity


def encode_events(
    events: torch.Tensor,
    config: NoteLSTMConfig,
    pitch_embedding: nn.Embedding | None,
    velocity_embedding: nn.Embedding | None = None,
) -> torch.Tensor:
    """(batch, time, 3 or 4) events -> input features: pitch/num_pitches or its embedding, then step and
    duration as they are or log-scaled (`config.timing_input`), then (with velocity) velocity / 127 or the
    embedding of its bin."""
    pitch, timing = events[..., 0], events[..., 1:3]
    if config.timing_input == "log":
        timing = torch.log1p(timing.clamp(min=0) / config.timing_resolution)
    if pitch_embedding is None:
        parts = [(pitch / config.num_pitches).unsqueeze(-1), timing]
    else:
        parts = [pitch_embedding(pitch.long().clamp(0, config.num_pitches - 1)), timing]
    if config.velocity:
        velocity = events[..., 3]
        if velocity_embedding is None:
            parts.append((velocity / 127.0).unsqueeze(-1))
        else:
            parts.append(velocity_embedding(velocity_bin(velocity, config.velocity_bins)))
    return torch.cat(parts, dim=-1)


class NoteLSTMOutput(NamedTuple):
    pitch_logits: torch.Tensor  # (batch, time, num_pitches)
    step: torch.Tensor  # (batch, time): the prediction (regression) or the expected value (categorical)
    duration: torch.Tensor  # (batch, time)
    step_logits: torch.Tensor | None = None  # (batch, time, timing_classes), categorical timing only
    duration_logits: torch.Tensor | None = None
    velocity_logits: torch.Tensor | None = None  # (batch, time, velocity_bins), with velocity only

    def last(self) -> NoteLSTMOutput:
        """The output at the last time step only."""
        return NoteLSTMOutput(*(t[:, -1:] if t is not None else None for t in self))


class NoteLSTM(nn.Module):
    """Stacked LSTM over note events with three heads (pitch logits, step and duration), and a fourth over
    velocity bins when `config.velocity`.

    Inputs: pitch as pitch/num_pitches (the TF tutorial's choice the paper builds on) or a learned
    embedding; step and duration as they are or log-scaled. Timing heads: one regression value each
    (paper), or logits over quantised values, which give timing a likelihood and let sampling use a
    temperature on it too.
    """

    # What ensemble members must share (the meaning of inputs and outputs), and what they share to run stacked
    # (members of different layouts are mixed one by one: `musicrnn.nets.ensemble.MixedEnsembleNet`).
    ensemble_meaning = ("timing_head", "timing_classes", "timing_resolution", "velocity", "velocity_bins")
    ensemble_layout = (
        "hidden_size", "num_layers", "pitch_embedding_dim", "velocity_embedding_dim", "dense_size", "timing_input",
    )  # fmt: skip

    @staticmethod
    def fuse(nets: Sequence[NoteLSTM], weights: Sequence[float] | None = None) -> nn.Module:
        """The members as one network returning the mixture's output (`musicrnn.nets.ensemble`)."""
        from musicrnn.nets.ensemble import NoteEnsembleNet, fuse  # it builds on this module

        return fuse(nets, weights, NoteEnsembleNet)

    def __init__(self, config: NoteLSTMConfig):
        super().__init__()
        self.config = config
        if config.pitch_embedding_dim:
            self.pitch_embedding = nn.Embedding(config.num_pitches, config.pitch_embedding_dim)
        else:
            self.pitch_embedding = None
        self.lstm = nn.LSTM(
            config.input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output_dropout = Dropout(config.dropout)
        if config.dense_size:
            self.dense = nn.Sequential(nn.Linear(config.hidden_size, config.dense_size), nn.ReLU())
            features = config.dense_size
        else:
            self.dense = nn.Identity()
            features = config.hidden_size
        timing_outputs = config.timing_classes if config.timing_head == "categorical" else 1
        self.pitch_head = nn.Linear(features, config.num_pitches)
        self.step_head = nn.Linear(features, timing_outputs)
        self.duration_head = nn.Linear(features, timing_outputs)
        # Built last, so that a model without velocity draws its initial weights exactly as before it existed.
        self.velocity_head = nn.Linear(features, config.velocity_bins) if config.velocity else None
        with_embedding = config.velocity and config.velocity_embedding_dim
        self.velocity_embedding = (
            nn.Embedding(config.velocity_bins, config.velocity_embedding_dim) if with_embedding else None
        )
        centres = torch.arange(config.timing_classes, dtype=torch.float32) * config.timing_resolution
        self.register_buffer("timing_centres", centres, persistent=False)

    def encode(self, events: torch.Tensor) -> torch.Tensor:
        """(batch, time, features) events -> the LSTM's input features."""
        return encode_events(events, self.config, self.pitch_embedding, self.velocity_embedding)

    def timing_class(self, values: torch.Tensor) -> torch.Tensor:
        return quantise_time(values, self.config.timing_resolution, self.config.timing_classes)

    def stepper(self) -> NoteStepper:
        """A one-note-at-a-time callable with this network's current weights, for generation."""
        return NoteStepper(self)

    def forward(self, events: torch.Tensor, state: LSTMState | None = None) -> tuple[NoteLSTMOutput, LSTMState]:
        """events: (batch, time, features) rows of (pitch, step, duration[, velocity]). Returns the predictions
        for the next note at every position, and the LSTM state after the last one (to continue from, one note
        at a time)."""
        hidden, state = self.lstm(self.encode(events), state)
        features = self.dense(self.output_dropout(hidden))
        velocity = self.velocity_head(features) if self.velocity_head is not None else None
        return note_output(
            self.config, self.timing_centres, self.pitch_head(features), self.step_head(features),
            self.duration_head(features), velocity,
        ), state  # fmt: skip


def note_output(config: NoteLSTMConfig, centres, pitch, step, duration, velocity=None) -> NoteLSTMOutput:
    """The heads' raw outputs as a `NoteLSTMOutput`: categorical timing also as its expected value."""
    if config.timing_head == "categorical":
        expected = lambda logits: torch.softmax(logits, dim=-1) @ centres  # noqa: E731
        return NoteLSTMOutput(pitch, expected(step), expected(duration), step, duration, velocity)
    return NoteLSTMOutput(pitch, step.squeeze(-1), duration.squeeze(-1), velocity_logits=velocity)


class NoteStepper:
    """One note at a time through a `NoteLSTM` in eval mode, for generation: the same arithmetic as
    `NoteLSTM.forward` on a one-note input, with fewer, larger operations. Each LSTM layer is one `addmm`
    over [input, hidden] with the input and recurrent weights fused (gate rows reordered i, f, o, g so one
    sigmoid and one tanh cover the gates), and the three heads are one `addmm`. `torch.lstm` pays a fixed
    cost per call that dwarfs a single step at batch 1; at batch 1 every operation counts, since each costs
    microseconds of dispatch whatever its size.

    Built from the network's current weights: build a new one after the weights change."""

    def __init__(self, net: NoteLSTM):
        from musicrnn.nets.grouped import lstm_gate_order

        lstm, hidden = net.lstm, net.config.hidden_size
        order = lstm_gate_order(hidden)
        self.net = net
        self.hidden = hidden
        self.weights = [
            torch.cat([getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")], dim=1)[order]
            .t()
            .contiguous()
            for k in range(lstm.num_layers)
        ]
        self.biases = [
            (getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"))[order].unsqueeze(0)
            for k in range(lstm.num_layers)
        ]
        heads = (net.pitch_head, net.step_head, net.duration_head)
        heads += (net.velocity_head,) if net.velocity_head is not None else ()
        self.head_weight = torch.cat([head.weight for head in heads]).t().contiguous()
        self.head_bias = torch.cat([head.bias for head in heads]).unsqueeze(0)
        self.head_sizes = [head.out_features for head in heads]

    @torch.no_grad()
    def __call__(self, events: torch.Tensor, state: LSTMState) -> tuple[NoteLSTMOutput, LSTMState]:
        """events: (batch, 1, features); state: (h, c), each (layers, batch, hidden)."""
        from musicrnn.nets.grouped import lstm_cell

        net = self.net
        x = net.encode(events)[:, 0]
        h, c = state
        new_h, new_c = [], []
        for k, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x, cell = lstm_cell(torch.addmm(bias, torch.cat([x, h[k]], dim=1), weight), c[k], self.hidden)
            new_h.append(x)
            new_c.append(cell)
        features = net.dense(x)  # eval mode: the dropouts are the identity
        heads = torch.addmm(self.head_bias, features, self.head_weight).unsqueeze(1).split(self.head_sizes, dim=-1)
        return note_output(net.config, net.timing_centres, *heads), (torch.stack(new_h), torch.stack(new_c))
