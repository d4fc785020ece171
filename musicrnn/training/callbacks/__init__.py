from musicrnn.training.callbacks.note_metrics import NoteMetrics
from musicrnn.training.callbacks.pianoroll_metrics import PianoRollMetrics
from musicrnn.training.callbacks.weight_averaging import EMAWeights

__all__ = ["EMAWeights", "NoteMetrics", "PianoRollMetrics"]
