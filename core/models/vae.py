"""VAE / beta-VAE / ModVAE share one network: they differ in their losses and training batches."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.models.arch import ArchConfig
from core.models.networks import Decoder, Encoder


@dataclass
class Output:
    """One forward pass: logits (B, 3, 64, 64) and the posterior mu, logvar and code z, each (B, latent_dim)."""

    logits: torch.Tensor  # decoder output; the reconstruction is its sigmoid
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    group_mean: torch.Tensor | None = None  # ModVAE: (B, D) fp32 group mean of mu the clamp used, for its loss
    mask_logits: torch.Tensor | None = None  # (B, 1, 64, 64) logit of the person's mask, with a mask head

    @classmethod
    def of(cls, channels: torch.Tensor, mu, logvar, z, group_mean=None) -> "Output":
        """The output of a decoder's channels: the first three are the image's logits, a fourth the mask's."""
        return cls(channels[:, :3], mu, logvar, z, group_mean, channels[:, 3:] if channels.shape[1] > 3 else None)

    def float(self) -> "Output":
        """fp32 copies of bf16 outputs (the losses are computed in fp32 on the fast path)."""
        optional = (None if t is None else t.float() for t in (self.group_mean, self.mask_logits))
        return Output(self.logits.float(), self.mu.float(), self.logvar.float(), self.z.float(), *optional)


class VAE(nn.Module):
    """Conv encoder/decoder for (B, 3, 64, 64) images in [0, 1]: diagonal Gaussian posterior, N(0, I) prior."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        self.encoder = Encoder(arch)
        self.decoder = Decoder(arch)

    @property
    def latent_dim(self) -> int:
        """D, the size of a latent code (arch.latent_dim)."""
        return self.arch.latent_dim

    def latent_groups(self) -> dict[str, range]:
        """The latent dims by kind, for pages that show kinds apart: one group here, {"latent": range(D)}; the VITAE
        models (core.models.vitae) have {"appearance": ..., "perspective": ...}."""
        return {"latent": range(self.latent_dim)}

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float images in [0, 1], (B, 3, 64, 64) -> posterior (mu, logvar), each (B, latent_dim)."""
        return self.encoder(x)

    def decode_channels(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, latent_dim) -> the decoder's logits (B, 3, 64, 64), plus the mask's as a fourth channel
        with a mask head; subclasses override this, not `decode_logits`."""
        return self.decoder(z)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, latent_dim) -> logits (B, 3, 64, 64), which the losses take; `decode` is their sigmoid."""
        return self.decode_channels(z)[:, :3]

    def decode_mask(self, z: torch.Tensor, **condition) -> torch.Tensor:
        """Latent codes -> the predicted mask of the person in [0, 1], (B, 1, 64, 64); ValueError without a head.
        `condition`: a conditional model's `y`, passed on to `decode_channels`."""
        if not self.arch.mask_head:
            raise ValueError("this model has no mask head: train it with --mask-head on a data set with masks")
        return torch.sigmoid(self.decode_channels(z, **condition)[:, 3:])

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes -> images in [0, 1]: the sigmoid of `decode_logits` (which subclasses override)."""
        return torch.sigmoid(self.decode_logits(z))

    @staticmethod
    def reparameterize(mu, logvar, noise: torch.Tensor | None = None) -> torch.Tensor:
        """mu + noise * sigma. `noise`: standard normal of mu's shape, fp32 whatever the network's precision (so
        the fast (bf16) and plain paths use the same numbers); the trainer draws it as a function of (seed, step).
        None draws fresh fp32 noise from torch's global generator."""
        if noise is None:
            noise = torch.randn(mu.shape, device=mu.device)
        return mu + noise * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None, clamp=None) -> Output:
        """Encode, sample z (training mode: with `noise`, see `reparameterize`; eval mode: z is the mean),
        optionally apply ModVAE clamping (core.models.modvae.Clamp), decode.

        No generator, host sync or data-dependent shape in here: the training forward is one torch.compile graph
        (tests/test_compile_graphs.py)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, noise) if self.training else mu
        group_mean = None
        if clamp is not None:
            group_mean = clamp.group_mean(mu)
            z = clamp.apply(z, group_mean)
        return Output.of(self.decode_channels(z), mu, logvar, z, group_mean)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from the N(0, I) prior."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.decode(z)
