"""Hand labels of latent dims, stored in RUN/labels.json.

{"dims": {"16": {"label": "hair colour", "meaningful": true, "note": "dark to blond"}}, "updated": ...}

Writes are read-modify-write under a lock file and land atomically, so two browser sessions labelling
the same run never lose each other's labels, and a crash never leaves a half-written file.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass

from core.fileio import UntrustedFileError, locked, read_json, write_json
from core.schema import Bool, MapOf, Num, Obj, Str
from core.runs.folder import Run

FILE = "labels.json"
MAX_TEXT = 500
# labels.json: {"dims": {"<dim>": {"label": str, "meaningful": bool, "note": str}}, "updated": number}
LABELS = Obj({"dims": MapOf(Obj({"label": Str(), "meaningful": Bool(), "note": Str()}),
                            key=Str(6, pattern=r"[0-9]{1,6}")),
              "updated": Num()}, required=("dims",))


class LabelError(ValueError):
    """A labels file that cannot be read, or a label that cannot be saved (bad dim); the message says which."""


@dataclass(frozen=True)
class DimLabel:
    """One latent dim's hand label: what it encodes, whether it is meaningful, and a free-text note."""

    label: str = ""
    meaningful: bool = False
    note: str = ""


def load_labels(run: Run) -> dict[int, DimLabel]:
    """Labels by dim. A missing file means no labels; a corrupt one is reported (LabelError naming the file, what is
    wrong and the fix: core.fileio's reader with the LABELS schema), never silently replaced."""
    try:
        data = read_json(run.path / FILE, LABELS, missing=None, fix="fix or delete it")
    except UntrustedFileError as e:
        raise LabelError(str(e)) from None
    if data is None:
        return {}
    return {int(d): DimLabel(v.get("label", "")[:MAX_TEXT], v.get("meaningful", False), v.get("note", "")[:MAX_TEXT])
            for d, v in data["dims"].items()}


def save_label(run: Run, dim: int, label: DimLabel) -> dict[int, DimLabel]:
    """Set (or, with an empty label, clear) one dim's label; returns all labels after the write."""
    latent_dim = run.config.arch.latent_dim
    if not 0 <= dim < latent_dim:
        raise LabelError(f"dim {dim} is outside 0..{latent_dim - 1} for run {run.name!r}")
    label = DimLabel(label.label.strip()[:MAX_TEXT], bool(label.meaningful), label.note.strip()[:MAX_TEXT])
    with locked(run.path / f".{FILE}.lock"):
        labels = load_labels(run)
        if label == DimLabel():
            labels.pop(dim, None)
        else:
            labels[dim] = label
        write_json(run.path / FILE, {"dims": {str(d): asdict(v) for d, v in sorted(labels.items())},
                                     "updated": time.time()})
    return labels


def dim_name(dim: int, labels: dict[int, DimLabel]) -> str:
    """How a dim is shown everywhere: 'z16' or 'z16 · hair colour'."""
    label = labels.get(dim)
    return f"z{dim} · {label.label}" if label and label.label else f"z{dim}"


def labels_json(labels: dict[int, DimLabel]) -> str:
    """The labels as a download, in the labels.json layout: {"dims": {"16": {...}}}."""
    return json.dumps({"dims": {str(d): asdict(v) for d, v in sorted(labels.items())}}, indent=2, ensure_ascii=False)


def labels_csv(labels: dict[int, DimLabel]) -> str:
    """The labels as CSV with a header: dim,label,meaningful,note (quoted as needed)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dim", "label", "meaningful", "note"])
    writer.writerows([d, v.label, v.meaningful, v.note] for d, v in sorted(labels.items()))
    return out.getvalue()
