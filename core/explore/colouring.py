"""Colouring a 2-D map by attribute, factor or latent dim; selections, thumbnails and the TensorFlow Embedding
Projector export."""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


MAX_THUMBNAILS = 48


MAX_LEVELS = 12  # factors with more levels are coloured on a continuous scale


@dataclass(frozen=True)
class Colouring:
    """Per-point colour values and how to read them: "none", "levels" (ticks name each integer level; binary
    attributes are two levels) or "continuous" (`diverging`: centred on 0, as latent means are)."""

    kind: str
    title: str = ""
    values: np.ndarray | None = None
    ticks: tuple[str, ...] = ()
    diverging: bool = False


def colour_options(encodings: dict[str, np.ndarray]) -> list[tuple[str, int]]:
    """What a map can be coloured by: ("none", 0), ("attribute", i), ("factor", i), ("dim", d)."""
    options = [("none", 0)]
    options += [("attribute", i) for i in range(len(encodings["attribute_names"]))]
    options += [("factor", i) for i in range(len(encodings.get("factor_names", [])))]
    options += [("dim", d) for d in range(encodings["mu"].shape[1])]
    return options


def colouring(encodings: dict[str, np.ndarray], option: tuple[str, int], dim_label: Callable[[int], str] = str,
              dataset_name: str = "") -> Colouring:
    """How to colour the encoded points for one `colour_options` entry: attribute, factor level, latent mean or none."""
    kind, i = option
    if kind == "attribute":
        name = str(encodings["attribute_names"][i])
        values = encodings["attributes"][:, i].astype(np.int8)
        on = int(values.sum())
        return Colouring("levels", name, values, (f"not {name} ({len(values) - on:,})", f"{name} ({on:,})"))
    if kind == "factor":
        name = str(encodings["factor_names"][i])
        values = encodings["factors"][:, i]
        levels = factor_levels(dataset_name, name, int(values.max()) + 1 if len(values) else 0)
        if len(levels) <= MAX_LEVELS:
            return Colouring("levels", name, values, tuple(levels))
        return Colouring("continuous", f"{name} (level)", values.astype(np.float32))
    if kind == "dim":
        return Colouring("continuous", dim_label(i), encodings["mu"][:, i], diverging=True)
    return Colouring("none")


def factor_levels(dataset_name: str, factor: str, count: int) -> list[str]:
    """Names of a factor's levels where the data set names them, else "0", "1", ..."""
    if dataset_name == "synthfaces":
        from core.data.synthfaces import LEVEL_NAMES

        if factor in LEVEL_NAMES:
            return list(LEVEL_NAMES[factor])
    if dataset_name == "dsprites":
        from core.data.dsprites import SHAPES, DSprites

        if factor == "shape":
            return list(SHAPES)
        if factor in DSprites.factor_names:
            return [f"{v:.3g}" for v in DSprites.factor_values[DSprites.factor_names.index(factor)]]
    return [str(level) for level in range(count)]


def plot_order(n: int) -> np.ndarray:
    """A fixed shuffle for drawing: no class is painted over another just because it comes later in the file."""
    return np.random.default_rng(0).permutation(n)


def selected_rows(order: np.ndarray, point_indices: Sequence[int]) -> np.ndarray:
    """Rows of the encodings behind a chart selection (positions in the drawn `order`), sorted; positions from
    an older, larger map are dropped."""
    picked = np.asarray([p for p in point_indices if 0 <= p < len(order)], dtype=np.int64)
    return np.sort(order[picked])


def thumbnail_rows(selected: Sequence[int], limit: int = MAX_THUMBNAILS) -> np.ndarray:
    """At most `limit` of the selected rows, spread evenly over the selection (sorted)."""
    selected = np.unique(np.asarray(selected, dtype=np.int64))
    if len(selected) <= limit:
        return selected
    return selected[np.linspace(0, len(selected) - 1, limit).round().astype(np.int64)]


def selection_summary(encodings: dict[str, np.ndarray], selected: Sequence[int], top: int = 5) -> list[tuple[str, float, float]]:
    """The attributes that set a selection apart: (name, share in the selection, share overall), largest
    difference first."""
    attributes = encodings["attributes"].astype(np.float64)
    if len(selected) == 0 or attributes.shape[1] == 0:
        return []
    inside, overall = attributes[np.asarray(selected)].mean(axis=0), attributes.mean(axis=0)
    order = np.argsort(-np.abs(inside - overall), kind="stable")[:top]
    return [(str(encodings["attribute_names"][a]), float(inside[a]), float(overall[a])) for a in order]


def projector_tsv(mu: np.ndarray, index: np.ndarray, attribute_names: Sequence[str], attributes: np.ndarray,
                  factor_names: Sequence[str] = (), factors: np.ndarray | None = None,
                  dataset_name: str = "") -> tuple[bytes, bytes]:
    """Files for https://projector.tensorflow.org: vectors (one row of latent means per image, tab-separated,
    no header) and metadata (header `index`, the attributes as 0/1, the factors by level name)."""
    vectors = io.BytesIO()
    np.savetxt(vectors, np.asarray(mu, dtype=np.float32), fmt="%.6g", delimiter="\t")
    columns = [np.asarray(index).astype(str)]
    columns += [np.where(attributes[:, a], "1", "0") for a in range(len(attribute_names))]
    for f, name in enumerate(factor_names):
        count = int(factors[:, f].max()) + 1 if len(factors) else 0
        columns.append(np.array([_field(v) for v in factor_levels(dataset_name, str(name), count)])[factors[:, f]])
    header = ["index", *(_field(v) for v in attribute_names), *(_field(v) for v in factor_names)]
    rows = ["\t".join(header), *("\t".join(row) for row in zip(*columns))]
    return vectors.getvalue(), ("\n".join(rows) + "\n").encode()


def _field(value: str) -> str:
    """A TSV field never holds a tab or a line break (they would shift columns or rows in the Projector)."""
    return re.sub(r"[\t\r\n]+", " ", str(value)).strip()
