"""Decode-once image cache shared by the real-data loaders (CelebA, LFW, ImageFolder).

Decoding tens of thousands of JPEGs takes minutes, so a data set is decoded once, in
parallel, into a (N, 3, 64, 64) uint8 .npy file that later runs memory-map instantly.
The cache lives under `cache_dir` ($LATENTLAB_CACHE, else ~/.cache/latentlab), never in
the data folder: users' data folders may be read-only or shared.

A cache file is named by a hash of everything that determines its content (absolute
image root, sorted file list, crop, output size, FORMAT_VERSION), so a different crop or
a grown partial download gets a new file. File contents are not hashed (stat-ing 200k
files would make every load slow): if images are replaced in place, delete the cache.
Next to each .npy a JSON sidecar lists the files kept, in row order, and the ones that
could not be decoded; it is written last, so a cache without it is treated as unfinished.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from core.data.base import IMAGE_SIZE, DataError
from core.fileio import read_json, write_json
from core.schema import ListOf, Obj, Str
from core.data.decode import RESAMPLE, SHAPE, SquareCrop, _decode_all


# Bump when decoding changes in a way that alters pixels: old caches are then ignored.
FORMAT_VERSION = 1


logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where caches live when no cache_dir is given: $LATENTLAB_CACHE, else ~/.cache/latentlab."""
    return Path(os.environ.get("LATENTLAB_CACHE") or Path.home() / ".cache" / "latentlab").expanduser()


@dataclass(frozen=True)
class ImageCache:
    """A finished cache file and what went into it."""

    path: Path
    files: list[str]  # kept files, relative to the image root, in row order
    failed: list[tuple[str, str]]  # (file, reason) for files that could not be decoded
    build_seconds: float | None = None  # None when an existing cache was reused

    def open(self) -> np.ndarray:
        """The cached pixels, memory-mapped read-only: uint8 (len(files), 3, 64, 64)."""
        return np.load(self.path, mmap_mode="r", allow_pickle=False)

    def summary(self) -> str:
        """One line for logs: images cached and where, decode time if just built, unreadable files skipped."""
        text = f"{len(self.files)} images cached in {self.path}"
        if self.build_seconds is not None:
            text += f" (decoded in {self.build_seconds:.1f} s)"
        if self.failed:
            examples = "; ".join(f"{file} ({reason})" for file, reason in self.failed[:3])
            text += f"; {len(self.failed)} unreadable file(s) skipped, e.g. {examples}"
        return text


def load_or_build(root: str | Path, files: Sequence[str], crop: SquareCrop, *, tag: str,
                  cache_dir: str | Path | None = None, progress: bool = True,
                  workers: int | None = None) -> ImageCache:
    """The cache for `files` (relative to `root`), decoding them first if no cache exists.

    Rows follow the sorted file order, minus files that could not be decoded; those are
    reported in `failed`. `tag` (the data set name) only makes cache file names readable.
    """
    root = Path(root).resolve()
    files = sorted(files)
    if not files:
        raise DataError(f"no image files to decode under {root}")
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the cache folder {directory} ({error}); pass cache_dir= "
                        "or set LATENTLAB_CACHE to a writable folder") from error
    key = hashlib.sha256(json.dumps({
        "version": FORMAT_VERSION, "root": str(root), "files": files, "crop": asdict(crop),
        "size": IMAGE_SIZE, "resample": RESAMPLE.name,
    }).encode()).hexdigest()[:20]
    path = directory / f"{tag}-{key}.npy"
    return _load_existing(path) or _build(root, files, crop, path, tag, progress, workers or _cpu_count())


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# The sidecar .json of a cache .npy: the files kept (one image each, in order) and those that failed, with why.
SIDECAR = Obj({"kept": ListOf(Str(4096), max_items=10**8),
               "failed": ListOf(ListOf(Str(), min_items=2, max_items=2), max_items=10**8)},
              required=("kept", "failed"))
MAX_SIDECAR_BYTES = 1 << 30


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _load_existing(path: Path) -> ImageCache | None:
    try:
        meta = read_json(_sidecar(path), SIDECAR, max_bytes=MAX_SIDECAR_BYTES)
        pixels = np.load(path, mmap_mode="r", allow_pickle=False)
        files, failed = meta["kept"], [tuple(item) for item in meta["failed"]]
    except (OSError, ValueError):  # absent, unfinished or damaged (UntrustedFileError is a ValueError): build it
        return None
    if pixels.dtype != np.uint8 or pixels.shape != (len(files), *SHAPE):
        logger.warning("cache %s does not match its sidecar; rebuilding it", path)
        return None
    return ImageCache(path, files, failed)


def _build(root: Path, files: list[str], crop: SquareCrop, path: Path, tag: str, progress: bool,
           workers: int) -> ImageCache:
    start = time.perf_counter()
    kept, failed = [], []
    with _temporary(path.parent, ".npy") as full:
        pixels = _allocate(full, len(files))
        bar = tqdm(total=len(files), desc=f"decoding {tag} images", unit="img",
                   file=sys.stderr, disable=not progress)
        with bar:
            for file, (image, reason) in zip(files, _decode_all([str(root / f) for f in files], crop, workers)):
                if reason is None:
                    pixels[len(kept)] = image
                    kept.append(file)
                else:
                    failed.append((file, reason))
                bar.update()
        pixels.flush()
        del pixels
        if not kept:
            examples = "; ".join(f"{file} ({reason})" for file, reason in failed[:3])
            raise DataError(f"none of the {len(files)} images under {root} could be decoded, e.g. {examples}")
        if failed:
            with _temporary(path.parent, ".npy") as compact:
                _copy_rows(full, compact, len(kept))
                os.replace(compact, path)
        else:
            os.replace(full, path)
    write_json(_sidecar(path), {"version": FORMAT_VERSION, "root": str(root), "crop": asdict(crop),
                                 "kept": kept, "failed": failed})
    cache = ImageCache(path, kept, failed, time.perf_counter() - start)
    logger.info("%s", cache.summary())
    return cache


def _allocate(path: Path, rows: int) -> np.ndarray:
    """A writable (rows, 3, 64, 64) .npy memory map with its disk space reserved up front:
    writing into a sparse memory map on a full disk kills the process (SIGBUS)."""
    pixels = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(rows, *SHAPE))
    if hasattr(os, "posix_fallocate"):
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            try:
                os.posix_fallocate(handle.fileno(), 0, size)
            except OSError as error:
                if error.errno == errno.ENOSPC:
                    raise DataError(f"not enough space for the {size / 1e9:.1f} GB image cache in {path.parent}; "
                                    "set LATENTLAB_CACHE or pass cache_dir= to use a bigger disk") from error
                # Other errors: the filesystem cannot reserve space; write unreserved.
    return pixels


def _copy_rows(source: Path, target: Path, rows: int, block: int = 4096) -> None:
    """Copy the first `rows` rows of one .npy into a new one of exactly that length."""
    full = np.load(source, mmap_mode="r")
    out = _allocate(target, rows)
    for start in range(0, rows, block):
        out[start:start + block] = full[start:min(start + block, rows)]
    out.flush()


@contextmanager
def _temporary(directory: Path, suffix: str) -> Iterator[Path]:
    """A fresh temporary file in `directory`, removed on exit unless os.replace moved it.

    Same folder as the target, so os.replace is an atomic rename: readers see either no
    cache or a complete one, even if the build is interrupted.
    """
    try:
        handle, name = tempfile.mkstemp(dir=directory, prefix=".building-", suffix=suffix)
    except OSError as error:
        raise DataError(f"cannot write to the cache folder {directory} ({error}); pass cache_dir= "
                        "or set LATENTLAB_CACHE to a writable folder") from error
    os.close(handle)
    # mkstemp makes the file private (0600); a cache shared through LATENTLAB_CACHE must be readable.
    os.chmod(name, 0o644)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)
