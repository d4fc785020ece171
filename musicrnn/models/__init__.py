from musicrnn.models.note_lstm import NoteLSTM, NoteLSTMConfig, NoteLSTMOutput
from musicrnn.models.note_module import NoteLSTMModule
from musicrnn.models.pianoroll_module import PianoRollModule
from musicrnn.models.pianoroll_rnn import PianoRollRNN, PianoRollRNNConfig

__all__ = [
    "NoteLSTM",
    "NoteLSTMConfig",
    "NoteLSTMModule",
    "NoteLSTMOutput",
    "PianoRollModule",
    "PianoRollRNN",
    "PianoRollRNNConfig",
]
