"""CelebA in the official (Google Drive) / torchvision layout.

    <root>/img_align_celeba/000001.jpg ...   178x218 aligned faces
    <root>/list_attr_celeba.txt              count, 40 names, then `file v1 ... v40` (+1/-1)
    <root>/list_eval_partition.txt           `file split` (0 train, 1 val, 2 test); optional
    <root>/identity_CelebA.txt               `file person_id`; optional

Partial downloads are common, so the data set is the intersection of the images on disk
and the rows of the attribute file; `missing_count` says how many listed images are absent.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from core.data.base import Attributes, DataError, random_split, read_text
from core.data.labelled import CachedImageDataset, lookup
from core.data.decode import FaceGuide, SquareCrop

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
# The standard 148 px face crop of the 178x218 aligned images (DCGAN/VAE literature):
# box (15, 40, 163, 188), horizontally centred, 5 px below the vertical centre.
CROP = SquareCrop(side=148 / 178, dy=5 / 218)
# The eye and mouth-corner positions every aligned image was warped to (CelebA's alignment template, in pixels of the
# 178x218 image): inside the crop the eyes sit 48% of the way down, the mouth 76%.
GUIDE = FaceGuide.from_pixels(CROP.box(178, 218), eyes=((69, 111), (108, 111)), mouth=((72, 152), (105, 152)))
_SIGNS = {"1": True, "-1": False}

logger = logging.getLogger(__name__)


class CelebA(CachedImageDataset):
    """Aligned faces present on disk and in list_attr_celeba.txt: 40 attributes, split, identities if listed."""

    name = "celeba"
    crop = CROP

    def __init__(self, root: str | Path, cache_dir: str | Path | None = None, progress: bool = True, seed: int = 0):
        """`seed` (--data-seed): the seed of the random split used when list_eval_partition.txt is absent."""
        super().__init__()
        self.root = _check_layout(Path(root).expanduser())
        image_dir = self.root / IMAGE_DIR
        names, row_of, table = _read_attributes(self.root / ATTR_FILE)
        on_disk = {entry.name for entry in os.scandir(image_dir)
                   if entry.name.lower().endswith(".jpg") and entry.is_file()}
        present = [file for file in row_of if file in on_disk]
        if not present:
            raise DataError(f"none of the {len(on_disk)} .jpg files in {image_dir} has a row in "
                            f"{self.root / ATTR_FILE}; are the images and the attribute file from the same "
                            "CelebA download (aligned images, named like 000001.jpg)?")
        self.missing_count = len(row_of) - len(present)
        if self.missing_count:
            self._note(f"{self.missing_count} of the {len(row_of)} images listed in {ATTR_FILE} are not in "
                       f"{image_dir} (partial download?); using the {len(present)} present")
        if len(on_disk) > len(present):
            self._note(f"{len(on_disk) - len(present)} .jpg file(s) in {image_dir} have no row in {ATTR_FILE} "
                       "and are ignored")
        # Read the other files before the (long) first decode, so a damaged one fails fast.
        partition = _read_file_column(self.root / PARTITION_FILE, allowed=(0, 1, 2))
        identity = _read_file_column(self.root / IDENTITY_FILE)
        if partition is None:
            self._note(f"{self.root / PARTITION_FILE} not found: using a random 80/10/10 split (--data-seed {seed}) "
                       f"instead of the official one; download {PARTITION_FILE} next to {ATTR_FILE} to get it")
        if identity is None:
            self._note(f"{self.root / IDENTITY_FILE} not found: no person identities", level=logging.INFO)
        self._decode(image_dir, present, cache_dir, progress)

        values, self.has_attributes = lookup(self.files, row_of, table)  # all True: rows define the data set
        self.attributes = Attributes(names, values)
        self.split = (random_split(len(self.files), seed=seed) if partition is None
                      else self._per_image(PARTITION_FILE, partition).astype(np.int8))
        self.identities = None if identity is None else self._per_image(IDENTITY_FILE, identity)

    def _per_image(self, source: str, column: tuple[dict[str, int], np.ndarray]) -> np.ndarray:
        values, found = lookup(self.files, *column)
        if not found.all():
            raise DataError(f"{self.root / source} has no row for {int((~found).sum())} of the images (e.g. "
                            f"{self.files[int(np.argmin(found))]}); it does not belong to the same CelebA download "
                            f"as {ATTR_FILE}: download it again")
        return values


def _check_layout(root: Path) -> Path:
    """`root` if it holds the CelebA files; otherwise an error that names the right folder."""
    if not root.is_dir():
        raise DataError(f"CelebA folder {root} does not exist; pass the folder that holds {IMAGE_DIR}/ "
                        f"and {ATTR_FILE}")
    if (root / ATTR_FILE).is_file():
        if not (root / IMAGE_DIR).is_dir():
            raise DataError(f"{root} holds {ATTR_FILE} but no {IMAGE_DIR}/ folder; unzip "
                            f"{IMAGE_DIR}.zip into {root}")
        return root
    if root.name == IMAGE_DIR or (root.parent / ATTR_FILE).is_file():
        raise DataError(f"{root} is the image folder itself; pass the folder above it, {root.parent}, "
                        f"which must hold {ATTR_FILE}")
    for child in sorted(path for path in root.iterdir() if path.is_dir()):
        if (child / ATTR_FILE).is_file():
            raise DataError(f"{root} is one level too high: pass {child}, which holds {ATTR_FILE}")
    raise DataError(f"{root} does not contain {ATTR_FILE}; pass the CelebA folder that holds {IMAGE_DIR}/ "
                    f"and {ATTR_FILE} (official download or torchvision's <root>/celeba)")


def _read_attributes(path: Path) -> tuple[list[str], dict[str, int], np.ndarray]:
    """Attribute names, file -> row, and the (rows, 40) bool table of list_attr_celeba.txt."""
    lines = read_text(path, ATTR_FILE).splitlines()
    if len(lines) < 2 or not _is_count(lines[0].strip()):
        raise DataError(f"{path}, line 1: expected the image count followed by a line of attribute names; "
                        "the file is damaged or not list_attr_celeba.txt: download it again")
    names = lines[1].split()
    row_of: dict[str, int] = {}
    rows = []
    for line_number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1:
            raise DataError(f"{path}, line {line_number}: {len(fields) - 1} values for {len(names)} attributes; "
                            "the file is damaged: download it again")
        if not _SIGNS.keys() >= set(fields[1:]):
            column = next(i for i, value in enumerate(fields[1:]) if value not in _SIGNS)
            raise DataError(f"{path}, line {line_number}, attribute {names[column]}: {fields[column + 1]!r} "
                            "is not 1 or -1; the file is damaged: download it again")
        if fields[0] in row_of:
            raise DataError(f"{path}, line {line_number}: {fields[0]} is listed twice")
        row_of[fields[0]] = len(rows)
        rows.append([_SIGNS[value] for value in fields[1:]])
    if int(lines[0]) != len(rows):
        logger.warning("%s announces %s images but has %d rows (truncated download?)",
                       path, lines[0].strip(), len(rows))
    return names, row_of, np.array(rows, dtype=bool).reshape(len(rows), len(names))


def _read_file_column(path: Path, allowed: tuple[int, ...] | None = None) -> tuple[dict[str, int], np.ndarray] | None:
    """file -> row and the int values of a `file value` file (partition, identity); None if absent."""
    if not path.is_file():
        return None
    row_of: dict[str, int] = {}
    values = []
    for line_number, line in enumerate(read_text(path, path.name).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not _is_count(fields[1]) or (allowed and int(fields[1]) not in allowed):
            expected = f"one of {allowed}" if allowed else "an integer"
            raise DataError(f"{path}, line {line_number}: expected 'file value' with value {expected}, got "
                            f"{line.strip()!r}; the file is damaged: download it again")
        row_of[fields[0]] = len(values)
        values.append(int(fields[1]))
    return row_of, np.array(values, dtype=np.int64)


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone accepts '²', which int() rejects
