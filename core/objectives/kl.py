"""The KL divergence of the posterior from the N(0, I) prior, per latent dim.
"""
from __future__ import annotations
import torch


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) per latent dim, averaged over the batch: (D,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean(0)
