"""Ensembles ("average feature fusion"): several trained models of one kind averaged in probability space.

An ensemble is the members' own LightningModule class holding a fused network in place of one member's:
`NoteEnsembleNet` or `PianoRollEnsembleNet`, which run all K members at once (stacked weights, one batched
matmul per layer and step: see `grouped.py`) and return
what a single network returns, computed from the weighted mean of the members' probabilities:

- note models: pitch logits = log of the mean softmax (so cross-entropy, accuracy and sampling read the
  mixture), categorical timing the same way, regression timing the weighted mean of the predictions;
- piano-roll models: each key's logit = logit of the mean of the members' sigmoid probabilities.

So losses and metrics are computed from the averaged probabilities (log of the mean, not the mean of the
logs), and the same metric callbacks, `Trainer.test` and the generators work on an ensemble unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from musicrnn.errors import CheckpointError, MusicrnnError
from musicrnn.nets.grouped import (
    MemberLinear,
    MemberLSTMStepper,
    MemberRNN,
    fuse_member_linears,
    mixture_bernoulli_logits,
    mixture_log_probs,
)
from musicrnn.nets.note_lstm import NoteLSTM, NoteLSTMOutput, encode_events
from musicrnn.nets.pianoroll_rnn import PianoRollRNN
from musicrnn.representations.notes import quantise_time
from musicrnn.training.note_module import NoteLSTMModule
from musicrnn.training.pianoroll_module import PianoRollModule

# Settings every member must share: they fix what the inputs and outputs mean.
REPRESENTATION = {
    NoteLSTMModule: ("time_unit", "timing_head", "timing_classes", "timing_resolution", "timing_input"),
    PianoRollModule: ("num_keys", "lowest_pitch", "steps_per_quarter"),
}
# Settings the fused network needs equal to run the members side by side.
FUSABLE = {
    NoteLSTMModule: ("hidden_size", "num_layers", "pitch_embedding_dim", "dense_size"),
    PianoRollModule: ("cell", "hidden_size", "num_layers", "dense_size", "_has_skip"),
}


def _setting(module, name: str):
    hp = module.hparams
    if name == "_has_skip":
        return bool(hp.get("input_skip", False))
    return hp.get(name)


def _normalised_log_weights(weights: Sequence[float] | None, k: int) -> torch.Tensor:
    w = torch.ones(k) if weights is None else torch.as_tensor(list(weights), dtype=torch.float64)
    if len(w) != k:
        raise MusicrnnError(f"ensemble weights: {len(w)} given for {k} members")
    if not bool(torch.all(w > 0)):
        raise MusicrnnError(f"ensemble weights must all be > 0, got {list(map(float, w))}")
    return torch.log(w / w.sum()).float()


def _dense(nets) -> nn.Module:
    if isinstance(nets[0].dense, nn.Identity):
        return nn.Identity()
    return nn.Sequential(MemberLinear([n.dense[0] for n in nets]), nn.ReLU())


class PianoRollEnsembleNet(nn.Module):
    """K `PianoRollRNN`s as one: the same forward signature, logits of the mixture."""

    def __init__(self, nets: Sequence[PianoRollRNN], weights: Sequence[float] | None = None):
        super().__init__()
        self.config = nets[0].config
        self.rnn = MemberRNN([n.rnn for n in nets])
        self.dense = _dense(nets)
        self.head = MemberLinear([n.head for n in nets])
        self.skip = MemberLinear([n.skip for n in nets], shared_input=True) if nets[0].skip is not None else None
        self.register_buffer("log_weights", _normalised_log_weights(weights, len(nets)))

    def member_logits(self, frames: torch.Tensor, state=None):
        """(batch, time, K, keys) logits of every member, and the members' state."""
        hidden, state = self.rnn(frames, state)
        logits = self.head(self.dense(hidden))
        if self.skip is not None:
            logits = logits + self.skip(frames)
        return logits, state

    def forward(self, frames: torch.Tensor, state=None):
        logits, state = self.member_logits(frames, state)
        return mixture_bernoulli_logits(logits, self.log_weights), state


class NoteEnsembleNet(nn.Module):
    """K `NoteLSTM`s as one: the same forward signature and `NoteLSTMOutput`, computed from the mixture."""

    def __init__(self, nets: Sequence[NoteLSTM], weights: Sequence[float] | None = None):
        super().__init__()
        self.config = nets[0].config
        if nets[0].pitch_embedding is not None:  # (pitches, K, dim): one lookup embeds a pitch for every member
            self.register_buffer("pitch_tables", torch.stack([n.pitch_embedding.weight.detach() for n in nets], dim=1))
        else:
            self.pitch_tables = None
        self.lstm = MemberRNN([n.lstm for n in nets])
        self.dense = _dense(nets)
        self.pitch_head = MemberLinear([n.pitch_head for n in nets])
        self.step_head = MemberLinear([n.step_head for n in nets])
        self.duration_head = MemberLinear([n.duration_head for n in nets])
        self.register_buffer("log_weights", _normalised_log_weights(weights, len(nets)))
        centres = torch.arange(self.config.timing_classes, dtype=torch.float32) * self.config.timing_resolution
        self.register_buffer("timing_centres", centres, persistent=False)

    def encode(self, events: torch.Tensor) -> torch.Tensor:
        """(batch, time, 3) shared features without embeddings; (batch, time, K, dim + 2) with them."""
        features = encode_events(events, self.config, None)
        if self.pitch_tables is None:
            return features
        pitch = events[..., 0].long().clamp(0, self.config.num_pitches - 1)
        embedded = self.pitch_tables[pitch]  # (batch, time, K, dim)
        timing = features[..., 1:].unsqueeze(-2).expand(*embedded.shape[:-1], 2)
        return torch.cat([embedded, timing], dim=-1)

    def timing_class(self, values: torch.Tensor) -> torch.Tensor:
        return quantise_time(values, self.config.timing_resolution, self.config.timing_classes)

    def _timing(self, head: MemberLinear, features: torch.Tensor):
        out = head(features)  # (batch, time, K, classes or 1)
        if self.config.timing_head == "categorical":
            log_probs = mixture_log_probs(out, self.log_weights)
            return log_probs.exp() @ self.timing_centres, log_probs
        return out.squeeze(-1) @ self.log_weights.exp(), None  # the weighted mean of the predictions

    def stepper(self):
        """One note at a time for all members (fused LSTM weights, one einsum for the three heads)."""
        return NoteEnsembleStepper(self)

    def forward(self, events: torch.Tensor, state=None) -> tuple[NoteLSTMOutput, object]:
        hidden, state = self.lstm(self.encode(events), state)
        features = self.dense(hidden)
        pitch = mixture_log_probs(self.pitch_head(features), self.log_weights)
        step, step_logits = self._timing(self.step_head, features)
        duration, duration_logits = self._timing(self.duration_head, features)
        return NoteLSTMOutput(pitch, step, duration, step_logits, duration_logits), state


class NoteEnsembleStepper:
    """`NoteEnsembleNet.forward` on a one-note input, with fewer operations per note: the members' LSTMs
    through MemberLSTMStepper, the dense layer and the three heads (fused) as `baddbmm`s over the member
    axis rather than einsums."""

    def __init__(self, net: NoteEnsembleNet):
        self.net = net
        self.rnn = MemberLSTMStepper(net.lstm)
        dense = net.dense[0] if isinstance(net.dense, nn.Sequential) else None
        self.dense = (dense.weight.transpose(1, 2).contiguous(), dense.bias.unsqueeze(1)) if dense is not None else None
        heads = fuse_member_linears((net.pitch_head, net.step_head, net.duration_head))
        self.head_weight, self.head_bias = heads.weight.transpose(1, 2).contiguous(), heads.bias.unsqueeze(1)
        self.head_sizes = [head.weight.shape[1] for head in (net.pitch_head, net.step_head, net.duration_head)]

    @torch.no_grad()
    def __call__(self, events: torch.Tensor, state):
        net = self.net
        x = net.encode(events)[:, 0]  # (batch, input) shared, or (batch, K, input) per member
        k = self.head_weight.shape[0]
        x = x.unsqueeze(0).expand(k, -1, -1) if x.dim() == 2 else x.transpose(0, 1)
        features, state = self.rnn(x.contiguous(), state)  # (K, batch, hidden)
        if self.dense is not None:
            features = torch.relu(torch.baddbmm(self.dense[1], features, self.dense[0]))
        out = (
            torch.baddbmm(self.head_bias, features, self.head_weight).transpose(0, 1).unsqueeze(1)
        )  # (batch, 1, K, out)
        pitch, step, duration = out.split(self.head_sizes, dim=-1)
        pitch = mixture_log_probs(pitch, net.log_weights)
        if net.config.timing_head == "categorical":
            step_logits, duration_logits = (
                mixture_log_probs(step, net.log_weights),
                mixture_log_probs(duration, net.log_weights),
            )
            return NoteLSTMOutput(
                pitch,
                step_logits.exp() @ net.timing_centres,
                duration_logits.exp() @ net.timing_centres,
                step_logits,
                duration_logits,
            ), state
        weights = net.log_weights.exp()
        return NoteLSTMOutput(pitch, step.squeeze(-1) @ weights, duration.squeeze(-1) @ weights), state


def ensemble_from_modules(
    modules: Sequence[NoteLSTMModule | PianoRollModule],
    weights: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
) -> NoteLSTMModule | PianoRollModule:
    """An ensemble of trained modules of one kind: a module of their class whose network is the fused one.
    Members that do not share the representation and output shape (or cannot be fused) are refused with an
    error naming the member and the setting."""
    if not modules:
        raise MusicrnnError("an ensemble needs at least one checkpoint")
    names = list(names) if names is not None else [f"member {i}" for i in range(len(modules))]
    first = modules[0]
    kind = type(first)
    if kind not in REPRESENTATION:
        raise MusicrnnError(f"{names[0]}: cannot ensemble a {kind.__name__}")
    for module, name in zip(modules[1:], names[1:]):
        if type(module) is not kind:
            raise CheckpointError(name, f"holds a {type(module).__name__}, but {names[0]} holds a {kind.__name__}")
        for setting in REPRESENTATION[kind] + FUSABLE[kind]:
            mine, theirs = _setting(module, setting), _setting(first, setting)
            if mine != theirs:
                what = (
                    "representation and output shape"
                    if setting in REPRESENTATION[kind]
                    else "network layout to run batched"
                )
                raise CheckpointError(
                    name,
                    f"{setting.strip('_')} is {mine!r}, but {names[0]} has {theirs!r} (ensemble members must share the {what})",
                )
    ensemble = kind(**dict(first.hparams))
    net_class = NoteEnsembleNet if kind is NoteLSTMModule else PianoRollEnsembleNet
    ensemble.net = net_class([m.net for m in modules], weights)
    ensemble.primers = list(first.primers)
    ensemble.members = list(names)
    return ensemble.eval()


def load_ensemble(
    paths: Sequence[str | os.PathLike], weights: Sequence[float] | None = None
) -> NoteLSTMModule | PianoRollModule:
    """The ensemble of the checkpoints at `paths` (uniform weights unless `weights` is given)."""
    from musicrnn.training.checkpoint import load_module  # here: checkpoint imports the models package

    return ensemble_from_modules([load_module(p) for p in paths], weights, [str(p) for p in paths])
