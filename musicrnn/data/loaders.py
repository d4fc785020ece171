"""The three DataLoaders of a DataModule that keeps one Dataset per split in `self.datasets`."""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import DataLoader


class SplitLoaders:
    """Mixin: train (shuffled), val and test loaders over `self.datasets[split]`, with `self.batch_size`,
    `self.num_workers` and the class's `collate_fn` (None: torch's default)."""

    collate_fn: Callable | None = None
    datasets: dict
    batch_size: int
    num_workers: int

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
