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
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from core.data.base import IMAGE_SIZE, Attributes, DataError, Dataset
from core.fileio import write_json

# Bump when decoding changes in a way that alters pixels: old caches are then ignored.
FORMAT_VERSION = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Files per task sent to a worker process: large enough to amortise the inter-process
# round trip, small enough to keep both cores busy and the progress bar moving.
CHUNK = 64
RESAMPLE = Image.Resampling.LANCZOS
SHAPE = (3, IMAGE_SIZE, IMAGE_SIZE)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SquareCrop:
    """Square crop box: `side` is a fraction of the shorter edge, centred horizontally and
    shifted down by `dy` x height from the vertical centre (negative: up).

    Relative rather than in pixels so the same crop applies when a big JPEG is decoded at
    reduced scale (see `_draft_for_crop`); the box is clamped to the image.
    """

    side: float = 1.0
    dy: float = 0.0

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        side = min(round(self.side * min(width, height)), width, height)
        left = (width - side) // 2
        top = min(max((height - side) // 2 + round(self.dy * height), 0), height - side)
        return left, top, left + side, top + side


def decode_image(path: str | Path, crop: SquareCrop) -> np.ndarray:
    """(3, 64, 64) uint8 from an image file of any PIL mode: RGB, crop, antialiased resize."""
    with Image.open(path) as image:
        _draft_for_crop(image, crop)
        image = _to_rgb(ImageOps.exif_transpose(image))
        # Crop first: resize(box=...) would let the filter reach pixels outside the box.
        small = image.crop(crop.box(*image.size)).resize((IMAGE_SIZE, IMAGE_SIZE), RESAMPLE)
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1)


def _draft_for_crop(image: Image.Image, crop: SquareCrop) -> None:
    """Let libjpeg decode big photos at 1/2..1/8 scale (several times faster) while the
    crop keeps at least 2 x 64 px, so the final resize still averages real detail."""
    if image.format != "JPEG":
        return
    width, height = image.size
    left, _, right, _ = crop.box(width, height)
    scale = 2 * IMAGE_SIZE / (right - left)
    if scale <= 0.5:
        image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode.startswith("I"):
        # 16/32-bit grayscale: PIL's convert() clips to 255 instead of rescaling.
        values = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or values.max() > 255:
            values = values / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        # Composite on black: dropping alpha would expose arbitrary colours under transparent pixels.
        black = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, image.convert("RGBA"))
    return image.convert("RGB")


def _decode_chunk(paths: Sequence[str], crop: SquareCrop) -> list[tuple[np.ndarray | None, str | None]]:
    results = []
    for path in paths:
        try:
            results.append((decode_image(path, crop), None))
        except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files; skip, never abort the build
            results.append((None, f"{type(error).__name__}: {error}"))
    return results


def _decode_all(paths: list[str], crop: SquareCrop, workers: int) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """(pixels, None) or (None, reason) per path, in order."""
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    if workers == 1 or len(chunks) == 1:  # not worth starting processes
        for chunk in chunks:
            yield from _decode_chunk(chunk, crop)
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        for results in pool.map(_decode_chunk, chunks, itertools.repeat(crop)):
            yield from results
    finally:
        # On an interrupt, drop queued chunks instead of decoding the rest of the data set.
        pool.shutdown(wait=True, cancel_futures=True)


def list_images(root: Path) -> list[str]:
    """Image files under `root`, recursively, as sorted '/'-separated relative paths.

    Hidden files and folders are left out: .DS_Store, macOS '._x.jpg' resource forks and
    .ipynb_checkpoints copies look like images by name but are not the user's data.
    """
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        relative = Path(folder).relative_to(root)
        found += [(relative / name).as_posix() for name in names
                  if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def default_cache_dir() -> Path:
    return Path(os.environ.get("LATENTLAB_CACHE") or Path.home() / ".cache" / "latentlab").expanduser()


@dataclass(frozen=True)
class ImageCache:
    """A finished cache file and what went into it."""

    path: Path
    files: list[str]  # kept files, relative to the image root, in row order
    failed: list[tuple[str, str]]  # (file, reason) for files that could not be decoded
    build_seconds: float | None = None  # None when an existing cache was reused

    def open(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r", allow_pickle=False)

    def summary(self) -> str:
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


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _load_existing(path: Path) -> ImageCache | None:
    try:
        meta = json.loads(_sidecar(path).read_text())
        pixels = np.load(path, mmap_mode="r", allow_pickle=False)
        files, failed = meta["kept"], [tuple(item) for item in meta["failed"]]
    except (OSError, ValueError, KeyError, TypeError):  # absent or unfinished: build it
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

    def __init__(self) -> None:
        self.notes: list[str] = []

    def _decode(self, image_root: Path, files: Sequence[str], cache_dir, progress: bool) -> None:
        self.cache = load_or_build(image_root, files, self.crop, tag=self.name,
                                   cache_dir=cache_dir, progress=progress)
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
        return "\n".join([f"{self.name}: {len(self)} images, cache {self.cache.path}", *self.notes])

    def images(self, index: np.ndarray) -> np.ndarray:
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
