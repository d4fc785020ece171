"""K networks of one shape run as one: their weights stacked along a member axis, so each layer and time
step is one batched matmul over all members instead of K calls in a Python loop.

`torch.func.vmap` cannot batch `nn.LSTM` ("Batching rule not implemented for aten::lstm"), and fusing the
members into one wide `nn.LSTM` with block-diagonal weights does K times the work and was ~100x slower than
one member at K = 5 (measured: 11.5 s vs 0.116 s for 256 frames). So the cell is written out here: the
input projection of a whole sequence is one einsum, and each time step one `baddbmm` per layer for all
members, with PyTorch's gate order and equations (LSTM: i, f, g, o; GRU: r, z, n), so the members'
trained weights drop in unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

GATES = {nn.LSTM: 4, nn.GRU: 3}


class MemberRNN(nn.Module):
    """K stacked LSTMs or GRUs (equal cell, layers and hidden size; batch_first) as one module.

    forward(x, state): x is (batch, time, input) when all members read the same input, or
    (batch, time, K, input) when each reads its own. Returns (batch, time, K, hidden) and the state:
    (h, c) for LSTMs, h for GRUs, each (layers, K, batch, hidden).
    """

    def __init__(self, rnns: Sequence[nn.LSTM | nn.GRU]):
        super().__init__()
        first = rnns[0]
        self.cell = type(first)
        if self.cell not in GATES or any(
            type(r) is not self.cell
            or (r.num_layers, r.hidden_size, r.input_size) != (first.num_layers, first.hidden_size, first.input_size)
            for r in rnns
        ):
            raise ValueError("members must share the recurrent cell, the number of layers and the layer sizes")
        self.num_layers, self.hidden_size = first.num_layers, first.hidden_size
        for layer in range(self.num_layers):
            stack = lambda name: torch.stack([getattr(r, f"{name}_l{layer}").detach() for r in rnns])  # noqa: E731
            self.register_buffer(f"w_ih_{layer}", stack("weight_ih"))  # (K, G*H, I)
            self.register_buffer(f"w_hh_t_{layer}", stack("weight_hh").transpose(1, 2).contiguous())  # (K, H, G*H)
            self.register_buffer(f"b_ih_{layer}", stack("bias_ih"))  # (K, G*H)
            self.register_buffer(f"b_hh_{layer}", stack("bias_hh"))

    def _zeros(self, k: int, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(self.num_layers, k, batch, self.hidden_size)

    def forward(self, x: torch.Tensor, state=None):
        k = self.w_ih_0.shape[0]
        batch, steps = x.shape[:2]
        lstm = self.cell is nn.LSTM
        if state is None:
            state = (self._zeros(k, batch, x), self._zeros(k, batch, x)) if lstm else self._zeros(k, batch, x)
        h_all, c_all = state if lstm else (state, None)
        new_h, new_c = [], []
        inputs = x
        for layer in range(self.num_layers):
            w_ih, b_ih = getattr(self, f"w_ih_{layer}"), getattr(self, f"b_ih_{layer}")
            w_hh_t, b_hh = getattr(self, f"w_hh_t_{layer}"), getattr(self, f"b_hh_{layer}")
            pattern = "bti,kgi->ktbg" if inputs.dim() == 3 else "btki,kgi->ktbg"
            projected = torch.einsum(pattern, inputs, w_ih) + b_ih[:, None, None]  # (K, T, B, G*H), all steps at once
            h = h_all[layer]
            c = c_all[layer] if lstm else None
            outputs = []
            for t in range(steps):
                recurrent = torch.baddbmm(b_hh[:, None], h, w_hh_t)  # (K, B, G*H): one matmul for all members
                if lstm:
                    i, f, g, o = (projected[:, t] + recurrent).chunk(4, dim=-1)
                    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                    h = torch.sigmoid(o) * torch.tanh(c)
                else:
                    x_r, x_z, x_n = projected[:, t].chunk(3, dim=-1)
                    h_r, h_z, h_n = recurrent.chunk(3, dim=-1)
                    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                    h = (1 - z) * torch.tanh(x_n + r * h_n) + z * h
                outputs.append(h)
            inputs = torch.stack(outputs, dim=0).permute(2, 0, 1, 3)  # (B, T, K, H)
            new_h.append(h)
            new_c.append(c)
        h_out = torch.stack(new_h)
        return inputs, ((h_out, torch.stack(new_c)) if lstm else h_out)


def lstm_gate_order(hidden: int) -> torch.Tensor:
    """Gate rows reordered from PyTorch's i, f, g, o to i, f, o, g: one sigmoid then covers three gates."""
    return torch.cat(
        [torch.arange(0, 2 * hidden), torch.arange(3 * hidden, 4 * hidden), torch.arange(2 * hidden, 3 * hidden)]
    )


def lstm_cell(gates: torch.Tensor, c: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step from pre-activations in i, f, o, g order: (h, c)."""
    sig = torch.sigmoid(gates[..., : 3 * hidden])
    c = sig[..., hidden : 2 * hidden] * c + sig[..., :hidden] * torch.tanh(gates[..., 3 * hidden :])
    return sig[..., 2 * hidden :] * torch.tanh(c), c


class MemberLSTMStepper:
    """One time step of a `MemberRNN` of LSTMs for all members: per layer one `baddbmm` over [input, hidden]
    with each member's input and recurrent weights fused (and gates in i, f, o, g order), instead of an
    einsum for the input and a `baddbmm` for the recurrence. For generation, one note at a time."""

    def __init__(self, rnn: MemberRNN):
        if rnn.cell is not nn.LSTM:
            raise ValueError("MemberLSTMStepper steps LSTMs only")
        hidden = rnn.hidden_size
        order = lstm_gate_order(hidden)
        self.hidden = hidden
        self.weights, self.biases = [], []
        for layer in range(rnn.num_layers):
            w_ih, w_hh_t = getattr(rnn, f"w_ih_{layer}"), getattr(rnn, f"w_hh_t_{layer}")
            fused = torch.cat([w_ih.transpose(1, 2), w_hh_t], dim=1)  # (K, I + H, 4H)
            self.weights.append(fused[:, :, order].contiguous())
            self.biases.append((getattr(rnn, f"b_ih_{layer}") + getattr(rnn, f"b_hh_{layer}"))[:, order].unsqueeze(1))

    def __call__(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """x: (K, batch, input); state: (h, c), each (layers, K, batch, hidden). Returns the last layer's
        output (K, batch, hidden) and the new state."""
        h, c = state
        new_h, new_c = [], []
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x, cell = lstm_cell(torch.baddbmm(bias, torch.cat([x, h[layer]], dim=-1), weight), c[layer], self.hidden)
            new_h.append(x)
            new_c.append(cell)
        return x, (torch.stack(new_h), torch.stack(new_c))


def fuse_member_linears(linears: Sequence[MemberLinear]) -> MemberLinear:
    """Several MemberLinears reading the same input as one (their outputs side by side)."""
    fused = MemberLinear.__new__(MemberLinear)
    nn.Module.__init__(fused)
    fused.shared_input = linears[0].shared_input
    fused.register_buffer("weight", torch.cat([lin.weight for lin in linears], dim=1))
    fused.register_buffer("bias", torch.cat([lin.bias for lin in linears], dim=1))
    return fused


class MemberLinear(nn.Module):
    """K `nn.Linear`s of one shape: (..., K, in) -> (..., K, out), or (..., in) -> (..., K, out) when all
    members read the same input (`shared_input`)."""

    def __init__(self, linears: Sequence[nn.Linear], shared_input: bool = False):
        super().__init__()
        if any(lin.weight.shape != linears[0].weight.shape for lin in linears):
            raise ValueError("members' layers must have the same shape")
        self.shared_input = shared_input
        self.register_buffer("weight", torch.stack([lin.weight.detach() for lin in linears]))  # (K, out, in)
        bias = [lin.bias.detach() if lin.bias is not None else torch.zeros(lin.out_features) for lin in linears]
        self.register_buffer("bias", torch.stack(bias))  # (K, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pattern = "...i,koi->...ko" if self.shared_input else "...ki,koi->...ko"
        return torch.einsum(pattern, x, self.weight) + self.bias


def mixture_log_probs(logits: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """log of the weighted mean of the members' softmax probabilities. logits: (..., K, C); log_weights: (K,)."""
    return torch.logsumexp(torch.log_softmax(logits, dim=-1) + log_weights.unsqueeze(-1), dim=-2)


def mixture_bernoulli_logits(logits: torch.Tensor, log_weights: torch.Tensor) -> torch.Tensor:
    """The logit of the weighted mean of the members' sigmoid probabilities, computed in log space so that
    probabilities near 0 or 1 keep their precision. logits: (..., K, C); log_weights: (K,)."""
    w = log_weights.unsqueeze(-1)
    log_on = torch.logsumexp(nn.functional.logsigmoid(logits) + w, dim=-2)
    log_off = torch.logsumexp(nn.functional.logsigmoid(-logits) + w, dim=-2)
    return log_on - log_off
