"""β-TCVAE (Chen et al. 2018): the ELBO's KL split into index-code mutual information, total correlation and
dimension-wise KL, each with its own weight (LossConfig.tc_alpha, tc_beta, tc_gamma):

    E_x KL(q(z|x) || p(z)) = I_q(x; z)                   "mi"     E[log q(z|x) - log q(z)]
                           + KL(q(z) || prod_d q(z_d))    "tc"     E[log q(z) - sum_d log q(z_d)]
                           + sum_d KL(q(z_d) || p(z_d))   "dim_kl" E[sum_d log q(z_d) - log p(z)]

with z ~ q(z|x) one sample per image and the aggregate posterior q(z) = (1/N) sum_n q(z|x_n) over the N training
images, estimated from the minibatch of B images (paper, section 4.1 and appendix C):
- "mss", minibatch-stratified sampling (the default): log q(z_i) ~ log [ q(z_i|x_i)/N + sum_{j != i, k} q(z_i|x_j)/M
  + (N - M)/(N M) q(z_i|x_k) ] with M = B - 1 and k one other image (here the next row): the weights sum to 1 and
  the estimate of q(z_i) is unbiased. (The paper's reference code sets these weights with a stride that misses the
  diagonal, rtqichen/beta-tcvae PR #1; here they are placed as the appendix says.)
- "mws", minibatch-weighted sampling: log q(z_i) ~ log sum_j q(z_i|x_j) - log(N B), the paper's lower bound. Its
  weights sum to 1/N, so where posteriors overlap log q(z) and each log q(z_d) sit about log N low, and the logged
  TC about (D - 1) log N high (constants: no gradient).
The same weights give the marginals log q(z_i,d). The three terms sum to E[log q(z|x) - log p(z)], the Monte Carlo KL.
"""
from __future__ import annotations

import math

import torch

from core.models.vae import Output
from core.objectives.regulariser import REGULARISERS, Context, Regulariser, Term

SAMPLING = ("mss", "mws")


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) elementwise (broadcasting)."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def log_weights(batch: int, dataset_size: int, sampling: str, device=None) -> torch.Tensor:
    """(B, B) log-weights w[i, j] of q(z_i | x_j) in the estimate of q(z_i) (see the module docstring). A data set
    smaller than the batch is taken as the batch's size; a batch of one is estimated with "mws"."""
    if sampling not in SAMPLING:
        raise ValueError(f"tc_sampling {sampling!r}: use one of {', '.join(SAMPLING)}")
    n = max(dataset_size, batch)
    if sampling == "mws" or batch < 2:
        return torch.full((batch, batch), -math.log(n * batch), device=device)
    m = batch - 1
    rows = torch.arange(batch, device=device)[:, None]
    cols = torch.arange(batch, device=device)[None, :]
    # built on the device from scalars: no host copy, so no sync inside a CUDA step
    w = torch.where(cols == rows, 1 / n, torch.where(cols == (rows + 1) % batch, (n - m) / (n * m), 1 / m))
    return w.log()  # (rows + 1) % batch: one other image stands for the N - M not in the batch


def tc_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                     sampling: str = "mss") -> dict[str, torch.Tensor]:
    """{"mi", "tc", "dim_kl"} of codes `z` (B, D) sampled from the posteriors N(mu, exp(logvar)) (B, D) of B images
    drawn from a data set of `dataset_size`; nats, averaged over the batch. Memory O(B^2 D)."""
    log_qz_x = gaussian_log_density(z, mu, logvar).sum(1)  # log q(z_i | x_i)
    log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    pairs = gaussian_log_density(z[:, None], mu[None], logvar[None])  # (B, B, D): log q(z_i,d | x_j)
    w = log_weights(z.shape[0], dataset_size, sampling, z.device)
    log_qz = torch.logsumexp(w + pairs.sum(2), dim=1)
    log_qz_dims = torch.logsumexp(w[..., None] + pairs, dim=1).sum(1)  # sum_d log q(z_i,d)
    return {"mi": (log_qz_x - log_qz).mean(), "tc": (log_qz - log_qz_dims).mean(),
            "dim_kl": (log_qz_dims - log_pz).mean()}


class TCDecomposition(Term):
    """β-TCVAE's three terms of the batch's sampled codes (no parameters)."""

    def __init__(self, dataset_size: int, sampling: str):
        super().__init__()
        self.dataset_size, self.sampling = dataset_size, sampling

    def forward(self, out: Output, ctx: Context) -> dict[str, torch.Tensor]:
        """{"mi", "tc", "dim_kl"} of out.z under the posteriors (out.mu, out.logvar)."""
        return tc_decomposition(out.z, out.mu, out.logvar, self.dataset_size, self.sampling)


REGULARISERS.register("tc-decomposition", Regulariser(
    "tc-decomposition", "the KL split into index-code MI, total correlation and dimension-wise KL",
    {"mi": "tc_alpha", "tc": "tc_beta", "dim_kl": "tc_gamma"},
    lambda loss, latent_dim, dataset_size: TCDecomposition(dataset_size, loss.tc_sampling)))
