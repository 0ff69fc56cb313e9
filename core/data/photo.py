"""A user's own photo: checked, decoded upright, framed with a square crop and shrunk to the models' 64x64.

Uploaded bytes are untrusted. `load_photo` accepts JPEG, PNG and WebP only, recognised by their first bytes (a name
says nothing), refuses files over MAX_BYTES, reads the pixel size from the header and refuses more than MAX_PIXELS
before anything is decoded (a small file can unpack to gigabytes: a decompression bomb), honours the EXIF
orientation, and turns every decoding failure into a PhotoError that says what to do. Nothing is written anywhere.
"""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from core.data import celeba, synthfaces
from core.data.base import IMAGE_SIZE, DataError
from core.data.decode import RESAMPLE, FaceGuide, to_rgb

MAX_MEGABYTES = 20
MAX_BYTES = MAX_MEGABYTES * 2**20
MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo; 45 bytes of PNG can claim 100,000 x 100,000
# The decoded photo is shrunk to this longest side: enough for a face a tenth of a group photo's width to keep more
# than 64 px, and a 50-megapixel photo then costs at most 13 MB of memory instead of 150.
WORK_SIDE = 2048

# First bytes of the accepted formats -> PIL's format name
FORMATS = {"JPEG": "JPEG", "PNG": "PNG", "WebP": "WEBP"}
# What other common files are, for a message that names them
OTHER_KINDS = ((b"GIF8", "a GIF"), (b"BM", "a BMP image"), (b"II*\0", "a TIFF image"), (b"MM\0*", "a TIFF image"),
               (b"%PDF", "a PDF document"))
HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")
FIX = "export or save the photo as JPEG or PNG and upload that"

# Where each data set's crop puts the eyes and mouth; LFW's crop is framed to match CelebA's (core/data/lfw.py).
GUIDES = {"celeba": celeba.GUIDE, "lfw": celeba.GUIDE, "synthfaces": synthfaces.GUIDE}


class PhotoError(DataError):
    """A photo that cannot be used: wrong type, too big, damaged. The message says what to do instead."""


@dataclass(frozen=True)
class Photo:
    """A decoded photo: upright RGB pixels (H, W, 3) uint8, at most WORK_SIDE on the longer side, and what the file
    held (its format and pixel size before shrinking)."""

    pixels: np.ndarray
    format: str
    original_size: tuple[int, int]


def sniff_format(data: bytes) -> str:
    """'JPEG', 'PNG' or 'WebP' from the file's first bytes; PhotoError naming what the file is otherwise."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        raise PhotoError(f"this is a HEIC/AVIF photo (as iPhones save them), which this page does not read: {FIX} "
                         "(on an iPhone: Settings > Camera > Formats > Most Compatible)")
    kind = next((name for magic, name in OTHER_KINDS if data.startswith(magic)), None)
    if kind is None:
        raise PhotoError(f"the file is not a JPEG, PNG or WebP image (by its content, whatever its name): {FIX}")
    raise PhotoError(f"the file is {kind}, not a JPEG, PNG or WebP photo: {FIX}")


def _too_many_pixels(claimed: str, max_pixels: int) -> PhotoError:
    return PhotoError(f"the image claims {claimed} pixels, over the limit of {max_pixels / 1e6:,.0f} megapixels; it "
                      "was refused before decoding (a small file that unpacks to that many pixels is a decompression "
                      "bomb). If it is a real photo, scale it down and upload that")


def load_photo(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Photo:
    """The photo in `data` (a file's bytes), checked and decoded upright (see the module docstring); PhotoError
    saying why and what to do for anything that is not a usable JPEG, PNG or WebP photo within the limits."""
    if not data:
        raise PhotoError(f"the file is empty: {FIX}")
    if len(data) > max_bytes:
        raise PhotoError(f"the file is {len(data) / 2**20:,.1f} MB, more than the {max_bytes / 2**20:,.0f} MB limit: "
                         "upload a smaller copy (most photo apps can export at a lower resolution or quality)")
    kind = sniff_format(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our lower limit is checked below
            image = Image.open(io.BytesIO(data), formats=[FORMATS[kind]])  # reads the header only
    except Image.DecompressionBombError:
        raise _too_many_pixels(f"more than {2 * Image.MAX_IMAGE_PIXELS:,}", max_pixels) from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types for damaged files; each becomes the same message
        raise _damaged(kind, e) from None
    width, height = image.size
    if width * height > max_pixels:
        raise _too_many_pixels(f"{width:,} x {height:,} = {width * height:,}", max_pixels)
    try:
        with image:
            if max(width, height) > WORK_SIDE:  # JPEG: decode at 1/2 .. 1/8 scale, several times faster
                scale = WORK_SIDE / max(width, height)
                image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))
            upright = to_rgb(ImageOps.exif_transpose(image))
    except Exception as e:  # noqa: BLE001 - as above: truncated data, bad EXIF, broken chunks
        raise _damaged(kind, e) from None
    upright.thumbnail((WORK_SIDE, WORK_SIDE), RESAMPLE)
    return Photo(np.asarray(upright, dtype=np.uint8), kind, (width, height))


def _damaged(kind: str, error: Exception) -> PhotoError:
    # PIL's "cannot identify image file" names only an in-memory buffer: nothing worth showing
    detail = "" if isinstance(error, UnidentifiedImageError) else f" ({type(error).__name__}: {error})"
    return PhotoError(f"the {kind} file could not be decoded{detail}: it is damaged or cut short. Open it in a photo "
                      "app and save it again as JPEG or PNG, or take another photo")


@dataclass(frozen=True)
class PhotoCrop:
    """A square crop of a photo: its centre (`x`, `y`, fractions of the width and height) and its side (`size`, a
    fraction of the shorter edge). A box that would stick out is moved inside, keeping its size."""

    x: float = 0.5
    y: float = 0.5
    size: float = 1.0

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The crop as a PIL box (left, top, right, bottom) in pixels of a width x height image."""
        if not (0 < self.size <= 1 and 0 <= self.x <= 1 and 0 <= self.y <= 1):
            raise PhotoError(f"crop centre ({self.x}, {self.y}) and size {self.size}: the centre must lie in the "
                             "photo (0 to 1) and the size be above 0 and at most 1")
        side = max(1, round(self.size * min(width, height)))
        left = min(max(round(self.x * width - side / 2), 0), width - side)
        top = min(max(round(self.y * height - side / 2), 0), height - side)
        return left, top, left + side, top + side


def crop_face(pixels: np.ndarray, crop: PhotoCrop) -> np.ndarray:
    """The crop of an (H, W, 3) uint8 photo as the models' input: (3, 64, 64) uint8, antialiased like the data
    sets' own images (core.data.decode)."""
    image = Image.fromarray(pixels)
    # Crop first: resize(box=...) would let the filter reach pixels outside the box.
    small = image.crop(crop.box(*image.size)).resize((IMAGE_SIZE, IMAGE_SIZE), RESAMPLE)
    return np.asarray(small, dtype=np.uint8).transpose(2, 0, 1)


def face_guide(dataset: str) -> FaceGuide | None:
    """Where the training faces of data set `dataset` have their eyes and mouth, or None for a data set without a
    fixed framing (an image folder, dSprites)."""
    return GUIDES.get(dataset)


def framing_preview(pixels: np.ndarray, crop: PhotoCrop, guide: FaceGuide | None, max_side: int = 480) -> np.ndarray:
    """The photo (H, W, 3) uint8 shrunk to at most `max_side`, darkened outside the crop, the crop outlined and,
    with a guide, where the eyes (circles) and the mouth (a line between its corners) should fall inside it."""
    image = Image.fromarray(pixels)
    left, top, right, bottom = crop.box(*image.size)
    scale = min(1.0, max_side / max(image.size))
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), RESAMPLE)
    box = tuple(round(v * scale) for v in (left, top, right, bottom))
    out = Image.blend(small, Image.new("RGB", small.size), 0.6)
    out.paste(small.crop(box), box[:2])
    draw = ImageDraw.Draw(out)
    side = max(box[2] - box[0], 1)
    line = max(1, round(side / 120))
    draw.rectangle(box, outline=(255, 255, 255), width=line)
    if guide is not None:
        def at(point: tuple[float, float]) -> tuple[float, float]:
            return box[0] + point[0] * side, box[1] + point[1] * side

        colour, radius = (255, 210, 0), max(2.0, side * 0.045)
        for x, y in map(at, guide.eyes):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour, width=line)
        draw.line([at(p) for p in guide.mouth], fill=colour, width=line)
        for x, y in map(at, guide.mouth):
            draw.ellipse((x - line, y - line, x + line, y + line), fill=colour)
    return np.asarray(out)
