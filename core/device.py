"""Where tensors live: choosing the compute device, and uint8 host images as float tensors on it.

The one uint8 -> float path of the project: the trainer's feed, evaluation and exploration all use it.
"""
from __future__ import annotations

import numpy as np
import torch

from core.config import ConfigError


def staged(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host images ready for an asynchronous copy to `device` (pinned on CUDA)."""
    images = torch.from_numpy(np.ascontiguousarray(images))
    return images.pin_memory() if device.type == "cuda" else images


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 image tensor -> float32 in [0, 1] on its device (uint8 only: float32 input is divided in place)."""
    return images.float().div_(255)


def pick_device(name: str) -> torch.device:
    """The torch device a `--device` value names ('auto': CUDA if available, else CPU); ConfigError for absent CUDA."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU on this machine; use --device cpu")
    return torch.device(name)


def to_float(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 host images -> float in [0, 1] on `device`, through the feed's own staging and conversion."""
    device = torch.device(device)  # callers pass "cpu" as often as a torch.device
    return as_float(staged(images, device).to(device, non_blocking=True))
