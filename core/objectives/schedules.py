"""Weights that change with the training step (KL warm-up, capacity annealing, the learning rate).
"""
from __future__ import annotations

import math


class LinearWarmup:
    """Weight ramping linearly from 0 to `end` over `steps` steps (constant `end` if steps == 0)."""

    def __init__(self, end: float, steps: int):
        self.end, self.steps = end, steps

    def __call__(self, step: int) -> float:
        return self.end if self.steps <= 0 else self.end * min(1.0, step / self.steps)


class LearningRate:
    """`peak` after a linear warm-up of `warmup` steps, then constant or cosine-decayed to 0 at step `total`."""

    def __init__(self, peak: float, warmup: int, decay: str, total: int):
        self.peak, self.warmup, self.decay, self.total = peak, warmup, decay, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        if self.decay == "constant" or self.total <= self.warmup:
            return self.peak
        done = min(1.0, (step - self.warmup) / (self.total - self.warmup))
        return self.peak * 0.5 * (1 + math.cos(math.pi * done))
