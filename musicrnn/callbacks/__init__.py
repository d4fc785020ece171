from musicrnn.callbacks.note_metrics import NoteMetrics
from musicrnn.callbacks.pianoroll_metrics import PianoRollMetrics
from musicrnn.callbacks.sample_logger import SampleLogger
from musicrnn.callbacks.weight_averaging import EMAWeights

__all__ = ["EMAWeights", "NoteMetrics", "PianoRollMetrics", "SampleLogger"]
