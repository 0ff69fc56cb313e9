"""ModVAE's clamp term: pulls the encoder means of clamped dims to their group mean (DC-IGN's invariance)."""
from __future__ import annotations

import torch

from core.models.modvae import Clamp
from core.models.vae import Output
from core.objectives.regulariser import REGULARISERS, Regulariser


def clamp_loss(mu: torch.Tensor, clamp: Clamp, group_mean: torch.Tensor | None = None) -> torch.Tensor:
    """ModVAE: squared distance of clamped dims' means to their (fixed) group mean, summed over dims.
    `group_mean`: the (B, D) group mean of `mu` the forward pass already computed (Output.group_mean), so it is
    not computed twice per step; None computes it here."""
    target = (clamp.group_mean(mu) if group_mean is None else group_mean).detach()
    return ((mu - target).pow(2) * clamp.mask).sum(1).mean()


def _term(out: Output, clamp: Clamp | None) -> torch.Tensor:
    # batches without groups (validation, sampling) have nothing to clamp
    return out.mu.new_zeros(()) if clamp is None else clamp_loss(out.mu, clamp, out.group_mean)


REGULARISERS.register("clamp", Regulariser(
    "clamp", "MSE pulling clamped dims' encoder means to their group mean", "clamp_weight", _term))
