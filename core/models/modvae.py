"""ModVAE clamping (Kulkarni et al. 2015, DC-IGN): dims of factors held fixed in a group share one code.

Every generative factor owns a block of latent dims; dims past the last block are free and never clamped.
A training batch is made of groups: within a group some factors are fixed (all but one on ground-truth
data, the identity on real faces). Before decoding, the dims of each sample's fixed factors are replaced
by their group mean, so the decoder must explain the group's variation with the remaining dims; a loss
term (core.losses.clamp_loss) pulls the encoder means of those dims to the same group mean.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FactorBlocks:
    num_factors: int
    dims_per_factor: int
    latent_dim: int

    def __post_init__(self):
        if self.num_factors * self.dims_per_factor > self.latent_dim:
            raise ValueError(
                f"ModVAE needs {self.num_factors} factors x {self.dims_per_factor} dims = "
                f"{self.num_factors * self.dims_per_factor} latent dims, but latent_dim is {self.latent_dim}: "
                "lower --dims-per-factor or raise --latent-dim"
            )

    def block(self, factor: int) -> slice:
        return slice(factor * self.dims_per_factor, (factor + 1) * self.dims_per_factor)

    def dim_mask(self, fixed: torch.Tensor) -> torch.Tensor:
        """(B, F) bool of factors fixed per sample -> (B, latent_dim) bool of dims to clamp."""
        blocks = fixed.repeat_interleave(self.dims_per_factor, dim=1)
        free = blocks.new_zeros(fixed.shape[0], self.latent_dim - blocks.shape[1])
        return torch.cat([blocks, free], dim=1)


@dataclass
class Clamp:
    """One batch's group structure: `groups` (B,) ids in [0, num_groups), `mask` (B, D) dims to clamp."""

    groups: torch.Tensor
    mask: torch.Tensor
    num_groups: int  # known on the host, so computing group means never waits on the GPU

    def group_mean(self, v: torch.Tensor) -> torch.Tensor:
        """Per-sample mean of `v` over the sample's group, (B, D)."""
        n = self.num_groups
        sums = v.new_zeros(n, v.shape[1]).index_add_(0, self.groups, v)
        counts = torch.bincount(self.groups, minlength=n).to(v.dtype).clamp_min(1)
        return (sums / counts[:, None])[self.groups]

    def __call__(self, z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, self.group_mean(mu), z)
