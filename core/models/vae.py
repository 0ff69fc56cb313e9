"""VAE / beta-VAE / ModVAE share one network: they differ in their losses and training batches."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.config import ArchConfig
from core.models.networks import Decoder, Encoder


@dataclass
class Output:
    logits: torch.Tensor  # decoder output; the reconstruction is its sigmoid
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor

    def float(self) -> "Output":
        """fp32 copies of bf16 outputs (the losses are computed in fp32 on the fast path)."""
        return Output(self.logits.float(), self.mu.float(), self.logvar.float(), self.z.float())


class VAE(nn.Module):
    def __init__(self, arch: ArchConfig):
        super().__init__()
        self.arch = arch
        self.encoder = Encoder(arch)
        self.decoder = Decoder(arch)

    @property
    def latent_dim(self) -> int:
        return self.arch.latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float images in [0, 1], (B, 3, 64, 64) -> posterior (mu, logvar), each (B, latent_dim)."""
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes -> images in [0, 1]."""
        return torch.sigmoid(self.decoder(z))

    @staticmethod
    def reparameterize(mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
        # fp32 noise whatever the network's precision: the fast (bf16) and plain paths draw the same numbers
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        return mu + eps * torch.exp(0.5 * logvar)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, clamp=None) -> Output:
        """Encode, sample z, optionally apply ModVAE clamping (a callable on z), decode."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator) if self.training else mu
        if clamp is not None:
            z = clamp(z, mu)
        return Output(self.decode_logits(z), mu, logvar, z)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from the N(0, I) prior."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.decode(z)
