"""Image grids and atomic PNG writing (shared by training samples, the CLI and the dashboard)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.fileio import write_bytes


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Float images in [0, 1] (or uint8 already), (N, 3, H, W) -> uint8 numpy."""
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    if images.dtype != np.uint8:
        images = (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)
    return images


def grid(images, ncol: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """(N, 3, H, W) -> one (rows*H, ncol*W, 3) uint8 picture, row-major, with `pad` px between tiles."""
    images = to_uint8(images)
    n, c, h, w = images.shape
    nrow = -(-n // ncol)
    out = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), fill, np.uint8)
    for i, img in enumerate(images):
        r, k = divmod(i, ncol)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = img.transpose(1, 2, 0)
    return out


def save_png(path: str | Path, picture: np.ndarray, scale: int = 1) -> Path:
    """Write an (H, W, 3) uint8 array as PNG atomically (temp file + rename), optionally upscaled."""
    image = Image.fromarray(picture)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes(path, buffer.getvalue())
    return Path(path)
