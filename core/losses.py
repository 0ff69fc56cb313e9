"""Loss terms, kept apart from the models and composed by `Objective`.

Every term is summed over pixels / latent dims and averaged over the batch, so beta means the same
thing for every image size and batch size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.config import LossConfig
from core.models.modvae import Clamp
from core.models.vae import Output


def reconstruction(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Negative log-likelihood per image (up to a constant), averaged over the batch.

    The decoder mean is sigmoid(logits) for every kind. bernoulli: BCE with logits;
    gaussian: squared error (fixed variance 1/2); laplace: absolute error (fixed scale 1).
    """
    if kind == "bernoulli":
        per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif kind == "gaussian":
        per_pixel = (torch.sigmoid(logits) - x) ** 2
    elif kind == "laplace":
        per_pixel = (torch.sigmoid(logits) - x).abs()
    else:
        raise ValueError(f"unknown reconstruction {kind!r}")
    return per_pixel.flatten(1).sum(1).mean()


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent dim, averaged over the batch: (D,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(0)


def clamp_loss(mu: torch.Tensor, clamp: Clamp) -> torch.Tensor:
    """ModVAE: squared distance of clamped dims' means to their (fixed) group mean, summed over dims."""
    target = clamp.group_mean(mu).detach()
    return ((mu - target).pow(2) * clamp.mask).sum(1).mean()


class LinearWarmup:
    """Weight ramping linearly from 0 to `end` over `steps` steps (constant `end` if steps == 0)."""

    def __init__(self, end: float, steps: int):
        self.end, self.steps = end, steps

    def __call__(self, step: int) -> float:
        return self.end if self.steps <= 0 else self.end * min(1.0, step / self.steps)


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
