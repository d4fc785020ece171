"""An exponential moving average of the weights, validated, checkpointed and tested in place of the raw ones."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EMAWeightAveraging
from pytorch_lightning.trainer.states import TrainerFn


class EMAWeights(EMAWeightAveraging):
    """Lightning's `EMAWeightAveraging`, with one fix: testing a checkpoint in the same process after `fit`
    scores the averaged weights that the checkpoint holds.

    Lightning 2.6 keeps its averaged model after `fit`, so `Trainer.test(ckpt_path=...)` goes through its
    `on_load_checkpoint`, which restores the raw training weights (the checkpoint's `current_model_state`,
    kept for resuming) over the averaged ones. Outside `fit` the averaged `state_dict` is what we want.
    """

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
