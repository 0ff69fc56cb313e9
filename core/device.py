"""Where tensors live: choosing the compute device, and uint8 host images as float tensors on it.

The one uint8 -> float path of the project: the trainer's feed, evaluation and exploration all use it.
"""
from __future__ import annotations

import re

import numpy as np
import torch

from core.config import DEVICE_PATTERN, ConfigError


def staged(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host images ready for an asynchronous copy to `device` (pinned on CUDA)."""
    images = torch.from_numpy(np.ascontiguousarray(images))
    return images.pin_memory() if device.type == "cuda" else images


def as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 image tensor -> float32 in [0, 1] on its device (uint8 only: float32 input is divided in place)."""
    return images.float().div_(255)


def pick_device(name: str) -> torch.device:
    """The torch device a `--device` value names ('auto': CUDA if available, else CPU). ConfigError for a value that
    is not auto, cpu, cuda, cuda:N or mps, for CUDA (or MPS) on a machine without it, and for cuda:N when there
    are not N + 1 GPUs: all before anything is created."""
    if not isinstance(name, str) or not re.fullmatch(DEVICE_PATTERN, name, re.ASCII):
        raise ConfigError(f"--device {name!r}: use auto, cpu, cuda, cuda:N (N = 0, 1, ...) or mps")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} was asked for, but PyTorch sees no CUDA GPU on this machine; "
                              "use --device cpu")
        count = torch.cuda.device_count()
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError(f"--device {name}: this machine has {count} CUDA GPU{'s' if count != 1 else ''} "
                              f"(cuda:0 to cuda:{count - 1}); pick one of them, or --device cuda")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for, but PyTorch sees no Apple GPU (MPS) here; use --device cpu")
    return torch.device(name)


def to_float(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 host images -> float in [0, 1] on `device`, through the feed's own staging and conversion."""
    device = torch.device(device)  # callers pass "cpu" as often as a torch.device
    return as_float(staged(images, device).to(device, non_blocking=True))
