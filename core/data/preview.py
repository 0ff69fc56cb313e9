"""Picture of a data set: for ground-truth data one row per factor sweeping its levels, then random images."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.config import DataConfig
from core.data import GroundTruthData, load_dataset
from core.data.images import grid, save_png


def factor_sweeps(data: GroundTruthData, base: np.ndarray, width: int) -> np.ndarray:
    """(F*width, 3, 64, 64): row k shows factor k stepping through (up to `width` of) its levels."""
    rows = []
    for k, size in enumerate(data.factor_sizes):
        factors = np.repeat(base[None], width, axis=0)
        factors[:, k] = np.round(np.linspace(0, size - 1, width)).astype(int) if size > width else np.arange(width) % size
        images = data.images_from_factors(factors)
        if size < width:
            images[size:] = 255  # blank the tiles past the factor's last level
        rows.append(images)
    return np.concatenate(rows)


def preview(name: str, out: Path, root: str | None = None, width: int = 8, seed: int = 0) -> Path:
    """Write a PNG grid of data set `name` to `out`: factor sweeps (ground-truth data only), then random images."""
    data = load_dataset(DataConfig(name, root))
    rng = np.random.default_rng(seed)
    random = data.images(np.sort(rng.choice(len(data), size=2 * width, replace=False)))
    if isinstance(data, GroundTruthData):
        base = data.sample_factors(1, rng)[0]
        random = np.concatenate([factor_sweeps(data, base, width), random])
    return save_png(out, grid(random, width), scale=2)
