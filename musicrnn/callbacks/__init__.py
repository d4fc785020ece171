from musicrnn.callbacks.note_metrics import NoteMetrics

__all__ = ["NoteMetrics"]
