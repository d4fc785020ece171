"""How likely a model finds a piece: the mean log-likelihood per step (note or frame) of a note array in the
model's representation, each step given the ones before it (teacher forcing), read from the piece's first
step. The same procedure for generated samples (as written to MIDI) and held-out real pieces, so the two
compare: a sampling setting whose samples the model finds less likely than real music has left the music
the model learnt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

DEFINITION = (
    "mean log p(step | the steps before it) under the model over a piece's steps after its first, read from "
    "the piece's start (nats per note or frame; higher is likelier)"
)


@torch.no_grad()
def log_likelihood_per_step(module, pieces: Sequence[np.ndarray]) -> list[float]:
    """Each piece's mean log-likelihood per step under `module` (a `SequenceModel`); NaN for a piece with
    fewer than two steps."""
    was_training = module.net.training
    module.net.eval()
    values = []
    for piece in pieces:
        steps = np.asarray(module.representation.encode(piece), dtype=np.float32)
        if len(steps) < 2:
            values.append(float("nan"))
            continue
        tensor = torch.from_numpy(steps).unsqueeze(0)
        output, _ = module.net(tensor[:, :-1])
        values.append(float(module.head.log_prob(output, tensor[:, 1:]).double().mean()))
    module.net.train(was_training)
    return values
