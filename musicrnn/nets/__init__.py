"""Layer 3: plain-torch networks and their output distributions (no Lightning, no Hydra)."""

from musicrnn.nets.note_lstm import NoteLSTM, NoteLSTMConfig, NoteLSTMOutput
from musicrnn.nets.pianoroll_rnn import PianoRollRNN, PianoRollRNNConfig

__all__ = ["NoteLSTM", "NoteLSTMConfig", "NoteLSTMOutput", "PianoRollRNN", "PianoRollRNNConfig"]
