"""ModVAE clamping (Kulkarni et al. 2015, DC-IGN): dims of factors held fixed in a group share one code.

Every generative factor owns a block of latent dims; dims past the last block are free and never clamped.
A training batch is made of groups: within a group some factors are fixed (all but one on ground-truth
data, the identity on real faces). Before decoding, the dims of each sample's fixed factors are replaced
by their group mean, so the decoder must explain the group's variation with the remaining dims; a loss
term (core.objectives.clamp.clamp_loss) pulls the encoder means of those dims to the same group mean, the
one the forward pass computed (carried on the model's Output, so it is computed once per step).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FactorBlocks:
    """Latent layout: factor k owns dims k*dims_per_factor .. (k+1)*dims_per_factor-1; the dims after are free."""

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
        """The latent dims of `factor` (0-based), as a slice of the last axis of z."""
        return slice(factor * self.dims_per_factor, (factor + 1) * self.dims_per_factor)

    def dim_mask(self, fixed: torch.Tensor) -> torch.Tensor:
        """(B, F) bool of factors fixed per sample -> (B, latent_dim) bool of dims to clamp."""
        blocks = fixed.repeat_interleave(self.dims_per_factor, dim=1)
        free = blocks.new_zeros(fixed.shape[0], self.latent_dim - blocks.shape[1])
        return torch.cat([blocks, free], dim=1)


@dataclass
class Clamp:
    """One batch's group structure: the rows come in contiguous groups of `group_size` (rows 0..S-1 are group 0,
    and so on; core.training.batches lays batches out so), and `mask` (B, D) marks the dims to clamp.

    Group statistics are a reshape (B, D) -> (G, S, D) and a mean: no host sync, no data-dependent shapes, so
    the clamp stays inside one torch.compile graph."""

    mask: torch.Tensor
    group_size: int  # known on the host: fixed for the whole run

    def __post_init__(self):
        rows = self.mask.shape[0]
        if self.group_size < 1 or rows % self.group_size:
            raise ValueError(f"a ModVAE batch of {rows} rows does not split into groups of {self.group_size}")

    def group_mean(self, v: torch.Tensor) -> torch.Tensor:
        """Per-sample mean of `v` over the sample's group, (B, D), in fp32 whatever `v`'s precision."""
        s = self.group_size
        return v.float().unflatten(0, (-1, s)).mean(1, keepdim=True).expand(-1, s, -1).flatten(0, 1)

    def apply(self, z: torch.Tensor, group_mean: torch.Tensor) -> torch.Tensor:
        """`z` with the clamped dims replaced by their group mean (from `group_mean`, computed once per step)."""
        return torch.where(self.mask, group_mean, z)

    def __call__(self, z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        return self.apply(z, self.group_mean(mu))
