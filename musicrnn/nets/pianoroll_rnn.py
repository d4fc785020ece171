"""The stacked recurrent piano-roll model, in plain torch: frames in, one logit per key of the next frame out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from musicrnn.nets.dropout import Dropout, dropout
from musicrnn.nets.nade import KeyNADE, NADEOutput
from musicrnn.representations.pianoroll import PIANO_KEYS

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
OUTPUTS = ("bernoulli", "nade")


@dataclass(frozen=True)
class PianoRollRNNConfig:
    num_keys: int = PIANO_KEYS  # inputs and outputs: one per key
    hidden_size: int = 128  # units per recurrent layer (paper: 128)
    num_layers: int = 3  # stacked layers (paper: 3)
    dropout: float = 0.3  # between layers and on the last layer's output (paper: 0.3)
    input_dropout: float = 0.0  # drops input keys while training: a regulariser for small corpora
    weight_dropout: float = 0.0  # DropConnect on the recurrent (hidden-to-hidden) weights while training (AWD-LSTM)
    cell: str = "lstm"  # lstm (paper) or gru (the benchmark literature compares both)
    dense_size: int = 0  # a ReLU layer before the output (paper: 256); 0 = the output reads the RNN
    input_skip: bool = False  # the output also reads the current frame through a linear map (key-to-key persistence)
    output: str = "bernoulli"  # bernoulli: independent keys given the past; nade: a NADE over the frame's keys
    nade_hidden: int = 150  # output=nade: hidden units of the NADE (its biases are set by the recurrent state)

    def __post_init__(self) -> None:
        if self.num_keys < 1 or self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError(
                f"num_keys, hidden_size and num_layers must be >= 1, got {self.num_keys}, {self.hidden_size}, {self.num_layers}"
            )
        for name in ("dropout", "input_dropout", "weight_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {tuple(CELLS)}, got {self.cell!r}")
        if self.dense_size < 0:
            raise ValueError(f"dense_size must be >= 0, got {self.dense_size}")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")
        if self.nade_hidden < 1:
            raise ValueError(f"nade_hidden must be >= 1, got {self.nade_hidden}")


class PianoRollRNN(nn.Module):
    """Reads (batch, time, keys) frames; returns the distribution of the next frame and the state: with
    `output="bernoulli"` (batch, time, keys) logits, each key an independent Bernoulli given the past (the
    sigmoid head of the piano-roll benchmarks); with `output="nade"` a `NADEOutput`, the biases of a NADE over
    the next frame's keys (RNN-NADE, Boulanger-Lewandowski et al. 2012), so the keys of a frame are drawn
    jointly."""

    # What ensemble members must share (the meaning of inputs and outputs), and what they share to run stacked
    # (members of different layouts are mixed one by one: `musicrnn.nets.ensemble.MixedEnsembleNet`).
    ensemble_meaning = ("num_keys", "output")
    ensemble_layout = ("cell", "hidden_size", "num_layers", "dense_size", "input_skip", "nade_hidden")

    @staticmethod
    def fuse(nets: Sequence[PianoRollRNN], weights: Sequence[float] | None = None) -> nn.Module:
        """The members as one network returning the mixture's logits (`musicrnn.nets.ensemble`)."""
        from musicrnn.nets.ensemble import PianoRollEnsembleNet, fuse  # it builds on this module

        return fuse(nets, weights, PianoRollEnsembleNet)

    def __init__(self, config: PianoRollRNNConfig):
        super().__init__()
        self.config = config
        self.input_dropout = Dropout(config.input_dropout)
        self.rnn = CELLS[config.cell](
            config.num_keys,
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
        self.head = nn.Linear(features, config.num_keys)
        # Which keys sound now is the strongest single cue for the next frame; a direct path lets the
        # recurrent layers spend their capacity on everything else.
        self.skip = nn.Linear(config.num_keys, config.num_keys, bias=False) if config.input_skip else None
        if config.output == "nade":  # `head` gives the NADE's visible biases, `hidden_head` its hidden biases
            self.hidden_head = nn.Linear(features, config.nade_hidden)
            self.nade = KeyNADE(config.num_keys, config.nade_hidden)

    def forward(self, frames: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        frames = self.input_dropout(frames)
        if self.training and self.config.weight_dropout > 0:
            # One dropout mask on the recurrent weight matrices per forward pass, shared by all time steps
            # (Merity et al. 2018): it regularises the recurrence itself, which output dropout cannot reach.
            weights = {
                name: dropout(weight, self.config.weight_dropout) if name.startswith("weight_hh") else weight
                for name, weight in self.rnn.named_parameters()
            }
            hidden, state = torch.func.functional_call(self.rnn, weights, (frames, state))
        else:
            hidden, state = self.rnn(frames, state)
        features = self.dense(self.output_dropout(hidden))
        logits = self.head(features)
        if self.skip is not None:
            logits = logits + self.skip(frames)
        if self.config.output == "nade":
            return NADEOutput(logits, self.hidden_head(features), self.nade), state
        return logits, state
