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


def test_tf_tutorial_config_is_the_papers_figure_2():
    model, cfg = _model_from_config("tf_tutorial")
    # Keras reports 84,354; PyTorch's LSTM keeps two bias vectors (b_ih and b_hh): 4 * 128 more.
    assert _count(model) == 84_866
    assert _count(model) - 4 * 128 == 84_354
    assert cfg.data.seq_len == 25 and cfg.data.stride == 1 and model.hparams.train_positions == "last"


def test_seed_paper_config_is_the_papers_text():
    model, cfg = _model_from_config("seed_paper")
    lstm = 4 * 128 * (3 + 128) + 8 * 128 + 2 * (4 * 128 * (128 + 128) + 8 * 128)
    dense = 128 * 256 + 256
    heads = (256 + 1) * (128 + 1 + 1)
    assert _count(model) == lstm + dense + heads == 398_722
    assert model.net.lstm.num_layers == 3 and model.net.lstm.dropout == 0.3
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
