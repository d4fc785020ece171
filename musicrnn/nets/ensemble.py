"""K networks of one kind run as one ensemble network ("average feature fusion"): all members at once
(stacked weights, one batched matmul per layer and step: see `grouped.py`), returning what a single network
returns, computed from the weighted mean of the members' probabilities:

- note networks: pitch logits = log of the mean softmax (so cross-entropy, accuracy and sampling read the
  mixture), categorical timing the same way, regression timing the weighted mean of the predictions;
- piano-roll networks: each key's logit = logit of the mean of the members' sigmoid probabilities.

So losses and metrics are computed from the averaged probabilities (log of the mean, not the mean of the
logs), and the output distributions, metric callbacks and the generation loop work on an ensemble unchanged.
Each network class names the ensemble network that fuses it (`fuse`), and the settings its members must
share to mean the same (`ensemble_meaning`) and to run stacked (`ensemble_layout`); members whose layouts
differ are averaged by `MixedEnsembleNet`, each running on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from musicrnn.errors import MusicrnnError
from musicrnn.nets.grouped import (
    MemberLinear,
    MemberLSTMStepper,
    MemberRNN,
    fuse_member_linears,
    mixture_bernoulli_logits,
    mixture_log_probs,
)
from musicrnn.nets.nade import MixtureNADEOutput, NADEOutput
from musicrnn.nets.note_lstm import NoteLSTM, NoteLSTMOutput, encode_events
from musicrnn.nets.pianoroll_rnn import PianoRollRNN
from musicrnn.representations.notes import quantise_time, velocity_bin


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
        if self.config.output == "nade":  # the members' NADEs: their hidden-bias layers and weights, stacked
            self.hidden_head = MemberLinear([n.hidden_head for n in nets])
            self.register_buffer("nade_w", torch.stack([n.nade.w.detach() for n in nets]))  # (K, keys, H)
            self.register_buffer("nade_v", torch.stack([n.nade.v.detach() for n in nets]))

    def member_logits(self, frames: torch.Tensor, state=None):
        """(batch, time, K, keys) logits of every member (a NADE's visible biases), the members' features
        and state."""
        hidden, state = self.rnn(frames, state)
        features = self.dense(hidden)
        logits = self.head(features)
        if self.skip is not None:
            logits = logits + self.skip(frames)
        return logits, features, state

    def forward(self, frames: torch.Tensor, state=None):
        logits, features, state = self.member_logits(frames, state)
        if self.config.output == "nade":
            mixture = MixtureNADEOutput(logits, self.hidden_head(features), self.nade_w, self.nade_v, self.log_weights)
            return mixture, state
        return mixture_bernoulli_logits(logits, self.log_weights), state


class NoteEnsembleNet(nn.Module):
    """K `NoteLSTM`s as one: the same forward signature and `NoteLSTMOutput`, computed from the mixture."""

    def __init__(self, nets: Sequence[NoteLSTM], weights: Sequence[float] | None = None):
        super().__init__()
        self.config = nets[0].config
        # (classes, K, dim): one lookup embeds a pitch (a velocity bin) for every member
        for name in ("pitch", "velocity"):
            if getattr(nets[0], f"{name}_embedding", None) is not None:
                tables = torch.stack([getattr(n, f"{name}_embedding").weight.detach() for n in nets], dim=1)
                self.register_buffer(f"{name}_tables", tables)
            else:
                setattr(self, f"{name}_tables", None)
        self.lstm = MemberRNN([n.lstm for n in nets])
        self.dense = _dense(nets)
        self.pitch_head = MemberLinear([n.pitch_head for n in nets])
        self.step_head = MemberLinear([n.step_head for n in nets])
        self.duration_head = MemberLinear([n.duration_head for n in nets])
        self.velocity_head = MemberLinear([n.velocity_head for n in nets]) if self.config.velocity else None
        self.register_buffer("log_weights", _normalised_log_weights(weights, len(nets)))
        centres = torch.arange(self.config.timing_classes, dtype=torch.float32) * self.config.timing_resolution
        self.register_buffer("timing_centres", centres, persistent=False)

    def encode(self, events: torch.Tensor) -> torch.Tensor:
        """(batch, time, input) shared inputs without embeddings; (batch, time, K, input) with them: each
        member's embeddings with the scalar inputs (pitch / 128, timing, velocity / 127) shared."""
        if self.pitch_tables is None and self.velocity_tables is None:
            return encode_events(events, self.config, None)
        config, k = self.config, self.log_weights.shape[0]
        per_member = lambda x: x.unsqueeze(-2).expand(*x.shape[:-1], k, x.shape[-1])  # noqa: E731
        scalars = encode_events(events[..., :3], replace(config, velocity=False), None)  # pitch/128, timing
        if self.pitch_tables is None:
            parts = [per_member(scalars)]
        else:
            parts = [
                self.pitch_tables[events[..., 0].long().clamp(0, config.num_pitches - 1)],
                per_member(scalars[..., 1:]),
            ]
        if config.velocity:
            if self.velocity_tables is None:
                parts.append(per_member(events[..., 3:4] / 127.0))
            else:
                parts.append(self.velocity_tables[velocity_bin(events[..., 3], config.velocity_bins)])
        return torch.cat(parts, dim=-1)

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
        velocity = mixture_log_probs(self.velocity_head(features), self.log_weights) if self.config.velocity else None
        return NoteLSTMOutput(pitch, step, duration, step_logits, duration_logits, velocity), state


class NoteEnsembleStepper:
    """`NoteEnsembleNet.forward` on a one-note input, with fewer operations per note: the members' LSTMs
    through MemberLSTMStepper, the dense layer and the three heads (fused) as `baddbmm`s over the member
    axis rather than einsums."""

    def __init__(self, net: NoteEnsembleNet):
        self.net = net
        self.rnn = MemberLSTMStepper(net.lstm)
        dense = net.dense[0] if isinstance(net.dense, nn.Sequential) else None
        self.dense = (dense.weight.transpose(1, 2).contiguous(), dense.bias.unsqueeze(1)) if dense is not None else None
        members = (net.pitch_head, net.step_head, net.duration_head)
        members += (net.velocity_head,) if net.velocity_head is not None else ()
        heads = fuse_member_linears(members)
        self.head_weight, self.head_bias = heads.weight.transpose(1, 2).contiguous(), heads.bias.unsqueeze(1)
        self.head_sizes = [head.weight.shape[1] for head in members]

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
        pitch, step, duration, *velocity = out.split(self.head_sizes, dim=-1)
        pitch = mixture_log_probs(pitch, net.log_weights)
        velocity = mixture_log_probs(velocity[0], net.log_weights) if velocity else None
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
                velocity,
            ), state
        weights = net.log_weights.exp()
        return NoteLSTMOutput(
            pitch, step.squeeze(-1) @ weights, duration.squeeze(-1) @ weights, velocity_logits=velocity
        ), state


# -- members of different layouts ---------------------------------------------------------------------------
def same_layout(nets: Sequence[nn.Module]) -> bool:
    """Whether the members can run stacked: every setting their class lists in `ensemble_layout` equal."""
    first = nets[0].config
    return all(getattr(n.config, name) == getattr(first, name) for n in nets for name in type(nets[0]).ensemble_layout)


def fuse(nets: Sequence[nn.Module], weights: Sequence[float] | None, stacked: type[nn.Module]) -> nn.Module:
    """`stacked(nets, weights)` when the members share a layout, else a `MixedEnsembleNet`."""
    if same_layout(nets):
        return stacked(nets, weights)
    if getattr(nets[0].config, "output", None) == "nade" and len({n.config.nade_hidden for n in nets}) > 1:
        sizes = sorted({n.config.nade_hidden for n in nets})
        raise MusicrnnError(f"RNN-NADE members must share nade_hidden to be mixed exactly, got {sizes}")
    return MixedEnsembleNet(nets, weights)


class MixedEnsembleNet(nn.Module):
    """K networks of one kind whose layouts differ (sizes, layer counts, LSTM with GRU, dense layers, the
    velocity or pitch input): each runs on its own, with its own state, and their outputs are averaged in
    probability space exactly as the stacked ensembles average them (`mix_outputs`). Members that share a
    layout take the stacked networks above, which run all members in one batched matmul per layer and step.

    The state is the tuple of the members' states; the output is what a single member returns."""

    def __init__(self, nets: Sequence[nn.Module], weights: Sequence[float] | None = None):
        super().__init__()
        self.members = nn.ModuleList(nets)
        self.config = nets[0].config  # what the members mean by their outputs (shared)
        self.register_buffer("log_weights", _normalised_log_weights(weights, len(nets)))
        if isinstance(nets[0], NoteLSTM):
            centres = torch.arange(self.config.timing_classes, dtype=torch.float32) * self.config.timing_resolution
            self.register_buffer("timing_centres", centres, persistent=False)

    def forward(self, steps: torch.Tensor, state=None):
        states = state if state is not None else (None,) * len(self.members)
        results = [net(steps, member_state) for net, member_state in zip(self.members, states)]
        return self.mix([output for output, _ in results]), tuple(member_state for _, member_state in results)

    def mix(self, outputs: list):
        return mix_outputs(outputs, self.log_weights, getattr(self, "timing_centres", None))

    def stepper(self):
        return MixedEnsembleStepper(self)


class MixedEnsembleStepper:
    """One step through every member's own stepper (where it has one), then the same mixture."""

    def __init__(self, net: MixedEnsembleNet):
        self.net = net
        self.steps = [member.stepper() if hasattr(member, "stepper") else member for member in net.members]

    @torch.no_grad()
    def __call__(self, steps: torch.Tensor, state):
        results = [step(steps, member_state) for step, member_state in zip(self.steps, state)]
        return self.net.mix([output for output, _ in results]), tuple(member_state for _, member_state in results)


def mix_outputs(outputs: list, log_weights: torch.Tensor, timing_centres: torch.Tensor | None = None):
    """The members' outputs (one kind: note outputs, key logits, or NADE outputs of one NADE size) as the
    output of their mixture with weights exp(log_weights)."""
    first = outputs[0]
    if isinstance(first, NoteLSTMOutput):

        def mixed(name):
            return mixture_log_probs(torch.stack([getattr(o, name) for o in outputs], dim=-2), log_weights)

        pitch = mixed("pitch_logits")
        velocity = mixed("velocity_logits") if first.velocity_logits is not None else None
        if first.step_logits is not None:  # categorical timing: the mixture's probabilities, its expectation
            step, duration = mixed("step_logits"), mixed("duration_logits")
            return NoteLSTMOutput(
                pitch, step.exp() @ timing_centres, duration.exp() @ timing_centres, step, duration, velocity
            )
        weights = log_weights.exp()
        mean = lambda name: torch.stack([getattr(o, name) for o in outputs], dim=-1) @ weights  # noqa: E731
        return NoteLSTMOutput(pitch, mean("step"), mean("duration"), velocity_logits=velocity)
    if isinstance(first, NADEOutput):
        return MixtureNADEOutput(
            torch.stack([o.visible_bias for o in outputs], dim=-2),
            torch.stack([o.hidden_bias for o in outputs], dim=-2),
            torch.stack([o.nade.w for o in outputs]),
            torch.stack([o.nade.v for o in outputs]),
            log_weights,
        )
    return mixture_bernoulli_logits(torch.stack(outputs, dim=-2), log_weights)
