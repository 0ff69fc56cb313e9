"""Any folder of images (searched recursively), with optional binary attributes from a CSV.

    file,Smiling,Eyeglasses
    person1/a.jpg,1,0
    b.png,yes,no

`file` is relative to the image folder; values may be 1/0, 1/-1, true/false or yes/no.
Images with no CSV row are kept with all attributes False (`has_attributes` marks the
labelled ones). Each image is centre-cropped to a square of its shorter side.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from core.data.base import DataError, random_split, read_text
from core.data.decode import IMAGE_EXTENSIONS, SquareCrop, list_images
from core.data.labelled import AttributeTable, CachedImageDataset
from core.data.masks import MASK_DIR

_TRUE = {"1", "+1", "true", "yes", "y", "t"}
_FALSE = {"0", "-1", "false", "no", "n", "f"}


class ImageFolder(CachedImageDataset):
    """Every image under `root`, centre-cropped square, with a seeded 80/10/10 split and the CSV's attributes."""

    name = "folder"
    crop = SquareCrop()

    def __init__(self, root: str | Path, attributes_csv: str | Path | None = None,
                 cache_dir: str | Path | None = None, progress: bool = True, seed: int = 0):
        """`seed` (--data-seed): the random 80/10/10 train/val/test split's seed."""
        super().__init__()
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"image folder {self.root} does not exist or is not a folder; "
                            "pass the folder that holds your images")
        files = [f for f in list_images(self.root) if not f.startswith(f"{MASK_DIR}/")]  # masks are not faces
        if not files:
            raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {self.root} or its subfolders; "
                            "pass the folder that holds your images")
        labels = None if attributes_csv is None else read_attribute_csv(Path(attributes_csv).expanduser())
        self._decode_labelled(files, cache_dir, progress, labels,
                              hint=f"the `file` column must hold paths relative to {self.root}")
        self.split = random_split(len(self.files), seed=seed)


def read_attribute_csv(path: Path) -> AttributeTable:
    """The binary attributes of a `file,attr...` CSV."""
    if not path.is_file():
        raise DataError(f"attribute file {path} does not exist; pass the path of a CSV with a header "
                        "row like 'file,Smiling,Eyeglasses'")
    # read_text strips Excel's byte-order mark; newline="": the csv module handles \r\n itself.
    reader = csv.reader(io.StringIO(read_text(path, "an attributes CSV"), newline=""))
    try:
        line_of, names, rows = _parse(path, reader)
    except csv.Error as e:
        raise DataError(f"{path}, line {reader.line_num}: not a readable CSV ({e})") from None
    row_of = {file: i for i, file in enumerate(line_of)}
    return AttributeTable(path, names, row_of, np.array(rows, dtype=bool).reshape(len(rows), len(names)))


def _parse(path: Path, reader) -> tuple[dict[str, int], list[str], list[list[bool]]]:
    header = [name.strip() for name in next(reader, [])]
    names = header[1:]
    if not header or header[0].lower() != "file" or not names or "" in names:
        raise DataError(f"{path}, line 1: the header must be 'file' followed by attribute names, comma-separated "
                        f"(e.g. 'file,Smiling,Eyeglasses'); got {','.join(header)[:80]!r}")
    if len(set(names)) < len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"{path}, line 1: attribute names repeat: {repeated}; name each column once")
    line_of: dict[str, int] = {}
    rows = []
    for row in reader:
        if not any(value.strip() for value in row):
            continue
        if len(row) != len(header):
            raise DataError(f"{path}, line {reader.line_num}: {len(row)} values, expected {len(header)} "
                            f"(file and {len(names)} attributes)")
        file = _normalise(row[0])
        if file in line_of:
            raise DataError(f"{path}, line {reader.line_num}: {file} is already listed on line "
                            f"{line_of[file]}; list each image once")
        line_of[file] = reader.line_num
        rows.append([_binary(path, reader.line_num, name, value) for name, value in zip(names, row[1:])])
    return line_of, names, rows


def _normalise(file: str) -> str:
    """Same spelling as `list_images`: '/' separators (Windows users write '\\'), no './'."""
    file = file.strip().replace("\\", "/")
    return file[2:] if file.startswith("./") else file


def _binary(path: Path, line_number: int, column: str, value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(f"{path}, line {line_number}, column {column}: {value!r} is not a binary value; "
                    "use 1/0, 1/-1, true/false or yes/no")
