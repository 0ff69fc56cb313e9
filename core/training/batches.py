"""Training batches as a pure function of (seed, step), so a resumed run sees exactly the same data.
A batch names images by index; core.feed turns indices into pixels on the training device.

`ShuffledBatches` walks the train split in a fresh permutation every epoch (VAE, beta-VAE).
`GroupedBatches` builds ModVAE batches out of groups: on ground-truth data each group varies one
random factor and fixes the rest; on real faces each group is one identity.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data.base import DataError, Dataset, GroundTruthData


@dataclass
class Batch:
    index: np.ndarray  # (B,) int64 image indices into the data set (grid indices on ground-truth data)
    groups: np.ndarray | None = None  # (B,) group id, ModVAE only
    fixed: np.ndarray | None = None  # (B, F) bool: factors held fixed within the sample's group


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, step, stream])


class ShuffledBatches:
    def __init__(self, dataset: Dataset, batch_size: int, seed: int):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.train = dataset.indices("train")
        if len(self.train) < batch_size:
            raise DataError(f"{dataset.name}: the train split has {len(self.train)} images, fewer than one "
                            f"batch of {batch_size}: lower --batch-size")
        self.steps_per_epoch = len(self.train) // batch_size
        self._epoch, self._order = -1, None

    def epoch(self, step: int) -> float:
        return step / self.steps_per_epoch

    def __call__(self, step: int) -> Batch:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, step_rng(self.seed, epoch, 1).permutation(self.train)
        return Batch(np.sort(self._order[pos * self.batch_size:(pos + 1) * self.batch_size]))


class GroupedBatches:
    def __init__(self, dataset: Dataset, batch_size: int, group_size: int, seed: int):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.group_size = min(group_size, batch_size)
        if dataset.is_ground_truth:
            self.num_factors = dataset.num_factors
            # Ground-truth batches come from the factor sampler over the whole grid, as in DC-IGN.
            self.steps_per_epoch = max(1, len(dataset.indices("train")) // batch_size)
        else:
            self.num_factors = 1
            self._members = self._identity_groups(dataset)
            self.steps_per_epoch = max(1, sum(len(m) for m in self._members) // batch_size)

    @staticmethod
    def _identity_groups(dataset: Dataset) -> list[np.ndarray]:
        if dataset.identities is None:
            raise DataError(f"ModVAE on {dataset.name} needs identity labels (e.g. identity_CelebA.txt, "
                            "or LFW's per-person folders) to build same-person batches")
        train = dataset.indices("train")
        ids = dataset.identities[train]
        order = np.argsort(ids, kind="stable")
        groups = np.split(train[order], np.flatnonzero(np.diff(ids[order])) + 1)
        groups = [g for g in groups if len(g) >= 2]
        if not groups:
            raise DataError(f"ModVAE on {dataset.name}: no identity has two or more training images")
        return groups

    def epoch(self, step: int) -> float:
        return step / self.steps_per_epoch

    def __call__(self, step: int) -> Batch:
        rng = step_rng(self.seed, step, 2)
        if self.dataset.is_ground_truth:
            return self._factor_batch(rng)
        return self._identity_batch(rng)

    def _factor_batch(self, rng: np.random.Generator) -> Batch:
        data: GroundTruthData = self.dataset
        factors, groups, fixed = [], [], []
        for g, start in enumerate(range(0, self.batch_size, self.group_size)):
            n = min(self.group_size, self.batch_size - start)
            k = int(rng.integers(data.num_factors))
            factors.append(data.sample_one_factor_varying(k, n, rng))
            groups.append(np.full(n, g))
            mask = np.ones((n, data.num_factors), bool)
            mask[:, k] = False
            fixed.append(mask)
        return Batch(data.factors_to_index(np.concatenate(factors)), np.concatenate(groups), np.concatenate(fixed))

    def _identity_batch(self, rng: np.random.Generator) -> Batch:
        index, groups, filled = [], [], 0
        while filled < self.batch_size:
            members = self._members[int(rng.integers(len(self._members)))]
            take = min(len(members), self.group_size, self.batch_size - filled)
            index.append(rng.choice(members, size=take, replace=False))
            groups.append(np.full(take, len(groups)))
            filled += take
        index = np.concatenate(index)
        order = np.argsort(index, kind="stable")  # ascending indices read a memory-mapped cache faster
        groups = np.concatenate(groups)[order]
        return Batch(index[order], groups, np.ones((len(index), 1), bool))


def make_batches(dataset: Dataset, model: str, batch_size: int, group_size: int, seed: int):
    if model == "modvae":
        return GroupedBatches(dataset, batch_size, group_size, seed)
    return ShuffledBatches(dataset, batch_size, seed)
