"""The stacked-LSTM note model, in plain torch: (pitch, step, duration) rows in, next-note predictions out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from musicrnn.representation import NUM_FEATURES, NUM_PITCHES

LSTMState = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class NoteLSTMConfig:
    hidden_size: int = 128  # units per LSTM layer (paper: 128)
    num_layers: int = 3  # stacked LSTM layers (paper: 3; TF tutorial: 1)
    dropout: float = 0.3  # between LSTM layers and on the last layer's output (paper: 0.3)
    dense_size: int = 256  # ReLU layer before the heads (paper: 256); 0 = heads read the LSTM (TF tutorial)
    num_pitches: int = NUM_PITCHES  # MIDI pitches 0..127, the softmax's classes

    def __post_init__(self) -> None:
        if self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(f"hidden_size and num_layers must be >= 1, got {self.hidden_size}, {self.num_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dense_size < 0:
            raise ValueError(f"dense_size must be >= 0, got {self.dense_size}")


class NoteLSTMOutput(NamedTuple):
    pitch_logits: torch.Tensor  # (batch, time, num_pitches)
    step: torch.Tensor  # (batch, time)
    duration: torch.Tensor  # (batch, time)


class NoteLSTM(nn.Module):
    """Stacked LSTM over note events with three heads: pitch logits, step and duration (regression).

    The input pitch is scaled by 1/num_pitches, as in the TensorFlow tutorial the paper builds on; step
    and duration enter as they are.
    """

    def __init__(self, config: NoteLSTMConfig):
        super().__init__()
        self.config = config
        self.register_buffer(
            "input_scale", torch.tensor([1.0 / config.num_pitches, 1.0, 1.0]), persistent=False
        )
        self.lstm = nn.LSTM(
            NUM_FEATURES,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output_dropout = nn.Dropout(config.dropout)
        if config.dense_size:
            self.dense = nn.Sequential(nn.Linear(config.hidden_size, config.dense_size), nn.ReLU())
            features = config.dense_size
        else:
            self.dense = nn.Identity()
            features = config.hidden_size
        self.pitch_head = nn.Linear(features, config.num_pitches)
        self.step_head = nn.Linear(features, 1)
        self.duration_head = nn.Linear(features, 1)

    def forward(self, events: torch.Tensor, state: LSTMState | None = None) -> tuple[NoteLSTMOutput, LSTMState]:
        """events: (batch, time, 3) rows of (pitch, step, duration). Returns the predictions for the next
        note at every position, and the LSTM state after the last one (to continue from, one note at a time)."""
        hidden, state = self.lstm(events * self.input_scale, state)
        features = self.dense(self.output_dropout(hidden))
        output = NoteLSTMOutput(
            pitch_logits=self.pitch_head(features),
            step=self.step_head(features).squeeze(-1),
            duration=self.duration_head(features).squeeze(-1),
        )
        return output, state
