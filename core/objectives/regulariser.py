"""Regularisers by name: loss terms a model family adds to the ELBO's. Each is one file in core/objectives/ that
registers a `Regulariser`; a family (core.models.family) names the ones it uses, and `Objective` adds each,
weighted by its LossConfig field, and logs it under its name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from core.models.modvae import Clamp
from core.models.vae import Output
from core.registry import Registry

Term = Callable[[Output, "Clamp | None"], torch.Tensor]  # (model output, batch groups) -> scalar


@dataclass(frozen=True)
class Regulariser:
    """A named extra loss term and the LossConfig field that weighs it."""

    name: str
    summary: str
    weight: str  # a LossConfig field name
    term: Term


REGULARISERS: Registry[Regulariser] = Registry("regulariser")
