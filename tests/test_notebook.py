"""notebooks/quickstart.ipynb executes top to bottom (on a tiny configuration), so it never rots."""

from __future__ import annotations

import base64
import json

import nbformat
import pytest
from nbclient import NotebookClient

from musicrnn.midi.audio import audio_unavailable_reason
from tests.helpers import REPO, write_corpus

pytestmark = pytest.mark.slow


def test_quickstart_notebook_trains_generates_plots_and_plays(tmp_path):
    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    (parameters,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    corpus = write_corpus(tmp_path / "corpus", num_pieces=12)
    overrides = [
        "data=midi_dir",
        f"data.path={corpus}",
        "data.seq_len=16",
        "model.hidden_size=16",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
    ]
    parameters.source = (
        f"OVERRIDES = {json.dumps(overrides)}\nNUM_NOTES = 40\nRUN_DIR = {json.dumps(str(tmp_path / 'run'))}\n"
    )

    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [base64.b64decode(o.data["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3 and all(image[:4] == b"\x89PNG" and len(image) > 5000 for image in images)
    text = "".join(o.get("text", "") for o in outputs) + "".join(
        str(o.get("data", {}).get("text/plain", "")) for o in outputs
    )
    assert "40 notes" in text and "novelty_mean" in text
    if audio_unavailable_reason() is None:
        assert any("<audio" in o.get("data", {}).get("text/html", "") for o in outputs)
    assert (tmp_path / "run" / "quickstart.mid").is_file()
