"""The training samples as a pure function of the global sample index, which is what makes resuming exact."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from pipeline.data.dataset import PairedPatchDataset

__all__ = ["StepSamples"]


class StepSamples(Dataset):
    """Sample ``i`` of the whole run: epoch ``i // n`` of a seeded permutation, with an augmentation seeded by ``i``.

    This makes the data order a function of the global sample index alone, so skipping the first batches on resume
    reproduces an uninterrupted run exactly, whatever the number of processes that consumed them.
    """

    def __init__(self, base: PairedPatchDataset, total: int, seed: int):
        self.base, self.total, self.seed = base, total, seed
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, i: int):
        epoch, j = divmod(i, len(self.base))
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.base))}
        return self.base.sample(int(self._perms[epoch][j]), seed=self.seed * 1_000_003 + i)
