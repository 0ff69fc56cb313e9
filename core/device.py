"""Where tensors live: choosing the compute device, and uint8 host images as float tensors on it.

The one uint8 -> float path of the project: the trainer's feed, evaluation and exploration all use it. Also how
inference runs fastest on a CPU: channels-last weights, batches of INFERENCE_BATCH, freed memory kept for reuse.
"""
from __future__ import annotations

import ctypes
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


# Images per forward pass of inference. A pass's largest activation (the small preset's first convolution: 128 x 32 x
# 32 x 32 float32, 16 MB) stays below glibc's highest mmap threshold (32 MB), so freed activations are reused; at 512
# images every pass mapped and zeroed fresh pages, as much system time as the computation itself (2x the CPU seconds).
INFERENCE_BATCH = 128
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def inference_layout(model: torch.nn.Module) -> torch.nn.Module:
    """`model`, for inference: its convolution weights made channels-last in place on the CPU (unchanged elsewhere;
    give it a copy of a shared model). oneDNN's channels-last kernels ran the small preset's encoder 1.4-2x and
    decoder 1.5x faster on a 2-core CPU (the standard preset's decoder 1.45x), with results equal to float rounding
    (|difference| < 3e-6)."""
    if next(model.parameters()).device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


def reuse_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse in this process: blocks up to 32 MB (its highest mmap
    threshold) come from the heap, and the heap is not trimmed below 1 GB. Inference frees and allocates the same
    activations batch after batch; by default they are returned to the system and come back as fresh zeroed pages,
    which took a third of the IWAE bound's CPU time. False where there is no glibc (macOS, musl): nothing changes."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
