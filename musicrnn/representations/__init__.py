"""Layer 2: music <-> tensors. Note events (pitch, step, duration) and binary piano rolls, each behind the
`Representation` protocol (base.py). No training code, no Lightning, no Hydra."""

from musicrnn.representations.base import Representation
from musicrnn.representations.notes import NoteEvents
from musicrnn.representations.pianoroll import PianoRoll

# Every representation by its name (what checkpoints, data modules and model builders refer to).
REPRESENTATIONS: dict[str, type] = {cls.name: cls for cls in (NoteEvents, PianoRoll)}

__all__ = ["REPRESENTATIONS", "NoteEvents", "PianoRoll", "Representation"]
