"""2-D maps of latent means: PCA (instant) and UMAP (seeded, reproducible)."""
from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


FORMAT = "umap-1"  # part of the cache key: bump it when the computation changes


Progress = Callable[[str, "float | None"], None]


class EmbedError(ValueError):
    """Bad embedding parameters or too little data; the message says what to change."""


def pca_2d(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) float32 coordinates on the two main axes of `mu` (N, D), and the fraction of the variance each
    explains. Signs are fixed (largest loading positive) so the map does not flip between runs."""
    mu = np.asarray(mu, dtype=np.float64)
    n, d = mu.shape
    coords, explained = np.zeros((n, 2), np.float32), np.zeros(2)
    if n < 2:
        return coords, explained
    centred = mu - mu.mean(axis=0)
    # Eigenvectors of the D x D scatter matrix: the same axes as an SVD of the data, ~10x faster for N >> D.
    variances, vectors = np.linalg.eigh(centred.T @ centred)
    variances, vectors = np.clip(variances[::-1], 0, None), vectors[:, ::-1]
    k = min(2, d)
    axes = vectors[:, :k].T
    axes *= np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])[:, None]
    coords[:, :k] = centred @ axes.T
    if variances.sum() > 0:
        explained[:k] = variances[:k] / variances.sum()
    return coords, explained


@dataclass(frozen=True)
class UmapParams:
    """UMAP settings (validated: EmbedError when out of range); equal settings give the same map."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.n_neighbors <= 200:
            raise EmbedError(f"UMAP n_neighbors is {self.n_neighbors}; use 2 to 200 (15 is the usual choice)")
        if not 0.0 <= self.min_dist <= 1.0:
            raise EmbedError(f"UMAP min_dist is {self.min_dist}; use 0 to 1 (0.1 is the usual choice)")

    @property
    def key(self) -> str:
        """10 hex digits naming these settings (and FORMAT) in a cached map's file name."""
        text = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def umap_2d(mu: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
            progress: Progress | None = None) -> np.ndarray:
    """(N, 2) float32 UMAP of `mu`. Seeded, hence single-threaded and reproducible. `progress(stage, fraction)`
    hears the stages and the layout epochs."""
    mu = np.asarray(mu, dtype=np.float32)
    if len(mu) < 4:
        raise EmbedError(f"UMAP needs at least 4 points, got {len(mu)}; choose a larger count")
    report = progress or (lambda stage, fraction: None)
    report("loading UMAP", None)
    import umap  # imported here: the import alone takes seconds, and PCA-only users never pay it

    report("nearest neighbours (a fresh process first compiles numba: tens of seconds)", None)
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(mu) - 1), min_dist=min_dist, random_state=seed,
                        tqdm_kwds={"disable": progress is None, "file": _EpochTap(report),
                                   "bar_format": "{n}/{total}", "mininterval": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state" and similar notices
        coords = reducer.fit_transform(mu)
    return np.asarray(coords, dtype=np.float32)


class _EpochTap(io.TextIOBase):
    """A file for UMAP's tqdm bar (formatted "{n}/{total}") that turns its updates into progress calls."""

    def __init__(self, report: Progress):
        self.report = report

    def write(self, text: str) -> int:
        counts = re.findall(r"(\d+)/(\d+)", text)
        if counts:
            done, total = map(int, counts[-1])
            self.report("layout epochs", done / max(total, 1))
        return len(text)
