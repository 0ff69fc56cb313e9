"""The speed-ups of a training step, one switch each, shared by the trainer and benchmarks/train_throughput.py.

On CUDA the trainer turns on bf16 autocast, channels_last and fused Adam by default (`--plain` turns them off);
on CPU they stay off unless asked for with `--fast`, because bf16 matmuls are slower on CPUs without bf16 units.
torch.compile is separate (`--compile`): it costs a minute of compilation before the first step.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable

import torch
from torch import nn

MODES = ("auto", "fast", "plain")


@dataclass(frozen=True)
class Speedups:
    """Which speed-ups a training step uses; each switch changes speed, not what is computed (up to bf16 rounding)."""

    bf16: bool = False
    channels_last: bool = False
    fused_adam: bool = False
    compiled: bool = False

    @classmethod
    def for_run(cls, mode: str, compile: bool, device: torch.device) -> "Speedups":
        """The switches for mode 'plain', 'fast' or 'auto' (all on CUDA, none on CPU) on `device`, plus compile."""
        fast = mode == "fast" or (mode == "auto" and device.type == "cuda")
        return cls(bf16=fast, channels_last=fast, fused_adam=fast, compiled=compile)

    def names(self) -> list[str]:
        """The names of the switches that are on, e.g. ['bf16', 'channels_last'], as the run's status lists them."""
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def prepare(self, model: nn.Module) -> nn.Module:
        """`model` in the memory format the step wants (in place)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def forward(self, module: nn.Module) -> nn.Module:
        """The module to call for the forward pass: torch.compile'd when `compiled`, else `module` itself."""
        return torch.compile(module) if self.compiled else module

    def optimizer(self, params: Iterable[torch.Tensor], lr: float) -> torch.optim.Adam:
        """Adam over `params` at learning rate `lr`, fused (one kernel per step) when `fused_adam`."""
        return torch.optim.Adam(params, lr=lr, fused=True if self.fused_adam else None)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """An image batch (N, 3, 64, 64) in the memory format the model was prepared in."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self, device: torch.device):
        """bf16 for the network only: callers compute the losses from `.float()` outputs, so the per-dim KL and
        the pixel sums keep fp32 precision."""
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)
