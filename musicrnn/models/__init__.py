from musicrnn.models.note_lstm import NoteLSTM, NoteLSTMConfig, NoteLSTMOutput
from musicrnn.models.note_module import NoteLSTMModule

__all__ = ["NoteLSTM", "NoteLSTMConfig", "NoteLSTMModule", "NoteLSTMOutput"]
