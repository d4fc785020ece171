"""A NADE over the keys of one piano-roll frame, conditioned on a recurrent state (RNN-NADE).

NADE (Larochelle & Murray 2011) writes a joint distribution over binary keys v_1..v_D as a product of
conditionals, p(v) = prod_i p(v_i | v_<i), each a logistic unit reading a hidden layer of the keys below:

    h_i = sigmoid(c + W_<i v_<i)          (H hidden units; W is (D, H), row j the input weights of key j)
    p(v_i = 1 | v_<i) = sigmoid(b_i + V_i . h_i)

In the RNN-NADE of Boulanger-Lewandowski, Bengio & Vincent (ICML 2012) the two bias vectors b (D) and c (H)
are set at every time step by the recurrent network's state, so the keys of the next frame are no longer
independent given the past: a chord is drawn as a chord.

Exact log-likelihood in one parallel pass (teacher forcing): key i's hidden pre-activation is c plus the sum
of W_j over the keys j < i that are on, the same for every key between two keys that are on, so a frame
needs one hidden layer per such segment (`nade_conditional_logits`), and training never runs D sequential
steps. Sampling draws
the keys one at a time, lowest first, for all samples of a batch at once.

A mixture of K NADEs (an ensemble) is exact too: log p(v) = logsumexp_k (log w_k + log p_k(v)); sampling
from it draws key i from sum_k w_k p_k(v_<i) p_k(v_i | v_<i) / sum_k w_k p_k(v_<i), the members' weights
updated by how likely each finds the keys drawn so far.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from musicrnn.nets.repetition import penalise


def nade_conditional_logits(
    visible_bias: torch.Tensor, hidden_bias: torch.Tensor, frames: torch.Tensor, w: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """The logits of p(v_i = 1 | v_<i) for every key of every frame, given the frames' own keys.

    visible_bias (..., D), hidden_bias (..., H), frames (..., D) in {0, 1}; w and v (D, H). With a member
    axis (a mixture): visible_bias (..., K, D), hidden_bias (..., K, H), w and v (K, D, H), frames (..., D)
    shared. Returns (..., D), or (..., K, D).

    Key i's hidden layer reads the keys below it that are on; between two keys that are on it does not
    change. So a frame with n keys on has n + 1 distinct hidden layers ("segments"), not D: they are computed
    once each ((n + 1) x H instead of D x H per frame: ~10x less work than the cumulative sum over all keys
    on JSB, where n is about 4), and every key reads its segment's.
    """
    rank = torch.cumsum(frames, dim=-1) - frames  # (..., D): keys on below each key = the key's segment
    segments = int(frames.sum(dim=-1).max()) + 1 if frames.numel() else 1
    index = torch.arange(segments, dtype=frames.dtype, device=frames.device)
    # below[..., s, j] = 1 where key j is on and among the first s keys that are on: segment s's inputs.
    below = frames.unsqueeze(-2) * (rank.unsqueeze(-2) < index.unsqueeze(-1)).to(frames.dtype)  # (..., S, D)
    members = w.dim() == 3
    if members:
        below = below.unsqueeze(-3)  # (..., 1, S, D): the same keys for every member
    hidden = torch.sigmoid(hidden_bias.unsqueeze(-2) + below @ w)  # (..., [K,] S, H)
    per_segment = hidden @ v.transpose(-1, -2)  # (..., [K,] S, D): each segment's output for every key
    which = rank.long().unsqueeze(-2)  # (..., 1, D)
    if members:
        which = which.unsqueeze(-3).expand(*per_segment.shape[:-2], 1, per_segment.shape[-1])
    return visible_bias + per_segment.gather(-2, which).squeeze(-2)


def bernoulli_log_prob(logits: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """log p(frames) under independent Bernoullis given these logits, summed over the last axis."""
    return -F.binary_cross_entropy_with_logits(logits, frames, reduction="none").sum(dim=-1)


class KeyNADE(nn.Module):
    """The NADE's own weights: W (input weights of each key into the hidden layer) and V (each key's output
    weights). Its biases come from the recurrent network (`NADEOutput`)."""

    def __init__(self, num_keys: int, hidden_size: int):
        super().__init__()
        self.num_keys, self.hidden_size = num_keys, hidden_size
        # Small weights: at the start each conditional is close to the sigmoid of its bias, i.e. the
        # independent-keys model, which the output bias is initialised to.
        self.w = nn.Parameter(torch.randn(num_keys, hidden_size) * 0.01)
        self.v = nn.Parameter(torch.randn(num_keys, hidden_size) * 0.01)


class NADEOutput(NamedTuple):
    """A recurrent network's output for a NADE head: the biases of every time step's NADE, and the NADE.
    Tensors are (batch, time, D) and (batch, time, H)."""

    visible_bias: torch.Tensor
    hidden_bias: torch.Tensor
    nade: KeyNADE

    def last(self) -> NADEOutput:
        return NADEOutput(self.visible_bias[:, -1:], self.hidden_bias[:, -1:], self.nade)

    def conditional_logits(self, frames: torch.Tensor) -> torch.Tensor:
        return nade_conditional_logits(self.visible_bias, self.hidden_bias, frames, self.nade.w, self.nade.v)

    def log_prob(self, frames: torch.Tensor) -> torch.Tensor:
        """log p(frame) of each (batch, time) frame, exactly, in one parallel pass."""
        return bernoulli_log_prob(self.conditional_logits(frames), frames)

    def sample(
        self, temperature: float, generator: torch.Generator | None, penalised=None, penalty: float = 1.0
    ) -> torch.Tensor:
        """One frame per batch item from the last time step's NADE, keys drawn lowest first: (batch, D).
        Each conditional is sigmoid(logit / temperature); temperature <= 0 takes the likelier value. Keys
        where `penalised` ((batch, D) bool) is True get CTRL's repetition `penalty` on their conditional's logit."""
        visible = self.visible_bias[:, -1]
        pre_activation = self.hidden_bias[:, -1].clone()  # (batch, H): c + sum of the drawn keys' W rows
        w, v = self.nade.w, self.nade.v
        frame = torch.zeros_like(visible)
        for i in range(visible.shape[-1]):
            logit = visible[:, i] + (torch.sigmoid(pre_activation) * v[i]).sum(-1)
            if penalised is not None:
                logit = penalise(logit, penalised[:, i], penalty)
            frame[:, i] = _draw(logit, temperature, generator)
            pre_activation += frame[:, i : i + 1] * w[i]
        return frame


class MixtureNADEOutput(NamedTuple):
    """K members' NADE outputs as one mixture with weights exp(log_weights): (batch, time, K, D) and
    (batch, time, K, H) biases, (K, D, H) weights."""

    visible_bias: torch.Tensor
    hidden_bias: torch.Tensor
    w: torch.Tensor
    v: torch.Tensor
    log_weights: torch.Tensor

    def last(self) -> MixtureNADEOutput:
        return self._replace(visible_bias=self.visible_bias[:, -1:], hidden_bias=self.hidden_bias[:, -1:])

    def member_log_probs(self, frames: torch.Tensor) -> torch.Tensor:
        """(batch, time, K) log p_k(frame) of each member."""
        logits = nade_conditional_logits(self.visible_bias, self.hidden_bias, frames, self.w, self.v)
        return bernoulli_log_prob(logits, frames.unsqueeze(-2).expand_as(logits))

    def log_prob(self, frames: torch.Tensor) -> torch.Tensor:
        """log of the weighted mean of the members' frame likelihoods: (batch, time)."""
        return torch.logsumexp(self.member_log_probs(frames) + self.log_weights, dim=-1)

    def conditional_logits(self, frames: torch.Tensor) -> torch.Tensor:
        """The mixture's logits of p(v_i = 1 | v_<i), given the frames' own keys: (batch, time, D)."""
        expanded = frames.unsqueeze(-2).expand_as(self.visible_bias)
        logits = nade_conditional_logits(self.visible_bias, self.hidden_bias, frames, self.w, self.v)  # each member's
        # Each member's weight for key i: w_k p_k(v_<i), normalised; log p_k(v_<i) = the keys below's terms.
        per_key = -F.binary_cross_entropy_with_logits(logits, expanded, reduction="none")
        below = torch.cumsum(per_key, dim=-1) - per_key
        posterior = torch.log_softmax(below + self.log_weights.unsqueeze(-1), dim=-2)
        log_on = torch.logsumexp(posterior + F.logsigmoid(logits), dim=-2)
        log_off = torch.logsumexp(posterior + F.logsigmoid(-logits), dim=-2)
        return log_on - log_off

    def sample(
        self, temperature: float, generator: torch.Generator | None, penalised=None, penalty: float = 1.0
    ) -> torch.Tensor:
        """One frame per batch item from the mixture at the last time step, keys lowest first: (batch, D);
        `penalised` and `penalty` as in `NADEOutput.sample`."""
        visible = self.visible_bias[:, -1]  # (batch, K, D)
        pre_activation = self.hidden_bias[:, -1].clone()  # (batch, K, H)
        log_posterior = self.log_weights.expand(visible.shape[0], -1).clone()  # (batch, K)
        frame = visible.new_zeros(visible.shape[0], visible.shape[-1])
        for i in range(visible.shape[-1]):
            member_logit = visible[..., i] + (torch.sigmoid(pre_activation) * self.v[:, i]).sum(-1)  # (batch, K)
            weights = torch.log_softmax(log_posterior, dim=-1)
            logit = torch.logsumexp(weights + F.logsigmoid(member_logit), -1) - torch.logsumexp(
                weights + F.logsigmoid(-member_logit), -1
            )
            if penalised is not None:
                logit = penalise(logit, penalised[:, i], penalty)
            frame[:, i] = _draw(logit, temperature, generator)
            on = frame[:, i : i + 1]
            log_posterior = log_posterior + on * F.logsigmoid(member_logit) + (1 - on) * F.logsigmoid(-member_logit)
            pre_activation += on.unsqueeze(-1) * self.w[:, i]
        return frame


def _draw(logit: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return (logit > 0).to(logit.dtype)
    return torch.bernoulli(torch.sigmoid(logit / temperature), generator=generator)
