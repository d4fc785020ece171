from musicrnn.data.corpus import PreparedCorpus, prepare_corpus
from musicrnn.data.datamodule import BachChoralesDataModule, NoteSequenceDataModule, NoteWindowDataset
from musicrnn.data.split import split_pieces

__all__ = [
    "BachChoralesDataModule",
    "NoteSequenceDataModule",
    "NoteWindowDataset",
    "PreparedCorpus",
    "prepare_corpus",
    "split_pieces",
]
