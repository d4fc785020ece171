"""Every config option composes and instantiates: a typo in a YAML file fails here, not in a user's run."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from musicrnn.cli.conf_dir import CONFIG_DIR
from musicrnn.training.models import REPRESENTATIONS as MODEL_REPRESENTATIONS
from tests.helpers import composed


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes(experiment, monkeypatch):
    monkeypatch.setenv("MUSICRNN_POP909", "/data/POP909")
    monkeypatch.setenv("MUSICRNN_JSB_CHORALES", "/data/JSB Chorales.pickle")
    cfg = composed("train", [f"experiment={experiment}", "paths.output_dir=/tmp/x"])
    OmegaConf.resolve(cfg)
    assert cfg.task_name == experiment


def _reads(model: str) -> str:
    """The representation a model config's builder reads (notes, pianoroll)."""
    return MODEL_REPRESENTATIONS[str(composed("train", [f"model={model}"]).model._target_).rpartition(".")[2]]


PIANOROLL_MODELS = [model for model in _options("model") if _reads(model) == "pianoroll"]
PIANOROLL_DATA = ["jsb_chorales", "pianoroll_midi", "pianoroll_pickle"]


@pytest.mark.parametrize("model", [m for m in _options("model") if m not in PIANOROLL_MODELS])
@pytest.mark.parametrize("data", ["midi_dir", "bach_chorales"])
def test_every_note_data_and_model_option_instantiates(data, model, tmp_path):
    cfg = composed("train", [f"data={data}", f"model={model}", f"data.path={tmp_path}", "paths.output_dir=/tmp/x"])
    datamodule = hydra.utils.instantiate(cfg.data)
    module = hydra.utils.instantiate(cfg.model)
    assert datamodule.seq_len == cfg.data.seq_len and module.hparams.time_unit == datamodule.time_unit


@pytest.mark.parametrize("model", PIANOROLL_MODELS)
@pytest.mark.parametrize("data", PIANOROLL_DATA)
def test_every_pianoroll_data_and_model_option_instantiates(data, model, tmp_path):
    assert set(PIANOROLL_DATA) <= set(_options("data")) and set(PIANOROLL_MODELS) <= set(_options("model"))
    cfg = composed(
        "train",
        [
            f"data={data}",
            f"model={model}",
            f"data.path={tmp_path}",
            "paths.output_dir=/tmp/x",
            "data.steps_per_quarter=2",
            "data.num_keys=60",
        ],
    )
    datamodule = hydra.utils.instantiate(cfg.data)
    module = hydra.utils.instantiate(cfg.model)
    assert (
        (module.hparams.num_keys, module.hparams.steps_per_quarter)
        == (datamodule.num_keys, datamodule.steps_per_quarter)
        == (60, 2)
    )


def test_callbacks_logger_and_trainer_instantiate(tmp_path):
    from musicrnn.cli.train import instantiate_group

    cfg = composed("train", [f"paths.output_dir={tmp_path}"])
    callbacks = instantiate_group(cfg.callbacks)
    names = {type(c).__name__ for c in callbacks}
    assert {"ModelCheckpoint", "EarlyStopping", "LearningRateMonitor", "Metrics"} <= names
    loggers = instantiate_group(cfg.logger)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, accelerator="cpu")
    assert trainer.max_epochs == cfg.trainer.max_epochs
