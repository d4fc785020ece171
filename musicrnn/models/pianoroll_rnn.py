"""The stacked recurrent piano-roll model, in plain torch: frames in, one logit per key of the next frame out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from musicrnn.pianoroll import PIANO_KEYS

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class PianoRollRNNConfig:
    num_keys: int = PIANO_KEYS  # inputs and outputs: one per key
    hidden_size: int = 128  # units per recurrent layer (paper: 128)
    num_layers: int = 3  # stacked layers (paper: 3)
    dropout: float = 0.3  # between layers and on the last layer's output (paper: 0.3)
    input_dropout: float = 0.0  # drops input keys while training: a regulariser for small corpora
    cell: str = "lstm"  # lstm (paper) or gru (the benchmark literature compares both)
    dense_size: int = 0  # a ReLU layer before the output (paper: 256); 0 = the output reads the RNN

    def __post_init__(self) -> None:
        if self.num_keys < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(f"num_keys, hidden_size and num_layers must be >= 1, got {self.num_keys}, {self.hidden_size}, {self.num_layers}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.input_dropout < 1.0:
            raise ValueError(f"dropout and input_dropout must be in [0, 1), got {self.dropout}, {self.input_dropout}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {tuple(CELLS)}, got {self.cell!r}")
        if self.dense_size < 0:
            raise ValueError(f"dense_size must be >= 0, got {self.dense_size}")


class PianoRollRNN(nn.Module):
    """Reads (batch, time, keys) frames; returns (batch, time, keys) logits of the next frame, each key an
    independent Bernoulli given the past (the sigmoid head of the piano-roll benchmarks), and the state."""

    def __init__(self, config: PianoRollRNNConfig):
        super().__init__()
        self.config = config
        self.input_dropout = nn.Dropout(config.input_dropout)
        self.rnn = CELLS[config.cell](
            config.num_keys,
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
        self.head = nn.Linear(features, config.num_keys)

    def forward(self, frames: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        hidden, state = self.rnn(self.input_dropout(frames), state)
        return self.head(self.dense(self.output_dropout(hidden))), state
