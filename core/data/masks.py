"""Foreground (person) masks for real-image data sets, from a folder in CelebAMask-HQ's layout:

    <data root>/CelebAMask-HQ-mask-anno/<any subfolder>/<image stem>_<part>.png

one PNG per face part (skin, hair, l_eye, cloth, ...: CelebAMask-HQ's 18 names), each covering the image's whole
frame at any resolution of the image's aspect ratio, non-zero inside the part. An image's mask is the union of its
parts, cropped like the image and resized to 64x64; images without a part file have no mask (the mask loss skips
them). Masks are built once and cached next to the image cache, keyed by the mask files' names, sizes and times.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.data.base import IMAGE_SIZE, DataError
from core.data.cache import default_cache_dir
from core.data.decode import SquareCrop
from core.fileio import write_bytes

MASK_DIR = "CelebAMask-HQ-mask-anno"
PARTS = ("skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear", "mouth", "u_lip", "l_lip",
         "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
_LONGEST_FIRST = sorted(PARTS, key=len, reverse=True)  # "neck_l" before "neck"
MAX_MASK_FILES = 5_000_000
MAX_MASK_PIXELS = 4096 * 4096  # CelebAMask-HQ's are 512 x 512
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Masks:
    """uint8 (N, 64, 64) masks (255 = person) in the data set's row order and (N,) bool: which rows have one."""

    values: np.ndarray
    known: np.ndarray
    source: Path

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 (n, 1, 64, 64), bool (n,)) of the given rows."""
        index = np.asarray(index, dtype=np.int64)
        return np.ascontiguousarray(self.values[index][:, None]), self.known[index]


def part_files(root: Path) -> dict[str, list[Path]] | None:
    """Image stem -> its part PNGs under root/MASK_DIR, or None when there is no such folder."""
    folder = root / MASK_DIR
    if not folder.is_dir():
        return None
    found: dict[str, list[Path]] = {}
    count = 0
    for path in folder.rglob("*.png"):  # unsorted, so the bound holds before a huge folder is listed whole
        stem = _image_stem(path.stem)
        if not stem:
            continue
        found.setdefault(stem, []).append(path)
        count += 1
        if count > MAX_MASK_FILES:
            raise DataError(f"{folder} holds more than {MAX_MASK_FILES:,} PNG files; is it really a mask folder?")
    return found


def _image_stem(name: str) -> str:
    """"000001" of "000001_skin" or "000001_neck_l" (part names may hold a "_"); an unknown part ends at the last "_"."""
    for part in _LONGEST_FIRST:
        if name.endswith("_" + part):
            return name[:-len(part) - 1]
    return name.rpartition("_")[0]


def load_masks(root: Path, files: Sequence[str], crop: SquareCrop, cache_dir=None) -> Masks | None:
    """The masks of `files` (image paths, matched to part files by their stem), or None without a mask folder."""
    parts = part_files(root)
    if parts is None:
        return None
    stems = [Path(file).stem for file in files]
    used = {stem: parts[stem] for stem in stems if stem in parts}
    if not used:
        raise DataError(f"{root / MASK_DIR} names none of the {len(files)} images (it has e.g. "
                        f"{sorted(parts)[:3]}, the images are e.g. {stems[:3]}): name each part file "
                        "<image stem>_<part>.png, e.g. 000001_skin.png for 000001.jpg")
    stamp = [(str(p.relative_to(root)), s.st_size, s.st_mtime_ns) for ps in used.values() for p in ps
             for s in [p.stat()]]
    key = hashlib.sha256(json.dumps({"version": FORMAT_VERSION, "root": str(root.resolve()), "stems": stems,
                                     "parts": stamp, "crop": asdict(crop)}).encode()).hexdigest()[:20]
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = directory / f"masks-{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as cached:
            values, known = cached["values"], cached["known"]
        if values.shape == (len(files), IMAGE_SIZE, IMAGE_SIZE) and known.shape == (len(files),):
            return Masks(values, known, root / MASK_DIR)
    except (OSError, ValueError, KeyError):
        pass  # absent or damaged: build it
    values = np.zeros((len(files), IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    known = np.zeros(len(files), bool)
    for row, stem in enumerate(stems):
        if stem in used:
            values[row], known[row] = union_mask(used[stem], crop), True
    buffer = io.BytesIO()
    np.savez(buffer, values=values, known=known)
    try:
        write_bytes(path, buffer.getvalue())
    except OSError as error:
        raise DataError(f"cannot write the mask cache {path} ({error}); set LATENTLAB_CACHE to a writable "
                        "folder") from error
    return Masks(values, known, root / MASK_DIR)


def union_mask(paths: Sequence[Path], crop: SquareCrop) -> np.ndarray:
    """uint8 (64, 64): the union of part PNGs (all one size), cropped by `crop` and resized (soft edges)."""
    union = None
    for path in paths:
        part = _read_part(path)
        if union is not None and part.shape != union.shape:
            raise DataError(f"{path} is {part.shape[1]}x{part.shape[0]} but {paths[0].name} is "
                            f"{union.shape[1]}x{union.shape[0]}: every part of one image must be the same size")
        union = part if union is None else union | part
    picture = Image.fromarray(union.astype(np.uint8) * 255)
    picture = picture.crop(crop.box(*picture.size)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(picture, dtype=np.uint8)


def _read_part(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as picture:
            if picture.width * picture.height > MAX_MASK_PIXELS:
                raise DataError(f"{path} is {picture.width}x{picture.height}: a mask larger than "
                                f"{MAX_MASK_PIXELS:,} pixels is refused; resize it")
            return np.asarray(picture.convert("L")) > 0
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: not a readable PNG mask ({error}); replace or delete it") from None
