"""Representations and how the metrics sample them (disentanglement_lib's evaluation/metrics/utils.py).

A *representation* is any function from uint8 images (n, 3, 64, 64) to codes (n, D), as in disentanglement_lib:
a model's encoder means, or in the sanity tests the true factors read back from the images, or noise.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from core.data import GroundTruthData
from core.models.vae import VAE
from core.device import INFERENCE_BATCH, to_float

Representation = Callable[[np.ndarray], np.ndarray]

# Images rendered per representation call: bounds memory (64x64x3 uint8 is 12 KB an image) whatever the caller asks.
# 256, not more: SynthFaces' float32 colour weights of a chunk (25 MB) then stay below glibc's highest mmap threshold
# and are reused; 1,024 mapped 100 MB of fresh pages a call, and rendering spent more system time than computing.
RENDER_CHUNK = 256


def encoder_means(model: VAE, batch_size: int = INFERENCE_BATCH) -> Representation:
    """The representation of a trained model: its posterior means, float32, computed in batches."""
    device = next(model.parameters()).device

    @torch.inference_mode()
    def represent(images: np.ndarray) -> np.ndarray:
        out = [model.encode(to_float(images[i:i + batch_size], device))[0].float().cpu().numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, model.latent_dim), np.float32)

    return represent


class CachedRepresentation:
    """A deterministic representation memoised per grid cell of a ground-truth data set.

    The metrics of disentanglement_lib ask for millions of images (the beta-VAE metric alone pairs
    2 x 64 images per point, 15,000 points) but a grid like SynthFaces has only 86,400 distinct images:
    each is rendered and encoded once. Only valid for deterministic representations (encoder means);
    a noise representation must not be cached, or noise would become a lookup table of the cells.
    """

    def __init__(self, data: GroundTruthData, representation: Representation):
        self.data, self.representation = data, representation
        self.keys = np.zeros(0, np.int64)  # sorted grid indices already encoded
        self.values: np.ndarray | None = None  # their codes, same order

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.representation(images)

    @property
    def cached(self) -> int:
        """How many distinct grid cells have been rendered and encoded so far."""
        return len(self.keys)

    def codes(self, factors: np.ndarray) -> np.ndarray:
        """Codes (n, D) of the images of `factors` (n, F), rendering and encoding only unseen cells."""
        cells, inverse = np.unique(self.data.factors_to_index(factors), return_inverse=True)
        new = cells[~self._known(cells)]
        if len(new):
            codes = _render_and_represent(self.data, self.representation, self.data.index_to_factors(new))
            keys = np.concatenate([self.keys, new])
            values = codes if self.values is None else np.concatenate([self.values, codes])
            order = np.argsort(keys, kind="stable")
            self.keys, self.values = keys[order], values[order]
        return self.values[np.searchsorted(self.keys, cells)][inverse.ravel()]

    def _known(self, cells: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return np.zeros(len(cells), bool)
        pos = np.minimum(np.searchsorted(self.keys, cells), len(self.keys) - 1)
        return self.keys[pos] == cells


def represent(data: GroundTruthData, representation: Representation, factors: np.ndarray) -> np.ndarray:
    """Codes (n, D) of the images of `factors` (n, F), through the cache when the representation has one."""
    if isinstance(representation, CachedRepresentation):
        return representation.codes(factors)
    return _render_and_represent(data, representation, factors)


def _render_and_represent(data: GroundTruthData, representation: Representation, factors: np.ndarray) -> np.ndarray:
    chunks = [np.asarray(representation(data.images_from_factors(factors[i:i + RENDER_CHUNK])))
              for i in range(0, len(factors), RENDER_CHUNK)]
    return np.concatenate(chunks)


def sample_codes(data: GroundTruthData, representation: Representation, n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n i.i.d. grid points: codes (n, D) and their factor levels (n, F) (dlib's generate_batch_factor_code,
    untransposed: rows are points here)."""
    factors = data.sample_factors(n, rng)
    return represent(data, representation, factors), factors
