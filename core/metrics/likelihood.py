"""ELBO and importance-weighted (IWAE, Burda et al. 2016) bounds on log p(x), and reconstruction error.

With z_i ~ q(z|x), i = 1..K, and log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x):
  ELBO   = mean_i log p(x|z_i) - KL(q(z|x) || N(0, I))   (KL in closed form)
  IWAE_K = log (1/K) sum_i w_i                            (E[IWAE_1] = ELBO; increases with K to log p(x))

What log p(x|z) means depends on the decoder (config loss.reconstruction) and the data; see DENSITIES.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from core.models.vae import VAE
from core.device import INFERENCE_BATCH, to_float
from core.objectives.likelihoods import LIKELIHOOD_TERMS, ssim

LOG_2PI = math.log(2 * math.pi)
LEVELS_BIN_WIDTH = 1 / 255  # 8-bit images are scaled by 1/255, so neighbouring levels are 1/255 apart
DECODES_PER_BATCH = 1024  # samples drawn per batch of images: a constant, so the draws never depend on memory
SAMPLES_PER_CHUNK = 128

DENSITIES = {
    "discrete": "Bernoulli decoder on binary images: an exact probability over {0,1}^d, so bits/dim = "
                "-log p(x) / (d ln 2).",
    "continuous": "fixed-variance decoder (Gaussian: variance 1/2, Laplace: scale 1): a normalised density on "
                  "R^d for x scaled to [0, 1]. Bits/dim give each of the 256 levels a bin of width 1/255: "
                  "P(x) = p(x) (1/255)^d, accurate here because the density hardly changes across a bin at this "
                  "variance. The variance was fixed for training, not fitted, so these likelihoods are poor by "
                  "construction (much of the mass lies outside [0, 1]).",
    "calibrated": "Gaussian decoder whose variance is fitted to each image (its MSE, σ-VAE): a normalised density "
                  "on R^d per image; bits/dim as for 'continuous'. Fitting the variance to the image being scored "
                  "makes these optimistic next to a fixed-variance decoder's.",
    "unnormalised": "Bernoulli decoder on 8-bit (non-binary) images: the cross-entropy with grey-level targets is "
                    "not the log of a normalised density (the continuous Bernoulli's normaliser is missing), so "
                    "these are bounds on the training objective in nats, not log-likelihoods; no bits/dim.",
}


def log_likelihood(logits: torch.Tensor, x: torch.Tensor, kind: str) -> torch.Tensor:
    """log p(x|z) per image, summed over pixels: the training term's likelihood with its constants."""
    term = LIKELIHOOD_TERMS[kind]
    if term.log_prob is None:
        raise ValueError(f"reconstruction {kind!r} is not a likelihood: no log p(x|z) to bound")
    return term.log_prob(logits, x)


def density_kind(kind: str, images: np.ndarray) -> str:
    """'discrete', 'continuous', 'calibrated' or 'unnormalised' (a key of DENSITIES)."""
    if kind == "calibrated":
        return "calibrated"
    if kind != "bernoulli":
        return "continuous"
    return "discrete" if np.isin(images, (0, 255)).all() else "unnormalised"


def bits_per_dim(log_px: float, dims: int, bin_width: float = 1.0) -> float:
    """Bits per dimension of a discrete likelihood, or of a density discretised into bins of `bin_width`
    (P = p * bin_width^d)."""
    return -(log_px + dims * math.log(bin_width)) / (dims * math.log(2))


@dataclass
class Bounds:
    """Per-image ELBO (B,) in nats and the log importance weights (B, K) the IWAE bounds are computed from."""

    elbo: np.ndarray  # (B,) nats
    log_weights: np.ndarray  # (B, K)

    def iwae(self, k: int | None = None) -> np.ndarray:
        """(B,) IWAE_k bound (k = all samples by default), averaged over the disjoint groups of k samples:
        a lower-variance estimate of its expectation when k is smaller than the sample count."""
        b, total = self.log_weights.shape
        k = k or total
        w = torch.from_numpy(self.log_weights[:, :total // k * k]).view(b, total // k, k)
        return (torch.logsumexp(w, dim=2) - math.log(k)).mean(1).numpy()


def importance_bounds(mu: torch.Tensor, logvar: torch.Tensor,
                      log_lik: Callable[[torch.Tensor], torch.Tensor], num_samples: int,
                      generator: torch.Generator, chunk: int = SAMPLES_PER_CHUNK) -> Bounds:
    """Bounds for a batch of B posteriors N(mu, exp(logvar)) (B, D); log_lik maps z (B, k, D) to
    log p(x_b|z_bi) (B, k)."""
    std = torch.exp(0.5 * logvar)
    log_w, log_lik_sum = [], torch.zeros(len(mu), dtype=torch.float64, device=mu.device)
    for start in range(0, num_samples, chunk):
        k = min(chunk, num_samples - start)
        eps = torch.randn((len(mu), k, mu.shape[1]), generator=generator, device=mu.device)
        z = mu[:, None] + std[:, None] * eps
        ll = log_lik(z)
        log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + logvar[:, None] + LOG_2PI).sum(-1)
        log_w.append((ll + log_pz - log_qz).double())
        log_lik_sum += ll.double().sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).double().sum(1)
    return Bounds((log_lik_sum / num_samples - kl).cpu().numpy(), torch.cat(log_w, 1).cpu().numpy())


@torch.inference_mode()
def model_bounds(model: VAE, images: np.ndarray, kind: str, num_samples: int, seed: int = 0) -> Bounds:
    """ELBO and importance weights of a VAE on uint8 images (n, 3, 64, 64)."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    chunk = min(num_samples, SAMPLES_PER_CHUNK)
    per_batch = max(1, DECODES_PER_BATCH // chunk)
    parts = []
    for start in range(0, len(images), per_batch):
        x = to_float(images[start:start + per_batch], device)
        mu, logvar = model.encode(x)

        def log_lik(z: torch.Tensor, x=x) -> torch.Tensor:
            b, k, d = z.shape
            z, image = z.reshape(b * k, d), torch.arange(b * k, device=device) // k  # sample i of image b: row b*k + i
            rows = [slice(i, i + INFERENCE_BATCH) for i in range(0, b * k, INFERENCE_BATCH)]
            return torch.cat([log_likelihood(model.decode_logits(z[r]), x[image[r]], kind) for r in rows]).view(b, k)

        parts.append(importance_bounds(mu, logvar, log_lik, num_samples, generator, chunk))
    return Bounds(np.concatenate([p.elbo for p in parts]), np.concatenate([p.log_weights for p in parts]))


def likelihood(model: VAE, images: np.ndarray, kind: str, num_samples: int = 1000, seed: int = 0) -> dict:
    """Mean ELBO and IWAE bound in nats per image (and bits/dim where the likelihood allows it)."""
    bounds = model_bounds(model, images, kind, num_samples, seed)
    density = density_kind(kind, images)
    dims = int(np.prod(images.shape[1:]))
    iwae = bounds.iwae()
    ks = [k for k in (1, 10, 100, 1000, 10_000) if k < num_samples] + [num_samples]
    out = {"reconstruction": kind, "density": density, "note": DENSITIES[density], "images": len(images),
           "importance_samples": num_samples, "dims": dims,
           "elbo": float(bounds.elbo.mean()), "elbo_std_err": _std_err(bounds.elbo),
           "iwae": float(iwae.mean()), "iwae_std_err": _std_err(iwae),
           "iwae_by_k": {str(k): float(bounds.iwae(k).mean()) for k in ks}}
    bin_width = {"discrete": 1.0, "continuous": LEVELS_BIN_WIDTH}.get(density)
    for name in ("elbo", "iwae"):
        out[f"{name}_bits_per_dim"] = None if bin_width is None else bits_per_dim(out[name], dims, bin_width)
    return out


def _std_err(values: np.ndarray) -> float | None:
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None


@torch.inference_mode()
def reconstruction_error(model: VAE, images: np.ndarray, kind: str, batch_size: int = INFERENCE_BATCH) -> dict:
    """Per-pixel error of decode(posterior mean) against the image in [0, 1]: MSE, mean SSIM (7x7 uniform window,
    the one the ssim-l1 loss uses; 1 = identical), and BCE for Bernoulli decoders."""
    device = next(model.parameters()).device
    se, bce, similarity = 0.0, 0.0, 0.0
    for start in range(0, len(images), batch_size):
        x = to_float(images[start:start + batch_size], device)
        logits = model.decode_logits(model.encode(x)[0])
        mean = torch.sigmoid(logits)
        se += (mean - x).pow(2).double().sum().item()
        similarity += ssim(mean, x).flatten(1).mean(1).double().sum().item()
        if kind == "bernoulli":
            bce += F.binary_cross_entropy_with_logits(logits, x, reduction="sum").double().item()
    pixels = images.size
    out = {"images": len(images), "mse_per_pixel": se / pixels, "ssim": similarity / len(images)}
    if kind == "bernoulli":
        out["bce_per_pixel"] = bce / pixels
    return out
