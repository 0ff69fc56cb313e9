"""Real-image data sets on top of the decode-once cache: files, their attribute rows, skipped files reported."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from core.data.base import Attributes, DataError, Dataset
from core.data.cache import load_or_build
from core.data.decode import SquareCrop
from core.data.masks import Masks, load_masks


def lookup(files: Sequence[str], row_of: dict[str, int], table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `table` for `files` (via `row_of`: file -> row) and a mask of the files that
    have one; rows of files without one are zero / False."""
    index = np.fromiter((row_of.get(file, -1) for file in files), dtype=np.int64, count=len(files))
    found = index >= 0
    values = np.zeros((len(files), *table.shape[1:]), dtype=table.dtype)
    values[found] = table[index[found]]
    return values, found


@dataclass(frozen=True)
class AttributeTable:
    """Binary attributes as read from a file, before they are matched to decoded images."""

    source: Path
    names: list[str]
    row_of: dict[str, int]  # image file (relative to the image folder) -> row
    values: np.ndarray  # (rows, A) bool


class CachedImageDataset(Dataset):
    """A Dataset whose pixels come from a decode-once cache; subclasses set the metadata.

    Subclasses call `super().__init__()`, set `root`, then `_decode` or `_decode_labelled`.
    `summary` collects what the user should know about their data (skipped files, partial
    downloads, fallbacks); each such note is also logged.
    """

    crop: SquareCrop
    root: Path  # the data set folder, as resolved from what the user passed
    has_attributes: np.ndarray  # (N,) bool: the image has a row in the attribute file
    _pixels: np.ndarray | None = None
    _masks: Masks | None = None  # set by _decode when the data root holds a mask folder

    def __init__(self) -> None:
        self.notes: list[str] = []

    def _decode(self, image_root: Path, files: Sequence[str], cache_dir, progress: bool) -> None:
        self.cache = load_or_build(image_root, files, self.crop, tag=self.name,
                                   cache_dir=cache_dir, progress=progress)
        self._masks = load_masks(self.root, self.files, self.crop, cache_dir)
        if self._masks is not None:
            self._note(f"foreground masks for {int(self._masks.known.sum())} of the {len(self.files)} images from "
                       f"{self._masks.source}", level=logging.INFO)
        if self.cache.failed:
            self._note(f"{len(self.cache.failed)} file(s) could not be decoded and were skipped, "
                       f"e.g. {self.cache.failed[0][0]} ({self.cache.failed[0][1]})")

    def _decode_labelled(self, files: Sequence[str], cache_dir, progress: bool, labels: AttributeTable | None,
                         hint: str) -> None:
        """`_decode` plus attributes from `labels`; images without a row keep all-False attributes."""
        if labels is None:
            self._decode(self.root, files, cache_dir, progress)
            self.attributes = Attributes([], np.zeros((len(self.files), 0), dtype=bool))
            self.has_attributes = np.zeros(len(self.files), dtype=bool)
            return
        if not any(file in labels.row_of for file in files):  # before decoding: fail in seconds
            raise DataError(f"none of the {len(labels.row_of)} rows of {labels.source} names one of the {len(files)} "
                            f"images in {self.root}: the rows name e.g. {list(labels.row_of)[:3]}, the images are "
                            f"e.g. {list(files)[:3]}; {hint}")
        self._decode(self.root, files, cache_dir, progress)
        values, self.has_attributes = lookup(self.files, labels.row_of, labels.values)
        self.attributes = Attributes(labels.names, values)
        unlabelled = len(self.files) - int(self.has_attributes.sum())
        if unlabelled:
            self._note(f"{unlabelled} of the {len(self.files)} images have no row in {labels.source}: their "
                       "attributes are all False (has_attributes marks the labelled ones)")
        kept = set(self.files)
        unmatched = [file for file in labels.row_of if file not in kept]
        if unmatched:
            self._note(f"{len(unmatched)} of the {len(labels.row_of)} rows of {labels.source} name no image in "
                       f"{self.root} (or one that could not be decoded) and are ignored, e.g. {unmatched[:3]}")

    def _note(self, message: str, level: int = logging.WARNING) -> None:
        logging.getLogger(type(self).__module__).log(level, "%s: %s", self.name, message)
        self.notes.append(message)

    @property
    def files(self) -> list[str]:
        """Image file of each row, relative to the image folder."""
        return self.cache.files

    @property
    def skipped_count(self) -> int:
        """Files that exist but could not be decoded (corrupt, truncated, not an image)."""
        return len(self.cache.failed)

    @property
    def summary(self) -> str:
        """What the user should know about the data: image count, cache file, then one line per note."""
        return "\n".join([f"{self.name}: {len(self)} images, cache {self.cache.path}", *self.notes])

    @property
    def has_masks(self) -> bool:
        """Whether the data root holds a mask folder (core.data.masks)."""
        return self._masks is not None

    def masks(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows' foreground masks, uint8 (n, 1, 64, 64), and which have one (see `Dataset.masks`)."""
        if not self.has_masks:
            return super().masks(index)
        return self._masks.rows(index)

    def images(self, index: np.ndarray) -> np.ndarray:
        """uint8 (len(index), 3, 64, 64) copied from the memory-mapped cache, opened on first use."""
        if self._pixels is None:
            self._pixels = self.cache.open()
        return np.ascontiguousarray(self._pixels[np.asarray(index, dtype=np.int64)])

    def __getstate__(self) -> dict:
        # Pickling a memmap copies all its pixels (e.g. into DataLoader workers); reopen instead.
        state = self.__dict__.copy()
        state.pop("_pixels", None)
        return state

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images from {self.cache.path})"
