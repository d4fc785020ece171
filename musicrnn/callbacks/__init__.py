from musicrnn.callbacks.note_metrics import NoteMetrics
from musicrnn.callbacks.pianoroll_metrics import PianoRollMetrics

__all__ = ["NoteMetrics", "PianoRollMetrics"]
