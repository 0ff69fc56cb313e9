"""DIP-VAE (Kumar et al. 2018): match a covariance of the inferred codes to the prior's, the identity,

    lambda_od * sum_{i != j} C_ij^2  ("dip_od")   +   lambda_d * sum_i (C_ii - 1)^2  ("dip_d"),

weighted by LossConfig.dip_lambda_od and dip_lambda_d, on top of the ELBO. DIP-VAE-I takes C = Cov_batch[mu(x)]
(the encoder means); DIP-VAE-II takes the covariance of the aggregate posterior, C = Cov[mu(x)] + E[diag(sigma^2(x))].
The paper's settings: lambda_d = 10 lambda_od for I, lambda_d = lambda_od for II.
"""
from __future__ import annotations

import torch

from core.models.vae import Output
from core.objectives.regulariser import REGULARISERS, Context, Regulariser, Term


def covariance(v: torch.Tensor) -> torch.Tensor:
    """The (D, D) covariance of the rows of `v` (B, D), normalised by B (the batch is the population)."""
    centred = v - v.mean(0, keepdim=True)
    return centred.T @ centred / len(v)


def dip_penalty(cov: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"dip_od": sum of squared off-diagonal entries, "dip_d": sum of squared distances of the diagonal to 1}."""
    diag = torch.diagonal(cov)
    return {"dip_od": (cov.pow(2).sum() - diag.pow(2).sum()), "dip_d": (diag - 1).pow(2).sum()}


class DIPTerm(Term):
    """The DIP penalty on Cov[mu] (kind "i") or Cov[mu] + E[diag(sigma^2)] (kind "ii")."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def forward(self, out: Output, ctx: Context) -> dict[str, torch.Tensor]:
        """{"dip_od", "dip_d"} of this batch's covariance."""
        cov = covariance(out.mu)
        if self.kind == "ii":
            cov = cov + torch.diag(out.logvar.exp().mean(0))
        return dip_penalty(cov)


for _kind, _what in (("i", "Cov[mu(x)]"), ("ii", "Cov[mu(x)] + E[diag(sigma^2)]")):
    REGULARISERS.register(f"dip-{_kind}", Regulariser(
        f"dip-{_kind}", f"pulls {_what} to the identity: off-diagonal to 0, diagonal to 1",
        {"dip_od": "dip_lambda_od", "dip_d": "dip_lambda_d"},
        lambda loss, latent_dim, dataset_size, kind=_kind: DIPTerm(kind)))
