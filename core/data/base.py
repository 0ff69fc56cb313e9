"""The one interface every data set in LatentLab implements.

A data set is N images of shape (3, 64, 64), uint8, addressed by integer index.
Images may live in memory, in a memory-mapped cache file, or be rendered on demand
(ground-truth data sets): callers only ever ask for a batch by index.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SIZE = 64
SPLITS = {"train": 0, "val": 1, "test": 2}
WHERE_MASKS_COME_FROM = ("SynthFaces renders them; for CelebA, LFW or an image folder add a CelebAMask-HQ-mask-anno/ "
                         "folder to the data root (README, Masked edits)")


class DataError(ValueError):
    """Bad data input: the message names the path and what to do about it."""


def read_text(path: Path, what: str) -> str:
    """A small text file's content (UTF-8, a byte-order mark allowed); unreadable ones raise DataError."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a UTF-8 text file (bad byte at offset {e.start}); is it really {what}?") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read {what} ({e.strerror})") from None


@dataclass(frozen=True)
class Attributes:
    """Binary attributes, CelebA-style names, one row per image."""

    names: list[str]
    values: np.ndarray  # (N, A) bool

    def column(self, name: str) -> np.ndarray:
        """The (N,) bool values of attribute `name`; KeyError, listing the known names, for an unknown one."""
        if name not in self.names:
            raise KeyError(f"unknown attribute {name!r}; known: {', '.join(self.names)}")
        return self.values[:, self.names.index(name)]


class Dataset:
    """Base class. Subclasses set `name`, `attributes`, `split`, `identities` and implement `images`."""

    name: str = "dataset"
    attributes: Attributes
    split: np.ndarray  # (N,) int8: 0 train, 1 val, 2 test
    identities: np.ndarray | None = None  # (N,) int64 person ids where known
    version: str = ""  # of a generated data set's renderer, recorded in eval.json: scores of two versions differ

    def __len__(self) -> int:
        return len(self.split)

    def images(self, index: np.ndarray) -> np.ndarray:
        """uint8 array (len(index), 3, 64, 64) for the given indices."""
        raise NotImplementedError

    def indices(self, split: str) -> np.ndarray:
        """Indices of one split ('train', 'val', 'test') or all of them ('all')."""
        if split == "all":
            return np.arange(len(self))
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; use one of train, val, test, all")
        return np.flatnonzero(self.split == SPLITS[split])

    @property
    def is_ground_truth(self) -> bool:
        """Whether the images are rendered from known factor levels (GroundTruthData); False here."""
        return False

    def attribute_factor(self, name: str) -> str:
        """The generative factor attribute `name` is read from; without known factors, each attribute is its own."""
        return name

    @property
    def has_masks(self) -> bool:
        """Whether `masks` gives foreground masks (SynthFaces renders them; real data sets read a mask folder)."""
        return False

    def masks(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Foreground (person) masks: uint8 (n, 1, 64, 64), 255 on the person, and (n,) bool: which images have one."""
        raise DataError(f"{self.name} has no person masks: {WHERE_MASKS_COME_FROM}")


def random_split(n: int, seed: int, fractions=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Deterministic train/val/test assignment for data sets without an official split."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    return np.where(u < fractions[0], 0, np.where(u < fractions[0] + fractions[1], 1, 2)).astype(np.int8)


class GroundTruthData(Dataset):
    """A data set generated from discrete factors (disentanglement_lib's GroundTruthData).

    The images are the full Cartesian grid of factor levels, in mixed-radix order
    (last factor fastest), rendered on demand by `images_from_factors`.
    """

    factor_names: list[str]
    factor_sizes: list[int]

    @property
    def is_ground_truth(self) -> bool:
        """True: every image comes from known factor levels, so the factor-based metrics apply."""
        return True

    @property
    def num_factors(self) -> int:
        """F, the number of generative factors."""
        return len(self.factor_sizes)

    def _strides(self) -> np.ndarray:
        sizes = np.asarray(self.factor_sizes, dtype=np.int64)
        return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])

    def index_to_factors(self, index: np.ndarray) -> np.ndarray:
        """(n, F) int64 factor levels of (n,) image indices; the inverse of `factors_to_index`."""
        index = np.asarray(index, dtype=np.int64)
        return (index[:, None] // self._strides()) % np.asarray(self.factor_sizes)

    def factors_to_index(self, factors: np.ndarray) -> np.ndarray:
        """(n,) int64 image indices of (n, F) factor levels, in the grid's mixed-radix order."""
        return np.asarray(factors, dtype=np.int64) @ self._strides()

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, F) int64 factor levels drawn uniformly and independently."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1)

    def sample_one_factor_varying(self, factor: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, F) factors: `factor` drawn at random per row, every other factor fixed for the batch."""
        fixed = self.sample_factors(1, rng)
        out = np.repeat(fixed, n, axis=0)
        out[:, factor] = rng.integers(0, self.factor_sizes[factor], size=n)
        return out

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 3, 64, 64) rendered from (n, F) factor levels."""
        raise NotImplementedError

    def render(self, factors: np.ndarray) -> np.ndarray:
        """Alias of `images_from_factors`: uint8 (n, 3, 64, 64) images of (n, F) factor levels."""
        return self.images_from_factors(factors)

    def images(self, index: np.ndarray) -> np.ndarray:
        """uint8 (len(index), 3, 64, 64), rendered from the factor levels of the given indices."""
        return self.images_from_factors(self.index_to_factors(index))

    def attributes_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """(n, A) bool attribute rows derived from factors (names in `attributes.names`)."""
        raise NotImplementedError
