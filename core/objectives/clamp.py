"""ModVAE's clamp term: pulls the encoder means of clamped dims to their group mean (DC-IGN's invariance)."""
from __future__ import annotations

import torch

from core.models.modvae import Clamp
from core.models.vae import Output
from core.objectives.regulariser import REGULARISERS, Context, Regulariser, Term


def clamp_loss(mu: torch.Tensor, clamp: Clamp, group_mean: torch.Tensor | None = None) -> torch.Tensor:
    """ModVAE: squared distance of clamped dims' means to their (fixed) group mean, summed over dims.
    `group_mean`: the (B, D) group mean of `mu` the forward pass already computed (Output.group_mean), so it is
    not computed twice per step; None computes it here."""
    target = (clamp.group_mean(mu) if group_mean is None else group_mean).detach()
    return ((mu - target).pow(2) * clamp.mask).sum(1).mean()


class ClampTerm(Term):
    """The "clamp" term; batches without groups (validation, sampling) have nothing to clamp: zero."""

    def forward(self, out: Output, ctx: Context) -> dict[str, torch.Tensor]:
        """{"clamp": clamp_loss of the batch}."""
        if ctx.clamp is None:
            return {"clamp": out.mu.new_zeros(())}
        return {"clamp": clamp_loss(out.mu, ctx.clamp, out.group_mean)}


REGULARISERS.register("clamp", Regulariser(
    "clamp", "MSE pulling clamped dims' encoder means to their group mean", {"clamp": "clamp_weight"},
    lambda loss, latent_dim, dataset_size: ClampTerm()))
