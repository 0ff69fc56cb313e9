"""Loss terms, kept apart from the models and composed by `Objective`.

Every term is summed over pixels / latent dims and averaged over the batch, so beta means the same
thing for every image size and batch size.
"""
from __future__ import annotations
from dataclasses import dataclass
import torch
from core.config import LossConfig
from core.models.modvae import Clamp
from core.models.vae import Output
from core.objectives.clamp import clamp_loss
from core.objectives.kl import kl_per_dim
from core.objectives.likelihoods import reconstruction
from core.objectives.schedules import LinearWarmup


@dataclass
class Objective:
    """recon + beta(t) * KL, or recon + gamma * |KL - C(t)| with capacity annealing, + clamp term."""

    config: LossConfig

    def __post_init__(self):
        c = self.config
        self.beta = LinearWarmup(c.beta, c.warmup_steps)
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
        if clamp is not None:
            terms["clamp"] = clamp_loss(out.mu, clamp)
            loss = loss + self.config.clamp_weight * terms["clamp"]
        terms["loss"] = loss
        return terms
