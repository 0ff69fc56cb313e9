"""Masked edits: the edited face composited over the original photo with the mask head's person mask, so an edit
changes the person and never the background (issue 15 §4, after a source project's design)."""
from __future__ import annotations

import numpy as np

from core.explore.generate import decode
from core.models.vae import VAE


def composite(original: np.ndarray, edited: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 mask · edited + (1 − mask) · original; images (..., 3, H, W), masks (..., 1, H, W), 255 = edited
    (leading shapes broadcast: one original under a row of edits)."""
    m = mask.astype(np.int32)
    out = (m * edited.astype(np.int32) + (255 - m) * original.astype(np.int32) + 127) // 255
    return out.astype(np.uint8)


def masked_edit(model: VAE, original: np.ndarray, z: np.ndarray, edited_codes: np.ndarray) -> np.ndarray:
    """uint8 edits (..., 3, 64, 64) of codes `edited_codes` (n, ..., D) composited over the faces `original`
    (n, 3, 64, 64) whose codes are `z` (n, D). The mask is the union of the person the model sees in the face and in
    the edit, so a person the edit grows (longer hair) is drawn and one it shrinks leaves no hole."""
    extra = edited_codes.ndim - 2  # the leading axes after the face axis (α steps)
    where = (slice(None), *([None] * extra))
    edits = decode(model, edited_codes, part="both")  # one decoder pass for the edit and its mask
    mask = np.maximum(decode(model, z, part="mask")[where], edits[..., 3:, :, :])
    return composite(original[where], edits[..., :3, :, :], mask)


def change_outside(before: np.ndarray, after: np.ndarray, person: np.ndarray) -> float:
    """Mean absolute change in grey levels (0-255, over channels) of the pixels outside the true person masks
    `person` (n, 1, H, W) uint8 (below half): how much an edit moved the background."""
    background = np.broadcast_to(person < 128, before.shape)
    diff = np.abs(after.astype(np.int16) - before.astype(np.int16))
    return float(diff[background].mean()) if background.any() else 0.0
