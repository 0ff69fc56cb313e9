"""Reconstruction likelihoods: -log p(x|z) per image, summed over pixels, averaged over the batch.
"""
from __future__ import annotations
import torch
import torch.nn.functional as F


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
