"""A thin LightningModule around `NoteLSTM`: the loss, the optimiser and the checkpoint contents."""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from musicrnn.nets.note_lstm import NoteLSTM, NoteLSTMConfig, NoteLSTMOutput
from musicrnn.representations.notes import DURATION, PITCH, STEP, TIME_UNITS
from musicrnn.training.loss_logging import log_loss

CHECKPOINT_FORMAT_VERSION = 1
TRAIN_POSITIONS = ("all", "last")


def positive_pressure_mse(prediction: torch.Tensor, target: torch.Tensor, penalty: float) -> torch.Tensor:
    """MSE plus `penalty` times the mean negative part of the prediction (the TF tutorial's loss for step
    and duration, which must not go below zero)."""
    return F.mse_loss(prediction, target) + penalty * torch.relu(-prediction).mean()


class NoteLSTMModule(pl.LightningModule):
    """Next-note model. A batch is (batch, seq_len + 1, 3) windows of events: rows 0..seq_len-1 are read,
    rows 1..seq_len are the targets. `train_positions="all"` trains the next note at every position (as
    language models do); `"last"` only at the final position (the TF tutorial / paper setup).

    Every constructor argument is a plain value and is saved in the checkpoint, so
    `load_from_checkpoint` needs nothing else.
    """

    def __init__(
        self,
        hidden_size: int = 128,
        num_layers: int = 3,
        dropout: float = 0.3,
        dense_size: int = 256,
        train_positions: str = "all",
        pitch_loss_weight: float = 0.05,
        step_loss_weight: float = 1.0,
        duration_loss_weight: float = 1.0,
        negative_penalty: float = 10.0,
        learning_rate: float = 1e-3,
        time_unit: str = "seconds",
        pitch_embedding_dim: int = 0,
        timing_input: str = "linear",
        timing_head: str = "regression",
        timing_classes: int = 101,
        timing_resolution: float = 0.02,
    ):
        super().__init__()
        if train_positions not in TRAIN_POSITIONS:
            raise ValueError(f"train_positions must be one of {TRAIN_POSITIONS}, got {train_positions!r}")
        if time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit must be one of {TIME_UNITS}, got {time_unit!r}")
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.save_hyperparameters()
        self.net = NoteLSTM(
            NoteLSTMConfig(
                hidden_size,
                num_layers,
                dropout,
                dense_size,
                pitch_embedding_dim=pitch_embedding_dim,
                timing_input=timing_input,
                timing_head=timing_head,
                timing_classes=timing_classes,
                timing_resolution=timing_resolution,
            )
        )
        # Held-out primers travel inside the checkpoint so that generation needs nothing else.
        self.primers: list[torch.Tensor] = []

    def forward(self, events: torch.Tensor, state=None):
        return self.net(events, state)

    def _timing_loss(
        self, output: NoteLSTMOutput, name: str, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(loss, per-position NLL or None) of one timing head."""
        logits = getattr(output, f"{name}_logits")
        if logits is None:
            prediction = getattr(output, name).reshape(-1)
            return positive_pressure_mse(prediction, target, self.hparams.negative_penalty), None
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.net.timing_class(target), reduction="none")
        return nll.mean(), nll

    def _step(self, batch: torch.Tensor, stage: str) -> dict[str, torch.Tensor]:
        inputs, targets = batch[:, :-1], batch[:, 1:]
        output, _ = self.net(inputs)
        if self.hparams.train_positions == "last":
            output = NoteLSTMOutput(*(t[:, -1:] if t is not None else None for t in output))
            inputs, targets = inputs[:, -1:], targets[:, -1:]
        logits = output.pitch_logits.reshape(-1, output.pitch_logits.shape[-1])
        pitch_target = targets[..., PITCH].reshape(-1).long()
        step_target = targets[..., STEP].reshape(-1)
        duration_target = targets[..., DURATION].reshape(-1)

        pitch_nll = F.cross_entropy(logits, pitch_target, reduction="none")
        pitch_loss = pitch_nll.mean()
        step_loss, step_nll = self._timing_loss(output, "step", step_target)
        duration_loss, duration_nll = self._timing_loss(output, "duration", duration_target)
        loss = (
            self.hparams.pitch_loss_weight * pitch_loss
            + self.hparams.step_loss_weight * step_loss
            + self.hparams.duration_loss_weight * duration_loss
        )
        n = pitch_target.numel()
        log_loss(self, stage, loss, n)
        self.log_dict(
            {
                f"{stage}/pitch_loss": pitch_loss,
                f"{stage}/step_loss": step_loss,
                f"{stage}/duration_loss": duration_loss,
            },
            on_step=False,
            on_epoch=True,
            batch_size=n,
            sync_dist=True,
        )
        # Everything the metric callbacks need, detached: they see it in on_*_batch_end.
        result = {
            "loss": loss,
            "pitch_logits": logits.detach(),
            "pitch_nll": pitch_nll.detach(),
            "pitch_target": pitch_target,
            "previous_pitch": inputs[..., PITCH].reshape(-1).long(),
            "step": output.step.reshape(-1).detach(),
            "step_target": step_target,
            "duration": output.duration.reshape(-1).detach(),
            "duration_target": duration_target,
        }
        if step_nll is not None:
            result["step_nll"], result["duration_nll"] = step_nll.detach(), duration_nll.detach()
        return result

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)

    # -- checkpoint contents ------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "primer_events"):
            self.primers = [torch.from_numpy(np.asarray(p, dtype=np.float32)) for p in datamodule.primer_events()]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["musicrnn"] = {
            "format_version": CHECKPOINT_FORMAT_VERSION,
            "model": "note_lstm",
            "time_unit": self.hparams.time_unit,
            "primers": list(self.primers),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.primers = list(checkpoint.get("musicrnn", {}).get("primers", []))
