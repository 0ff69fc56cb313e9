"""2-D maps of latent means: PCA (instant) and UMAP (seeded, reproducible).

A fresh process spends most of a UMAP compiling numba, so the compiled code is cached on disk in
numba_cache_dir() ($LATENTLAB_CACHE/numba, else ~/.cache/latentlab/numba): the first UMAP on a machine (or after a
numba, umap-learn or pynndescent upgrade) compiles for about half a minute, later processes load the code in a
second or two. Deleting the folder is always safe; a damaged cache is cleared and compiled again rather than failing
the map.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sys
import traceback
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from core.data.cache import default_cache_dir


FORMAT = "umap-2"  # part of the cache key: bump it when the computation changes
# Layout epochs: UMAP's own choice above 10,000 points. Its 500 below that cost 2.5x the time for the same
# trustworthiness on 10,000 latent means (0.963 at 200 epochs from a PCA start; issue 14).
EPOCHS = 200
# Exact neighbours (sklearn, brute force) up to here: 0.7 s of CPU for 10,000 points, but growing as N². Above it,
# pynndescent's approximate search, whose ~40 s compile cannot be cached (numba: "uses dynamic globals").
EXACT_NEIGHBOURS_UP_TO = 100_000
# (module, name) of the functions a fit compiles that umap-learn does not mark cache=True: without a cache given
# here, every fresh process would compile them again (~10 s of CPU).
UNCACHED = [("umap.umap_", "smooth_knn_dist"), ("umap.umap_", "compute_membership_strengths"),
            ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"), ("umap.distances", "euclidean")]


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
    """(N, 2) float32 UMAP of `mu`: exact neighbours (up to EXACT_NEIGHBOURS_UP_TO points), a PCA start and EPOCHS
    layout epochs. Seeded, hence single-threaded and reproducible. `progress(stage, fraction)` hears the stages and
    the layout epochs."""
    mu = np.asarray(mu, dtype=np.float32)
    if len(mu) < 4:
        raise EmbedError(f"UMAP needs at least 4 points, got {len(mu)}; choose a larger count")
    report = progress or (lambda stage, fraction: None)
    k, cache = min(n_neighbors, len(mu) - 1), numba_cache_dir()
    try:
        coords = _fit(mu, k, min_dist, seed, report, progress is not None)
    except Exception as error:
        if cache is None or not _raised_by_numba_cache(error):
            raise
        # numba raises on a damaged cache file instead of compiling again: start from no compiled code.
        for entry in cache.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
        report("the compiled-code cache was damaged: cleared, compiling again", None)
        coords = _fit(mu, k, min_dist, seed, report, progress is not None)
    if cache is not None:
        with contextlib.suppress(OSError):  # the map is made; a marker that cannot be written only costs a warm-up
            _warm_marker(cache).touch()
    return coords


def warm_up() -> None:
    """Compile (or load) everything a UMAP needs by mapping a few hundred random points, so that the next UMAP in
    any process starts from the on-disk cache; afterwards umap_is_warm() is True."""
    umap_2d(np.random.default_rng(0).normal(size=(300, 8)))


def umap_is_warm() -> bool:
    """Whether a UMAP has run with the cache and the installed numba, umap-learn and pynndescent (then the next one
    loads compiled code instead of compiling it)."""
    cache = numba_cache_dir()
    return cache is not None and _warm_marker(cache).is_file()


def numba_cache_dir() -> Path | None:
    """$LATENTLAB_CACHE/numba (created private), or None where it cannot serve as this user's compiled-code cache:
    not creatable, a link, someone else's, or writable by others (numba unpickles what it finds there)."""
    folder = default_cache_dir() / "numba"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o022:
        return None
    return folder


def _fit(mu: np.ndarray, k: int, min_dist: float, seed: int, report: Progress, tap: bool) -> np.ndarray:
    """umap_2d's map with `k` neighbours; `tap`: feed the layout epochs to `report`."""
    report("loading UMAP", None)
    umap = _import_umap()
    neighbours = (None, None, None)
    if len(mu) <= EXACT_NEIGHBOURS_UP_TO:
        report("nearest neighbours", None)
        neighbours = _exact_neighbours(mu, k)
    report("building the graph" if umap_is_warm() else
           "building the graph (the first UMAP on this machine compiles for about half a minute)", None)
    reducer = umap.UMAP(n_neighbors=k, min_dist=min_dist, random_state=seed, init="pca", n_epochs=EPOCHS,
                        precomputed_knn=neighbours, tqdm_kwds={"disable": not tap, "file": _EpochTap(report),
                                                               "bar_format": "{n}/{total}", "mininterval": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", "no NNDescent index" and similar
        return np.asarray(reducer.fit_transform(mu), dtype=np.float32)


def _import_umap():
    """umap, its compiled code cached in numba_cache_dir(), including the functions umap-learn leaves uncached."""
    cache = _use_numba_cache()
    import umap  # imported here: the import alone takes seconds, and PCA-only users never pay it

    if cache is not None:
        for module, name in UNCACHED:
            dispatcher = getattr(sys.modules.get(module), name, None)
            if hasattr(dispatcher, "enable_caching"):  # another umap-learn may lack one: it then compiles each time
                dispatcher.enable_caching()
    return umap


def _use_numba_cache() -> Path | None:
    """Make numba_cache_dir() numba's cache folder in this process, and return it (None: numba's default stays).
    numba reads NUMBA_CACHE_DIR when a function's cache is made, so this must run before umap is imported."""
    cache = numba_cache_dir()
    if cache is not None:
        os.environ["NUMBA_CACHE_DIR"] = str(cache)
        from numba.core import config

        config.reload_config()
    return cache


def _exact_neighbours(mu: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, None]:
    """UMAP's precomputed_knn: every point's k nearest (itself first), brute force on all cores."""
    from sklearn.neighbors import NearestNeighbors

    distances, indices = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(mu).kneighbors(mu)
    return indices.astype(np.int32), distances.astype(np.float32), None


def _raised_by_numba_cache(error: BaseException) -> bool:
    """Whether `error` came out of numba's on-disk cache (a damaged index or data file)."""
    frames = traceback.extract_tb(error.__traceback__)
    return any(Path(frame.filename).parts[-3:] == ("numba", "core", "caching.py") for frame in frames)


def _warm_marker(cache: Path) -> Path:
    """A file whose name changes with the versions that decide whether the cached code is still used."""
    versions = [sys.version, FORMAT, *(metadata.version(p) for p in ("numba", "umap-learn", "pynndescent"))]
    return cache / f"warm-{hashlib.sha1(json.dumps(versions).encode()).hexdigest()[:10]}"


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
