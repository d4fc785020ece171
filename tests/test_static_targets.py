"""The config checks read each `_target_`'s parameters from its source: they must be the parameters Python
itself sees, for every target the shipped configs name; and checking a config must not import torch."""

from __future__ import annotations

import inspect
import subprocess
import sys

import hydra
import pytest
from omegaconf import OmegaConf

from musicrnn.cli import static_targets
from musicrnn.cli.conf_dir import CONFIG_DIR
from tests.helpers import REPO


def shipped_targets() -> list[str]:
    targets = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("_target_"), str):
                targets.add(node["_target_"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in CONFIG_DIR.rglob("*.yaml"):
        walk(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
    return sorted(targets)


@pytest.mark.parametrize("target", shipped_targets())
def test_the_source_gives_the_parameters_python_sees(target):
    static = static_targets.signature(target)
    assert static is not None, f"{target}: not read from its source (the CLIs would import it to check a config)"
    parameters = inspect.signature(hydra.utils.get_method(target)).parameters.values()
    named = [p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    assert list(static.parameters) == named
    assert static.open_ended == any(p.kind is p.VAR_KEYWORD for p in parameters)


def test_plain_annotations_become_types_and_others_stay_text():
    sig = static_targets.signature("musicrnn.data.NoteSequenceDataModule")
    assert sig.annotations["seq_len"] is int and sig.annotations["velocity"] is bool
    assert sig.annotations["path"] == (str | None)
    trainer = static_targets.signature("pytorch_lightning.Trainer")
    assert isinstance(trainer.annotations["accelerator"], str)  # names a Lightning class: not judged


def test_class_attributes_and_module_constants_are_read_without_importing():
    assert static_targets.attribute("musicrnn.data.BachChoralesDataModule", "representation_name") == "notes"
    assert static_targets.attribute("musicrnn.data.PianoRollPickleDataModule", "representation_name") == "pianoroll"
    from musicrnn.training.models import REPRESENTATIONS

    assert static_targets.module_value("musicrnn.training.models", "REPRESENTATIONS") == REPRESENTATIONS
    assert static_targets.signature("musicrnn.nowhere.Nothing") is None  # the callers import it instead


def test_checking_a_bad_config_imports_neither_torch_nor_lightning():
    probe = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from musicrnn.cli.conf_dir import CONFIG_DIR\n"
        "from musicrnn.cli.train import check_data_and_model_kinds\n"
        "from musicrnn.cli.config_validation import validate_group\n"
        "from musicrnn.errors import MusicrnnError\n"
        "with initialize_config_dir(str(CONFIG_DIR), version_base='1.3'):\n"
        "    for overrides in (['model.hidden_size=-3'], ['data=jsb_chorales'], ['data.seq_len=0']):\n"
        "        cfg = compose('train', overrides=overrides)\n"
        "        try:\n"
        "            check_data_and_model_kinds(cfg)\n"
        "            for group in ('data', 'model', 'trainer'):\n"
        "                validate_group(group, cfg[group])\n"
        "            raise SystemExit(f'{overrides}: accepted')\n"
        "        except MusicrnnError as error:\n"
        "            print(error)\n"
        "print(sorted(m for m in ('torch', 'pytorch_lightning', 'lightning_fabric') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"MUSICRNN_JSB_CHORALES": "/nowhere.pickle", "PATH": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("model.hidden_size=-3: allowed: an integer >= 1")
    assert "gives piano rolls but the model is a note model" in lines[1]
    assert lines[2].startswith("data.seq_len=0")
    assert lines[-1] == "[]"
