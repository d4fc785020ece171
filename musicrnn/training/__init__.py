"""Layer 4: training. The LightningModule, its metric and checkpoint callbacks, safe checkpoint files,
ensembles of trained checkpoints."""

from musicrnn.training.note_module import NoteLSTMModule
from musicrnn.training.pianoroll_module import PianoRollModule

__all__ = ["NoteLSTMModule", "PianoRollModule"]
