"""Listen to and look at the model while it trains: every N validation epochs, generate a few samples
and log to TensorBoard their novelty and copy rate, a piano-roll image, the pitch/step/duration
histograms over the training set's, and the audio of the first (when FluidSynth is installed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from musicrnn.errors import one_line
from musicrnn.evaluation import figures
from musicrnn.evaluation.novelty import novelty_summary
from musicrnn.evaluation.samples import read_samples
from musicrnn.generation.samples import sample_checkpoint
from musicrnn.midi.audio import AudioUnavailable, audio_unavailable_reason, read_wav_mono, render_wav
from musicrnn.nets.heads import SamplingSettings

log = logging.getLogger(__name__)


class SampleLogger(pl.Callback):
    def __init__(
        self,
        every_n_epochs: int = 10,
        num_samples: int = 2,
        num_notes: int = 128,
        num_frames: int = 64,
        temperature: float = 1.0,
        audio: bool = True,
        seed: int = 0,
    ):
        if every_n_epochs < 1 or num_samples < 1:
            raise ValueError(f"every_n_epochs and num_samples must be >= 1, got {every_n_epochs}, {num_samples}")
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.num_notes = num_notes
        self.num_frames = num_frames
        self.temperature = temperature
        self.audio = audio
        self.seed = seed
        self._training_pieces = None
        self._audio_note_given = False

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        logger = next((lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)), None)
        datamodule = getattr(trainer, "datamodule", None)
        if logger is None or datamodule is None or not getattr(pl_module, "primers", None):
            return
        if self._training_pieces is None:
            self._training_pieces = datamodule.pieces("train")

        epoch, step, writer = trainer.current_epoch, trainer.global_step, logger.experiment
        folder = Path(logger.log_dir) / "samples"
        length = {"num_notes": self.num_notes, "num_frames": self.num_frames}[pl_module.representation.length_setting]
        paths = sample_checkpoint(
            pl_module,
            folder / f"epoch{epoch:03d}.mid",
            length=length,
            num_samples=self.num_samples,
            settings=SamplingSettings(self.temperature),
            seed=self.seed + epoch,  # its own generator: training's RNG is untouched
        )
        paths, pieces = read_samples(paths, level=logging.INFO)  # early in training a piano-roll sample may be silent
        if not pieces:
            return
        for name, value in novelty_summary(pieces, self._training_pieces).items():
            writer.add_scalar(f"samples/{name}", value, step)
        writer.add_figure(
            "samples/piano_roll", figures.piano_roll_figure(pieces[0], title=f"epoch {epoch}: sample 0"), step
        )
        writer.add_figure("samples/histograms", figures.histograms_figure(pieces, self._training_pieces), step)
        if self.audio:
            self._log_audio(writer, paths[0], step)

    def _log_audio(self, writer, midi_path: Path, step: int) -> None:
        reason = audio_unavailable_reason()
        if reason:
            if not self._audio_note_given:
                log.warning("SampleLogger: %s", reason)
                self._audio_note_given = True
            return
        try:
            samples, rate = read_wav_mono(render_wav(midi_path))
        except AudioUnavailable as error:
            log.warning("SampleLogger: %s", one_line(error))
            return
        writer.add_audio("samples/audio", torch.from_numpy(samples).unsqueeze(0), step, sample_rate=rate)
