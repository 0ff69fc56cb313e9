"""Labeled Faces in the Wild: `lfw/` or `lfw-deepfunneled/` with <Name>/<Name>_0001.jpg (250x250).

Identities come from the folder names. Attributes come from `lfw_attributes.txt`
(Kumar et al.'s 73 attribute scores) when it sits in the image folder or the one above;
they are binarised at 0 and renamed CelebA-style ("Black Hair" -> "Black_Hair",
"5 o' Clock Shadow" -> "5_o_Clock_Shadow"). That file covers most but not all of the
13,233 images: images without a row are kept with all attributes False, counted in
`unlabelled_count` and marked False in `has_attributes`, so analyses can exclude them.
"""
from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

import numpy as np

from core.data.base import DataError, read_text
from core.data.labelled import AttributeTable, CachedImageDataset
from core.data.decode import SquareCrop, list_images

# Preferred first: the deep-funneled images are aligned, which crops need.
IMAGE_DIRS = ("lfw-deepfunneled", "lfw_funneled", "lfw")
ATTR_FILE = "lfw_attributes.txt"
# Framed like CelebA's 148 px crop so models and attribute directions transfer between the two:
# in 250x250 deep-funneled LFW the eyes sit near (104, 113) and (146, 113), 42 px apart; CelebA's
# crop is 3.9 eye distances wide with the eyes 48% down. Hence a 164 px square, box
# (43, 34, 207, 198): centred horizontally, 9 px above the vertical centre. It shows the whole
# face with some hair and chin; a tighter face-only crop would be ~115 px around (125, 130).
CROP = SquareCrop(side=164 / 250, dy=-9 / 250)
# Fractions of identities in train / val / test.
SPLIT_FRACTIONS = (0.8, 0.1)


class LFW(CachedImageDataset):
    """Labeled Faces in the Wild from a local folder, with person ids and identity-disjoint train/val/test splits."""

    name = "lfw"
    crop = CROP

    def __init__(self, root: str | Path, cache_dir: str | Path | None = None, progress: bool = True):
        super().__init__()
        self.root = self._find_image_root(Path(root).expanduser())
        files = [file for file in list_images(self.root) if file.count("/") == 1]
        if not files:
            raise DataError(f"no images found in the person folders of {self.root}")
        source = self._find_attribute_file()
        labels = None if source is None else read_attribute_file(source)
        self._decode_labelled(files, cache_dir, progress, labels, hint="is it the attribute file of this LFW download?")

        people = [file.split("/")[0] for file in self.files]
        self.identity_names = sorted(set(people))
        id_of = {name: i for i, name in enumerate(self.identity_names)}
        self.identities = np.array([id_of[name] for name in people], dtype=np.int64)
        self.split = identity_split(self.identity_names)[self.identities]

    @property
    def unlabelled_count(self) -> int:
        """Images with no row in lfw_attributes.txt (all of them when the file is absent)."""
        return int((~self.has_attributes).sum())

    def _find_image_root(self, root: Path) -> Path:
        if not root.is_dir():
            raise DataError(f"LFW folder {root} does not exist; pass the extracted lfw/ or lfw-deepfunneled/ folder")
        if _is_person_folder(root):
            raise DataError(f"{root} is one person's folder; pass the LFW folder above it, {root.parent}")
        if _has_person_folders(root):
            return root
        for name in IMAGE_DIRS:
            if _has_person_folders(root / name):
                self._note(f"using the images in {root / name}", level=logging.INFO)
                return root / name
        raise DataError(f"{root} holds no LFW person folders (<Name>/<Name>_0001.jpg); pass the extracted "
                        f"lfw/ or lfw-deepfunneled/ folder, or the folder that contains it")

    def _find_attribute_file(self) -> Path | None:
        for folder in (self.root, self.root.parent):
            if (folder / ATTR_FILE).is_file():
                return folder / ATTR_FILE
        self._note(f"no {ATTR_FILE} in {self.root} or {self.root.parent}: no attributes", level=logging.INFO)
        return None


def _is_person_folder(folder: Path) -> bool:
    return (folder / f"{folder.name}_0001.jpg").is_file()


def _has_person_folders(folder: Path) -> bool:
    return folder.is_dir() and any(child.is_dir() and _is_person_folder(child) for child in folder.iterdir())


def identity_split(names: list[str]) -> np.ndarray:
    """int8 split per person from a hash of the name: stable across runs, machines and
    data subsets, and a person never appears in two splits."""
    train, val = SPLIT_FRACTIONS
    u = np.array([int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64 for name in names])
    return np.where(u < train, 0, np.where(u < train + val, 1, 2)).astype(np.int8)


def celeba_style(name: str) -> str:
    """'Black Hair' -> 'Black_Hair', "5 o' Clock Shadow" -> '5_o_Clock_Shadow' (CelebA's spelling)."""
    return re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_")


def read_attribute_file(path: Path) -> AttributeTable:
    """The attributes of lfw_attributes.txt, binarised at 0, with CelebA-style names.

    Layout: free-text lines, then a header `#<TAB>person<TAB>imagenum<TAB>name...`, then
    `Person Name<TAB>3<TAB>score...` rows, which name the image Person_Name/Person_Name_0003.jpg.
    """
    names: list[str] | None = None
    row_of: dict[str, int] = {}
    rows = []
    for line_number, line in enumerate(read_text(path, "lfw_attributes.txt").splitlines(), start=1):
        if names is None:
            if line.startswith("#"):
                names = _header(path, line_number, line)
            continue
        fields = [field.strip() for field in line.strip().split("\t")]
        if fields == [""] or line.startswith("#"):
            continue
        if len(fields) != len(names) + 2:
            raise DataError(f"{path}, line {line_number}: {len(fields)} tab-separated fields, expected "
                            f"{len(names) + 2} (person, imagenum and {len(names)} attribute scores)")
        folder = fields[0].replace(" ", "_")
        row_of[f"{folder}/{folder}_{_number(path, line_number, 'imagenum', fields[1]):04d}.jpg"] = len(rows)
        rows.append([_number(path, line_number, name, score) > 0 for name, score in zip(names, fields[2:])])
    if names is None:
        raise DataError(f"{path} has no header line starting with '#' (#, person, imagenum, attribute names); "
                        "is it lfw_attributes.txt?")
    return AttributeTable(path, names, row_of, np.array(rows, dtype=bool).reshape(len(rows), len(names)))


def _number(path: Path, line_number: int, column: str, text: str) -> int | float:
    try:
        return int(text) if column == "imagenum" else float(text)
    except ValueError:
        raise DataError(f"{path}, line {line_number}, column {column}: {text!r} is not a number") from None


def _header(path: Path, line_number: int, line: str) -> list[str]:
    fields = [field.strip() for field in line[1:].split("\t") if field.strip()]
    if [field.lower() for field in fields[:2]] != ["person", "imagenum"] or len(fields) < 3:
        raise DataError(f"{path}, line {line_number}: the header must read '#', 'person', 'imagenum' and the "
                        f"attribute names, tab-separated; got {line.strip()[:80]!r}")
    return [celeba_style(name) for name in fields[2:]]
