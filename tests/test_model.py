from __future__ import annotations

import hydra
import pytest
import torch

from musicrnn.nets import NoteLSTM, NoteLSTMConfig
from musicrnn.training.models import note_lstm
from musicrnn.training.module import SequenceModel
from tests.helpers import composed


def _model_from_config(name: str) -> SequenceModel:
    cfg = composed("train", [f"model={name}"])
    return hydra.utils.instantiate(cfg.model), cfg


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def lstm_parameters(input_size: int, hidden_size: int, num_layers: int, bias_vectors: int = 2) -> int:
    """An LSTM's parameters: per layer, four gates with input and recurrent weights, 4·H·(I + H), and
    `bias_vectors` bias vectors of 4·H (PyTorch keeps b_ih and b_hh: two; Keras one); layers after the first
    read the H outputs of the layer below."""
    return sum(
        4 * hidden_size * ((input_size if layer == 0 else hidden_size) + hidden_size) + bias_vectors * 4 * hidden_size
        for layer in range(num_layers)
    )


def linear_parameters(inputs: int, outputs: int) -> int:
    return (inputs + 1) * outputs  # weights and one bias per output


PITCHES, NOTE_INPUTS = 128, 3  # the pitch softmax's classes; a note enters as (pitch / 128, step, duration)


def heads_parameters(features: int) -> int:
    """The three heads reading `features`: pitch logits, step and duration (one regression value each)."""
    return linear_parameters(features, PITCHES) + 2 * linear_parameters(features, 1)


def test_tf_tutorial_config_is_the_papers_figure_2():
    model, cfg = _model_from_config("tf_tutorial")
    hidden = 128  # Figure 2: one LSTM of 128 units, the heads reading it directly
    lstm = model.net.lstm
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers) == (NOTE_INPUTS, hidden, 1)
    assert _count(model) == lstm_parameters(NOTE_INPUTS, hidden, 1) + heads_parameters(hidden)
    # What Keras reports for Figure 2 (one bias vector per gate): the same layers, 4 * 128 parameters fewer.
    assert lstm_parameters(NOTE_INPUTS, hidden, 1, bias_vectors=1) + heads_parameters(hidden) == 84_354
    assert cfg.data.seq_len == 25 and cfg.data.stride == 1 and model.hparams.train_positions == "last"


def test_seed_paper_config_is_the_papers_text():
    model, cfg = _model_from_config("seed_paper")
    hidden, layers, dense = 128, 3, 256  # three stacked LSTM(128), then a 256-unit ReLU layer before the heads
    lstm = model.net.lstm
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.dropout) == (NOTE_INPUTS, hidden, layers, 0.3)
    expected = lstm_parameters(NOTE_INPUTS, hidden, layers) + linear_parameters(hidden, dense) + heads_parameters(dense)
    assert _count(lstm) == lstm_parameters(NOTE_INPUTS, hidden, layers)
    assert _count(model) == expected
    assert cfg.data.seq_len == 100 and model.hparams.train_positions == "all"


def test_state_carried_one_note_at_a_time_equals_the_whole_sequence():
    torch.manual_seed(0)
    net = NoteLSTM(NoteLSTMConfig(hidden_size=32, num_layers=2, dropout=0.2, dense_size=16)).eval()
    events = torch.rand(3, 12, 3) * torch.tensor([127.0, 0.5, 1.0])
    whole, _ = net(events)
    state, steps = None, []
    for t in range(12):
        out, state = net(events[:, t : t + 1], state)
        steps.append(out.pitch_logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole.pitch_logits, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:.*self.log.*")
def test_train_positions_choose_which_targets_count():
    torch.manual_seed(0)
    batch = torch.rand(4, 9, 3) * torch.tensor([127.0, 0.5, 1.0])
    batch[..., 0] = batch[..., 0].round()
    last = note_lstm(hidden_size=16, num_layers=1, dropout=0.0, dense_size=0, train_positions="last")
    assert torch.equal(last._step(batch, "train")["pitch_target"], batch[:, -1, 0].long())
    every = note_lstm(hidden_size=16, num_layers=1, dropout=0.0, dense_size=0, train_positions="all")
    assert torch.equal(every._step(batch, "train")["pitch_target"], batch[:, 1:, 0].reshape(-1).long())


@pytest.mark.parametrize(
    "bad", [{"train_positions": "middle"}, {"time_unit": "bars"}, {"learning_rate": 0}, {"dropout": 1.5}]
)
def test_bad_model_settings_are_refused(bad):
    with pytest.raises(ValueError, match=str(next(iter(bad.values())))):
        note_lstm(**bad)
