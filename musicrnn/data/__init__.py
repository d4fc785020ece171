from musicrnn.data.base import SequenceDataModule
from musicrnn.data.corpus import PreparedCorpus, prepare_corpus
from musicrnn.data.datamodule import BachChoralesDataModule, NoteSequenceDataModule, NoteWindowDataset
from musicrnn.data.pianoroll_data import (
    PianoRollDataModule,
    PianoRollDataset,
    PianoRollMidiDataModule,
    PianoRollPickleDataModule,
    load_pianoroll_pickle,
)
from musicrnn.data.split import split_pieces

__all__ = [
    "SequenceDataModule",
    "BachChoralesDataModule",
    "NoteSequenceDataModule",
    "NoteWindowDataset",
    "PianoRollDataModule",
    "PianoRollDataset",
    "PianoRollMidiDataModule",
    "PianoRollPickleDataModule",
    "load_pianoroll_pickle",
    "PreparedCorpus",
    "prepare_corpus",
    "split_pieces",
]
