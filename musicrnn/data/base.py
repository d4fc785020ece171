"""The DataModule base every representation's data modules share: one Dataset per split in
`self.datasets`, the three loaders over them, and what the rest of the framework asks of any data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader


class SequenceDataModule(pl.LightningDataModule):
    """Train (shuffled), val and test loaders over `self.datasets[split]`, with `self.batch_size`,
    `self.num_workers` and the class's `collate_fn` (None: torch's default). Subclasses fill
    `self.datasets` in `setup`, and provide:

    - `representation_name`: the representation their tensors are in (`musicrnn.representations`), matched
      against the model's before anything is built;
    - `pieces(split)`: the note arrays of a split (what evaluation compares generated music with);
    - `primers()`: held-out openings, stored in checkpoints for generation.
    """

    representation_name: str
    collate_fn: Callable | None = None
    datasets: dict
    batch_size: int
    num_workers: int

    def pieces(self, split: str) -> list[np.ndarray]:
        raise NotImplementedError

    def primers(self) -> list[np.ndarray]:
        raise NotImplementedError

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
