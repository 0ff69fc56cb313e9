"""Decoding codes to images, prior samples, interpolation paths between two codes, and choosing faces by index."""
from __future__ import annotations

import numpy as np
import torch

from core.data import DataError
from core.data.images import to_uint8
from core.models.vae import VAE

INTERPOLATIONS = ("linear", "spherical")


@torch.inference_mode()
def decode(model: VAE, z: np.ndarray, batch_size: int = 256, y: np.ndarray | None = None,
           part: str = "image") -> np.ndarray:
    """Codes (..., D) -> uint8 images (..., 3, 64, 64); any leading shape (faces × steps) is kept. `y`: a
    conditional model's conditions (..., A) with the same leading shape (None: the model's default, see
    core.models.cvae); only conditional models take it. `part`: "image", "mask" (the mask head's person masks
    (..., 1, 64, 64), 255 on the person) or "both" (image then mask, (..., 4, 64, 64), from one decoder pass)."""
    z = np.asarray(z, dtype=np.float32)
    flat = z.reshape(-1, z.shape[-1])
    conditions = None if y is None else np.asarray(y, dtype=np.float32).reshape(len(flat), -1)
    device = next(model.parameters()).device

    def given(i: int) -> dict:
        return {} if conditions is None else {"y": torch.from_numpy(conditions[i:i + batch_size]).to(device)}

    draw, channels = {"image": (model.decode, 3), "mask": (model.decode_mask, 1),
                      "both": (lambda codes, **y: torch.sigmoid(model.decode_channels(codes, **y)), 4)}[part]
    parts = [to_uint8(draw(torch.from_numpy(flat[i:i + batch_size]).to(device), **given(i)))
             for i in range(0, len(flat), batch_size)]
    images = np.concatenate(parts) if parts else np.zeros((0, channels, 64, 64), np.uint8)
    return images.reshape(*z.shape[:-1], *images.shape[1:])


def prior_codes(latent_dim: int, n: int, seed: int, temperature: float = 1.0) -> np.ndarray:
    """(n, D) codes from N(0, temperature² I); the same seed gives the same codes for any n prefix."""
    if temperature < 0:
        raise ValueError(f"temperature {temperature}: must be >= 0")
    return (temperature * np.random.default_rng(seed).standard_normal((n, latent_dim))).astype(np.float32)


def interpolate(z0: np.ndarray, z1: np.ndarray, steps: int, method: str = "linear") -> np.ndarray:
    """(steps, D) codes from z0 to z1 inclusive. 'spherical' is slerp (White 2016): it follows the great
    circle between the two directions while blending the lengths, so midpoints keep a typical norm
    instead of shrinking towards the origin as straight lines between Gaussian codes do."""
    if steps < 2:
        raise ValueError(f"steps {steps}: need at least 2 (the two end points)")
    if method not in INTERPOLATIONS:
        raise ValueError(f"interpolation {method!r}: use one of {', '.join(INTERPOLATIONS)}")
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if method == "spherical" and n0 > 0 and n1 > 0:
        omega = np.arccos(np.clip(z0 @ z1 / (n0 * n1), -1.0, 1.0))
        if omega > 1e-6:  # for parallel codes slerp degenerates to the straight line below
            return ((np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)).astype(np.float32)
    return ((1 - t) * z0 + t * z1).astype(np.float32)


# --- choosing faces ------------------------------------------------------------------------------

def parse_indices(text: str, size: int) -> np.ndarray:
    """'12, 40 7' -> [12, 40, 7]: data set indices typed by hand, each checked against the data set's size."""
    tokens = text.replace(",", " ").split()
    if not tokens:
        raise DataError("no face indices given: type data set indices separated by commas, e.g. 12, 40, 7")
    out = []
    for token in tokens:
        if not token.lstrip("-").isdigit():
            raise DataError(f"face index {token!r} is not a whole number: type indices like 12, 40, 7")
        value = int(token)
        if not 0 <= value < size:
            raise DataError(f"face index {value} is outside this data set: use 0 to {size - 1}")
        out.append(value)
    return np.array(out, dtype=np.int64)


def sample_indices(pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """`n` distinct indices drawn from `pool` (all of it when it is smaller), reproducible from `seed`."""
    pool = np.asarray(pool, dtype=np.int64)
    return np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False)
