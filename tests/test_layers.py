"""The layer rule at run time: importing the plain-torch networks, the representations or the MIDI layer
pulls in neither Lightning nor Hydra (import-linter checks the static imports; this checks what an import
really loads, lazy imports and third-party packages included)."""

import json
import subprocess
import sys

import pytest

HEAVY = ("pytorch_lightning", "lightning_fabric", "hydra", "omegaconf")


@pytest.mark.slow
@pytest.mark.parametrize(
    "module",
    ["musicrnn.nets", "musicrnn.nets.heads", "musicrnn.nets.ensemble", "musicrnn.midi.io", "musicrnn.representations"],
)
def test_importing_a_lower_layer_loads_neither_lightning_nor_hydra(module):
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert module in loaded
    assert [name for name in loaded if name.split(".")[0] in HEAVY] == []


@pytest.mark.slow
def test_the_training_layer_does_load_lightning():
    """The check above can fail: the same probe finds Lightning where it is imported."""
    code = "import json, sys, musicrnn.training.module; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert "pytorch_lightning" in loaded
