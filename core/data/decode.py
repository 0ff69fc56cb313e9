"""Image files to 64x64 uint8 arrays: list a folder's images, open, orient, crop and resize one; how a data set's
crop frames a face (SquareCrop, FaceGuide)."""
from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps

from core.data.base import IMAGE_SIZE


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


# Files per task sent to a worker process: large enough to amortise the inter-process
# round trip, small enough to keep both cores busy and the progress bar moving.
CHUNK = 64


RESAMPLE = Image.Resampling.LANCZOS


SHAPE = (3, IMAGE_SIZE, IMAGE_SIZE)


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
        """The crop as a PIL box (left, top, right, bottom) in pixels of a width x height image."""
        side = min(round(self.side * min(width, height)), width, height)
        left = (width - side) // 2
        top = min(max((height - side) // 2 + round(self.dy * height), 0), height - side)
        return left, top, left + side, top + side


@dataclass(frozen=True)
class FaceGuide:
    """Where a data set's crop puts the eyes and the mouth corners: (x, y) as fractions of the square crop's side,
    x to the right, y down, the image's left eye first. Drawn over a photo being framed, so that it can be cropped
    the way the model's training faces were."""

    eyes: tuple[tuple[float, float], tuple[float, float]]
    mouth: tuple[tuple[float, float], tuple[float, float]]

    @classmethod
    def from_pixels(cls, box: tuple[int, int, int, int], eyes, mouth) -> FaceGuide:
        """The guide for eye and mouth-corner positions in pixels of an image that the square `box` (left, top,
        right, bottom) crops."""
        left, top, right, _ = box
        side = right - left

        def inside(points) -> tuple[tuple[float, float], tuple[float, float]]:
            first, second = (((x - left) / side, (y - top) / side) for x, y in points)
            return first, second

        return cls(inside(eyes), inside(mouth))


def decode_image(path: str | Path, crop: SquareCrop) -> np.ndarray:
    """(3, 64, 64) uint8 from an image file of any PIL mode: RGB, crop, antialiased resize."""
    with Image.open(path) as image:
        _draft_for_crop(image, crop)
        image = to_rgb(ImageOps.exif_transpose(image))
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


def to_rgb(image: Image.Image) -> Image.Image:
    """`image` of any PIL mode as 8-bit RGB: 16/32-bit grey rescaled, transparency composited on black."""
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
