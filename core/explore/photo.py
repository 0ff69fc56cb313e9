"""Editing a user's own photo (framed and shrunk by core.data.photo): its code, the edits the Arithmetic page makes
to data set faces (attribute vectors, conditions) plus moving one labelled dim, and the result as one PNG."""
from __future__ import annotations

import numpy as np
import torch

from core.data.images import grid
from core.device import to_float
from core.explore.arithmetic import VectorError
from core.explore.condition import ConditionError
from core.explore.traverse import png_bytes
from core.models.cvae import is_conditional
from core.models.vae import VAE


@torch.inference_mode()
def encode_photo(model: VAE, face: np.ndarray) -> np.ndarray:
    """The posterior mean (1, D) of one face (3, 64, 64) uint8. A conditional model encodes it under its default
    condition (the training faces' attribute frequencies): a photo comes without labels."""
    device = next(model.parameters()).device
    return model.encode(to_float(np.asarray(face, dtype=np.uint8)[None], device))[0].float().cpu().numpy()


def photo_condition(model, names) -> np.ndarray | None:
    """The condition row (1, A) a conditional model encoded the photo under, for core.explore.condition's edits
    (None for an unconditional model); `names` are the data set's attribute names, the model's condition columns."""
    if not is_conditional(model):
        return None
    if len(names) != model.cond_dim:
        raise ConditionError(f"the model is conditioned on {model.cond_dim} attributes, but the data set has "
                             f"{len(names)}: explore it with the data set it was trained on")
    return model.condition_mean.float().cpu().numpy()[None]


def dim_direction(latent_dim: int, dim: int) -> np.ndarray:
    """ΔZ (D,) that moves only latent dim `dim`: z + α·ΔZ adds α (prior standard deviations) to it."""
    if not 0 <= dim < latent_dim:
        raise VectorError(f"dim {dim} is outside 0..{latent_dim - 1}")
    delta = np.zeros(latent_dim, np.float32)
    delta[dim] = 1.0
    return delta


def triptych_png(original: np.ndarray, reconstruction: np.ndarray, edited: np.ndarray, scale: int = 4) -> bytes:
    """One PNG of three (3, 64, 64) images side by side (original | reconstruction | edit), 2 px white gaps, every
    pixel blown up to `scale` x `scale` (nearest neighbour: a 64-px face stays sharp)."""
    picture = grid(np.stack([original, reconstruction, edited]), ncol=3)
    return png_bytes(picture.repeat(scale, axis=0).repeat(scale, axis=1))
