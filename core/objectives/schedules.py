"""Weights that change with the training step (KL warm-up, capacity annealing).
"""
from __future__ import annotations


class LinearWarmup:
    """Weight ramping linearly from 0 to `end` over `steps` steps (constant `end` if steps == 0)."""

    def __init__(self, end: float, steps: int):
        self.end, self.steps = end, steps

    def __call__(self, step: int) -> float:
        return self.end if self.steps <= 0 else self.end * min(1.0, step / self.steps)
