"""Loss terms, kept apart from the models and composed by `Objective`.

Every term is summed over pixels / latent dims and averaged over the batch, so beta means the same
thing for every image size and batch size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from core.models.modvae import Clamp
from core.models.vae import Output
from core.objectives.regulariser import REGULARISERS
from core.objectives.kl import kl_per_dim
from core.objectives.likelihoods import reconstruction
from core.objectives.schedules import LinearWarmup

if TYPE_CHECKING:  # config builds on the objectives' names, so the objectives see it only as a type
    from core.config import LossConfig


@dataclass
class Objective:
    """recon + beta(t) * KL, or recon + gamma * |KL - C(t)| with capacity annealing, + each named regulariser times
    its weight. `config` must have its family defaults applied (RunConfig does that)."""

    config: LossConfig
    regularisers: tuple[str, ...] = ()  # names in REGULARISERS, usually the model family's

    def __post_init__(self):
        c = self.config
        if c.beta is None or c.warmup_steps is None:
            raise ValueError("LossConfig.beta / warmup_steps are unset: build the config through RunConfig, which "
                             "applies the model family's defaults, or give them")
        self.beta = LinearWarmup(c.beta, c.warmup_steps)
        self.extra = [REGULARISERS[name] for name in self.regularisers]
        self.capacity = LinearWarmup(c.capacity_max, c.capacity_steps) if c.capacity_max > 0 else None

    def __call__(self, out: Output, x: torch.Tensor, step: int, clamp: Clamp | None = None) -> dict[str, torch.Tensor]:
        recon = reconstruction(out.logits, x, self.config.reconstruction)
        kl_dims = kl_per_dim(out.mu, out.logvar)
        kl = kl_dims.sum()
        if self.capacity is not None:
            kl_term = self.config.capacity_gamma * (kl - self.capacity(step)).abs()
        else:
            kl_term = self.beta(step) * kl
        terms = {"recon": recon, "kl": kl, "kl_dims": kl_dims}
        loss = recon + kl_term
        for reg in self.extra:
            terms[reg.name] = reg.term(out, clamp)
            loss = loss + getattr(self.config, reg.weight) * terms[reg.name]
        terms["loss"] = loss
        return terms
