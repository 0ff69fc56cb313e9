"""Edits by condition: a conditional VAE's face decoded again from the same code with one attribute's condition
changed (beside the vector edits z + α·ΔZ of core.explore.arithmetic, on the same faces).

A CVAE (core.models.cvae) takes the attributes y as an input of its encoder and decoder, so an attribute need not
be found as a direction in the code: the face is encoded under its own attributes, and its code is decoded with
y[attribute] set to α, 0 meaning "without" and 1 "with"; values in between interpolate, values beyond extrapolate.
Every other attribute keeps the face's own value.
"""
from __future__ import annotations

import numpy as np

from core.data import DataError, Dataset
from core.explore.generate import decode
from core.models.cvae import is_conditional


class ConditionError(DataError):
    """A condition edit cannot be made: the run is not conditional, or the attributes do not match its model."""


def face_conditions(model, dataset: Dataset, index: np.ndarray) -> np.ndarray | None:
    """The attribute rows (len(index), A), float32 0 / 1, of data set images `index`: the conditions a conditional
    `model` encodes and reconstructs them under. None for an unconditional model."""
    if not is_conditional(model):
        return None
    values = np.asarray(dataset.attributes.values)
    width = values.shape[1] if values.ndim == 2 else 0
    if width != model.cond_dim:
        raise ConditionError(f"the model is conditioned on {model.cond_dim} attributes, but the data set "
                             f"{dataset.name} has {width}: explore it with the data set it was trained on")
    return values[np.asarray(index, dtype=np.int64)].astype(np.float32)


def attribute_column(names, attribute: str) -> int:
    """The position of `attribute` in a condition row (the data set's attribute order)."""
    names = [str(n) for n in names]
    if attribute not in names:
        raise ConditionError(f"unknown attribute {attribute!r}; this data set has: {', '.join(names) or 'none'}")
    return names.index(attribute)


def set_condition(y: np.ndarray, column: int, alphas) -> np.ndarray:
    """Conditions (N, len(alphas), A) float32: each face's row `y` (N, A) with entry `column` set to every α."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 2 or not 0 <= column < y.shape[1]:
        raise ConditionError(f"attribute column {column} for conditions of shape {y.shape}")
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float32))
    out = np.repeat(y[:, None, :], len(alphas), axis=1)
    out[:, :, column] = alphas[None, :]
    return out


def condition_edit(model, z: np.ndarray, y: np.ndarray, column: int, alphas) -> np.ndarray:
    """uint8 images (N, len(alphas), 3, 64, 64): codes `z` (N, D) decoded under their faces' conditions `y` (N, A)
    with attribute `column` set to each α (0: off, 1: on). ConditionError for an unconditional model."""
    if not is_conditional(model):
        raise ConditionError("edits by condition need a conditional model (cvae); this run's model takes no "
                             "condition: edit by vector instead")
    z = np.asarray(z, dtype=np.float32)
    conditions = set_condition(y, column, alphas)
    codes = np.repeat(z[:, None, :], conditions.shape[1], axis=1)
    return decode(model, codes, y=conditions)


def reconstruct(model, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """uint8 images (N, 3, 64, 64) of codes `z` decoded under their faces' own conditions `y` (None: unconditional,
    or the model's default condition)."""
    return decode(model, z, y=y)
