"""Repetition control at sampling time: what a generated step may repeat of the steps before it.

- `penalise`: CTRL's repetition penalty (Keskar et al. 2019) on the logits of classes played recently: a
  positive logit is divided by the penalty, a negative one multiplied by it, so the class becomes less likely
  whatever its sign; each class once, however often it was played.
- `recent_classes_mask`: which classes (pitches, keys) occur within the last `window` steps.
- `ngram_bans`: which pitches would complete an n-gram that already occurs within the last `window` steps
  (no_repeat_ngram, as in fairseq and Hugging Face's generate).
"""

from __future__ import annotations

import torch


def penalise(logits: torch.Tensor, mask: torch.Tensor, penalty: float) -> torch.Tensor:
    """`logits` with CTRL's penalty applied where `mask` is True (same shape); penalty 1 changes nothing."""
    if penalty == 1.0:
        return logits
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(mask, penalised, logits)


def recent_classes_mask(recent: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(batch, window) class indices (negative: no step) -> (batch, num_classes) True where a class occurs."""
    index = torch.where(recent >= 0, recent, num_classes).long()  # steps that are not there go to a spare column
    mask = torch.zeros(recent.shape[0], num_classes + 1, dtype=torch.bool, device=recent.device)
    mask.scatter_(1, index, True)
    return mask[:, :num_classes]


def ngram_bans(history: torch.Tensor, n: int, window: int, num_classes: int) -> torch.Tensor | None:
    """(batch, num_classes) True for each class that, after the last n - 1 steps of `history` ((batch, T)
    class indices), would make an n-gram already found within its last `window` steps; None when none can.
    n = 1 bans every class of the window."""
    recent = history[:, -window:] if window > 0 else history
    if n < 1 or recent.shape[1] < n:
        return None
    if n == 1:
        return recent_classes_mask(recent, num_classes)
    grams = recent.unfold(1, n, 1)  # (batch, windows, n): every n-gram inside the window
    context = recent[:, -(n - 1) :].unsqueeze(1)  # the n - 1 steps a new step would follow
    follows = (grams[..., :-1] == context).all(dim=-1)
    return recent_classes_mask(torch.where(follows, grams[..., -1], -1), num_classes)
