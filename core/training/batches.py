"""Training batches as a pure function of (seed, step), so a resumed run sees exactly the same data.
A batch names images by index; core.feed turns indices into pixels on the training device.

`ShuffledBatches` walks the train split in a fresh permutation every epoch (VAE, beta-VAE).
`GroupedBatches` builds ModVAE batches out of groups: on ground-truth data each group varies one
random factor and fixes the rest; on real faces each group is one identity. Every group holds exactly
`group_size` contiguous rows (group g is rows g*S .. g*S+S-1), so group statistics are a reshape and a mean
(core.models.modvae.Clamp) and a torchrun rank's contiguous slice of whole groups never splits one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.config import ConfigError, RunConfig
from core.data.base import DataError, Dataset, GroundTruthData
from core.models.family import FAMILIES


@dataclass
class Batch:
    """One training batch as image indices (the feed adds pixels), plus group ids and fixed factors for ModVAE."""

    index: np.ndarray  # (B,) int64 image indices into the data set (grid indices on ground-truth data)
    groups: np.ndarray | None = None  # (B,) group id, ModVAE only: contiguous groups of equal size, 0, 0, .., 1, 1, ..
    fixed: np.ndarray | None = None  # (B, F) bool: factors held fixed within the sample's group


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """A numpy Generator that is a pure function of (seed, step, stream); `stream` keeps independent uses apart."""
    return np.random.default_rng([seed, step, stream])


class ShuffledBatches:
    """`batches(step)`: `batch_size` sorted train indices; a new seeded permutation per epoch, its remainder dropped."""

    group_size = 1  # rows are independent: any slice of a batch is whole "groups"

    def __init__(self, dataset: Dataset, batch_size: int, seed: int):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.train = dataset.indices("train")
        if len(self.train) < batch_size:
            raise DataError(f"{dataset.name}: the train split has {len(self.train)} images, fewer than one "
                            f"batch of {batch_size}: lower --batch-size")
        self.steps_per_epoch = len(self.train) // batch_size
        self._epoch, self._order = -1, None

    def epoch(self, step: int) -> float:
        """Passes over the train split after `step` steps, fractional: step / steps_per_epoch."""
        return step / self.steps_per_epoch

    def __call__(self, step: int) -> Batch:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._order = epoch, step_rng(self.seed, epoch, 1).permutation(self.train)
        return Batch(np.sort(self._order[pos * self.batch_size:(pos + 1) * self.batch_size]))


class GroupedBatches:
    """`batches(step)`: ModVAE batches of `num_groups` groups of `group_size` rows, each one varied factor or person."""

    def __init__(self, dataset: Dataset, batch_size: int, group_size: int, seed: int):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.group_size = min(group_size, batch_size)
        if batch_size % self.group_size:
            raise DataError(f"ModVAE batches are made of whole groups: --batch-size {batch_size} is not a multiple of "
                            f"--group-size {group_size}; use --batch-size "
                            f"{max(self.group_size, batch_size // self.group_size * self.group_size)} or a group size "
                            f"that divides {batch_size}")
        self.num_groups = batch_size // self.group_size
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
        """Passes over the train split after `step` steps, fractional: step / steps_per_epoch."""
        return step / self.steps_per_epoch

    def __call__(self, step: int) -> Batch:
        rng = step_rng(self.seed, step, 2)
        if self.dataset.is_ground_truth:
            return self._factor_batch(rng)
        return self._identity_batch(rng)

    def _factor_batch(self, rng: np.random.Generator) -> Batch:
        data: GroundTruthData = self.dataset
        factors, fixed, n = [], [], self.group_size
        for _ in range(self.num_groups):
            k = int(rng.integers(data.num_factors))
            factors.append(data.sample_one_factor_varying(k, n, rng))
            mask = np.ones((n, data.num_factors), bool)
            mask[:, k] = False
            fixed.append(mask)
        return Batch(data.factors_to_index(np.concatenate(factors)), self._group_ids(), np.concatenate(fixed))

    def _identity_batch(self, rng: np.random.Generator) -> Batch:
        """`num_groups` random people, `group_size` of their images each. A person with fewer images than that
        contributes all of them, cycled (each repeated as evenly as possible), so every group has the same size."""
        index = []
        for _ in range(self.num_groups):
            members = self._members[int(rng.integers(len(self._members)))]
            take = np.resize(rng.permutation(members), self.group_size)
            index.append(np.sort(take))  # ascending within a group: a memory-mapped cache reads it faster
        index = np.concatenate(index)
        return Batch(index, self._group_ids(), np.ones((len(index), 1), bool))

    def _group_ids(self) -> np.ndarray:
        return np.repeat(np.arange(self.num_groups), self.group_size)


def make_batches(dataset: Dataset, model: str, batch_size: int, group_size: int, seed: int):
    """The batch order a model family trains on: one-factor groups for grouped families, else shuffled images."""
    if FAMILIES[model].grouped:
        return GroupedBatches(dataset, batch_size, group_size, seed)
    return ShuffledBatches(dataset, batch_size, seed)


def steps_for_epochs(config: RunConfig, epochs: float, dataset: Dataset) -> int:
    """Optimizer steps for `epochs` passes over `dataset`'s train split with `config`'s batches."""
    if not (isinstance(epochs, (int, float)) and 0 < epochs <= 1e6):
        raise ConfigError(f"epochs = {epochs!r}: must be between 0 (excluded) and 1e+06 (--epochs)")
    batches = make_batches(dataset, config.model, config.train.batch_size, config.modvae.group_size, 0)
    return max(1, round(epochs * batches.steps_per_epoch))
