"""ModVAE's clamp term: pulls the means of clamped dims to their group mean.
"""
from __future__ import annotations
import torch
from core.models.modvae import Clamp


def clamp_loss(mu: torch.Tensor, clamp: Clamp) -> torch.Tensor:
    """ModVAE: squared distance of clamped dims' means to their (fixed) group mean, summed over dims."""
    target = clamp.group_mean(mu).detach()
    return ((mu - target).pow(2) * clamp.mask).sum(1).mean()
