"""K networks of one architecture as one network: block-diagonal weights, so all members run in one fused
call per layer instead of K calls in a Python loop.

`torch.func.vmap` cannot batch `nn.LSTM` ("Batching rule not implemented for aten::lstm"), so members are
fused another way: an RNN whose hidden units are the members' units side by side, with each member's
recurrent weights on the diagonal blocks and zeros elsewhere. The zeros keep the members exactly
independent, and the one native LSTM/GRU kernel then steps all of them at once. The recurrent matmul does
K times the necessary arithmetic, which is cheap next to K separate kernel launches at generation time
(one time step per call).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

GATES = {nn.LSTM: 4, nn.GRU: 3}


def _offsets(sizes: Sequence[int]) -> list[int]:
    out, total = [], 0
    for size in sizes:
        out.append(total)
        total += size
    return out


@torch.no_grad()
def group_rnns(rnns: Sequence[nn.LSTM | nn.GRU], input_columns: Sequence[torch.Tensor]) -> nn.LSTM | nn.GRU:
    """One LSTM/GRU running every member of `rnns` side by side. `input_columns[k]` lists the columns of the
    fused input that member k reads (the same columns for a shared input; its own block for concatenated
    per-member inputs). The fused hidden state holds member k's units at the k-th block of each gate."""
    cell = type(rnns[0])
    layers, batch_first = rnns[0].num_layers, rnns[0].batch_first
    if cell not in GATES or any(type(r) is not cell or r.num_layers != layers or r.batch_first != batch_first for r in rnns):
        raise ValueError("members must share the recurrent cell, the number of layers and batch_first")
    gates = GATES[cell]
    hidden = [r.hidden_size for r in rnns]
    hidden_at = _offsets(hidden)
    total_hidden = sum(hidden)
    input_size = max(int(c.max()) for c in input_columns) + 1
    fused = cell(input_size, total_hidden, num_layers=layers, batch_first=batch_first)
    for layer in range(layers):
        w_ih = torch.zeros(gates * total_hidden, input_size if layer == 0 else total_hidden)
        w_hh = torch.zeros(gates * total_hidden, total_hidden)
        b_ih = torch.zeros(gates * total_hidden)
        b_hh = torch.zeros(gates * total_hidden)
        for k, rnn in enumerate(rnns):
            h, at = hidden[k], hidden_at[k]
            columns = input_columns[k] if layer == 0 else torch.arange(at, at + h)
            member = {name: getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            for g in range(gates):
                rows = slice(g * total_hidden + at, g * total_hidden + at + h)
                mine = slice(g * h, (g + 1) * h)
                w_ih[rows.start : rows.stop, columns] = member["weight_ih"][mine]
                w_hh[rows, at : at + h] = member["weight_hh"][mine]
                b_ih[rows] = member["bias_ih"][mine]
                b_hh[rows] = member["bias_hh"][mine]
        getattr(fused, f"weight_ih_l{layer}").copy_(w_ih)
        getattr(fused, f"weight_hh_l{layer}").copy_(w_hh)
        getattr(fused, f"bias_ih_l{layer}").copy_(b_ih)
        getattr(fused, f"bias_hh_l{layer}").copy_(b_hh)
    return fused


@torch.no_grad()
def group_linears(linears: Sequence[nn.Linear], shared_input: bool = False) -> nn.Linear:
    """One Linear computing every member's output side by side: block-diagonal for inputs laid side by side,
    or stacked rows when all members read the same input (`shared_input`)."""
    outs = [lin.out_features for lin in linears]
    ins = [lin.in_features for lin in linears]
    in_total = ins[0] if shared_input else sum(ins)
    has_bias = linears[0].bias is not None
    fused = nn.Linear(in_total, sum(outs), bias=has_bias)
    weight = torch.zeros(sum(outs), in_total)
    for lin, out_at, in_at in zip(linears, _offsets(outs), _offsets(ins)):
        columns = slice(0, lin.in_features) if shared_input else slice(in_at, in_at + lin.in_features)
        weight[out_at : out_at + lin.out_features, columns] = lin.weight
        if has_bias:
            fused.bias[out_at : out_at + lin.out_features] = lin.bias
    fused.weight.copy_(weight)
    return fused


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
