"""Training images as float tensors on the training device, so data never limits a GPU run.

Resident (on CUDA when the data set fits in half the free GPU memory): every image is copied once into GPU
memory as uint8 and each batch is gathered there; a step costs the host one small index copy and no sync.
Streamed (CPU, or a data set too large to be resident): the next batch is read on a background thread while
the current one trains, and on CUDA it travels from pinned memory asynchronously.
Either way the pixels are a function of the batch's indices only, so both feeds give the same numbers.
A conditional family's feed also carries each image's attribute row (core.training.conditions), gathered with the
same indices: resident rows are one float tensor on the device, streamed rows travel with their images. A mask
head's feed carries each image's person mask and whether it has one the same way (uint8, like the images).
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from core.device import as_float, staged
from core.training.batches import Batch
from core.data import Dataset
from core.data.base import IMAGE_SIZE, WHERE_MASKS_COME_FROM, DataError

logger = logging.getLogger(__name__)

_FILL_CHUNK = 4096


Masks = tuple[torch.Tensor, torch.Tensor]  # float (B, 1, 64, 64) in [0, 1], bool (B,): which rows have a mask


def needs_masks(model_masks: bool, recon_region: str, dataset: Dataset) -> bool:
    """Whether training must feed person masks; DataError naming the fix when it must and the data set has none."""
    if not (model_masks or recon_region == "person"):
        return False
    if not dataset.has_masks:
        asked = "--mask-head" if model_masks else "--recon-region person"
        raise DataError(f"{asked} needs person masks and the {dataset.name} data set has none: "
                        f"{WHERE_MASKS_COME_FROM}")
    return True


def _masks(rows: torch.Tensor | None) -> Masks | None:
    """The (mask, known) pair of uint8 (B, 2, 64, 64) rows made by Feed._mask_rows, on their device."""
    if rows is None:
        return None
    return as_float(rows[:, :1]), rows[:, 1, 0, 0] > 0


def fits_on_device(n_images: int, device: torch.device, channels: int = 3) -> bool:
    """Half the free memory for the images (uint8, `channels` planes each) leaves the other half to activations and
    the optimizer."""
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    return n_images * channels * IMAGE_SIZE * IMAGE_SIZE <= free // 2


def resident_images(dataset: Dataset, device: torch.device, progress: bool = False,
                    read: Callable[[np.ndarray], np.ndarray] | None = None, channels: int = 3) -> torch.Tensor:
    """All of `dataset` as one uint8 (N, 3, 64, 64) tensor on `device` (or what `read` gives of each index, with
    `channels` channels), filled chunk by chunk by all cores (rendered data sets render in parallel: their numpy
    work releases the GIL)."""
    read = read or dataset.images
    store = torch.empty((len(dataset), channels, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8, device=device)
    starts = range(0, len(dataset), _FILL_CHUNK)

    def load(start: int) -> tuple[int, torch.Tensor]:
        return start, staged(read(np.arange(start, min(start + _FILL_CHUNK, len(dataset)))), device)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool, \
            tqdm(total=len(dataset), disable=not progress, unit="img", desc=f"{dataset.name} -> {device}") as bar:
        for start, chunk in pool.map(load, starts):
            store[start:start + len(chunk)].copy_(chunk, non_blocking=True)
            bar.update(len(chunk))
    return store


class Feed:
    """`feed(step)` -> (batch, float images in [0, 1] on `device`); `feed.fetch(step)` adds the batch's
    conditions y, float (B, A) on `device`, when the feed was given `conditions` (else None), and its masks
    (float (B, 1, 64, 64) in [0, 1], bool (B,) known) when it was made with `masks` (else None)."""

    def __init__(self, dataset: Dataset, batches: Callable[[int], Batch], device: torch.device,
                 resident: bool | None = None, progress: bool = False, conditions: np.ndarray | None = None,
                 masks: bool = False):
        self.dataset, self.batches, self.device = dataset, batches, device
        if resident is None:
            resident = fits_on_device(len(dataset), device, 3 + 2 * masks)  # masks: 2 planes (see _mask_rows)
        self.store = resident_images(dataset, device, progress) if resident else None
        self.conditions = conditions  # (N, A) float32 host rows, or None
        self.condition_store = (torch.from_numpy(conditions).to(device)
                                if resident and conditions is not None else None)
        self.masks = masks
        self.mask_store = None
        if resident and masks:  # the mask, then "has a mask" as 255 in every pixel of a second channel
            self.mask_store = resident_images(dataset, device, read=self._mask_rows, channels=2)
        self._pool = None if resident else ThreadPoolExecutor(max_workers=1, thread_name_prefix="feed")
        self._next: tuple[int, Future] | None = None
        logger.info("data feed: %s", self.describe())

    def describe(self) -> str:
        """How the images reach the device, for the log: resident (with its GiB) or streamed with read-ahead."""
        if self.store is not None:
            return f"resident on {self.device} ({self.store.numel() / 2**30:.2f} GiB uint8)"
        return f"streamed to {self.device} with one batch read ahead"

    def __call__(self, step: int) -> tuple[Batch, torch.Tensor]:
        batch, x, _, _ = self.fetch(step)
        return batch, x

    def fetch(self, step: int) -> tuple[Batch, torch.Tensor, torch.Tensor | None, Masks | None]:
        """(batch, images, conditions, masks) of `step`: conditions are the batch's attribute rows, float (B, A)
        on the device, gathered with the images' indices (no host sync), or None for a feed without conditions;
        masks likewise (see the class doc)."""
        if self.store is not None:
            batch = self.batches(step)
            index = torch.from_numpy(batch.index).to(self.device, non_blocking=True)
            y = None if self.condition_store is None else self.condition_store.index_select(0, index)
            m = None if self.mask_store is None else self.mask_store.index_select(0, index)
            return batch, as_float(self.store.index_select(0, index)), y, _masks(m)
        pending, self._next = self._next, None
        ahead = pending[1].result() if pending else None  # always waited for: the batch sampler is not thread-safe
        batch, images, y, m = ahead if pending and pending[0] == step else self._read(step)
        self._next = (step + 1, self._pool.submit(self._read, step + 1))
        y, m = (None if t is None else t.to(self.device, non_blocking=True) for t in (y, m))
        return batch, as_float(images.to(self.device, non_blocking=True)), y, _masks(m)

    def _read(self, step: int) -> tuple[Batch, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        batch = self.batches(step)
        y = None if self.conditions is None else staged(self.conditions[batch.index], self.device)
        m = staged(self._mask_rows(batch.index), self.device) if self.masks else None
        return batch, staged(self.dataset.images(batch.index), self.device), y, m

    def _mask_rows(self, index: np.ndarray) -> np.ndarray:
        """uint8 (n, 2, 64, 64): each image's mask and, as 255 or 0 everywhere, whether it has one."""
        masks, known = self.dataset.masks(index)
        flags = np.broadcast_to((known * np.uint8(255))[:, None, None, None], masks.shape)
        return np.concatenate([masks, flags], axis=1)

    def close(self) -> None:
        """Stop the read-ahead thread of a streamed feed and drop its pending batch; a resident feed has none."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._next = None
