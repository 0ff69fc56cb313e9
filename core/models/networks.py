"""The one convolutional encoder/decoder family shared by every model (64x64 RGB in, 64x64 out)."""
from __future__ import annotations

import torch
from torch import nn

from core.models.arch import ArchConfig


def _norm(kind: str, channels: int) -> nn.Module:
    # GroupNorm, not BatchNorm: ModVAE batches hold near-identical images, which would skew batch statistics.
    return nn.GroupNorm(min(8, channels), channels) if kind == "group" else nn.Identity()


class Encoder(nn.Module):
    """Four stride-2 convolutions (64 -> 4 px), then an MLP to the posterior mean and log-variance."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        layers, c_in = [], 3
        for c in arch.channels:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), _norm(arch.norm, c), nn.SiLU()]
            c_in = c
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(
            nn.Linear(c_in * 16, arch.hidden), nn.SiLU(), nn.Linear(arch.hidden, 2 * arch.latent_dim)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mu, logvar), each (N, latent_dim), of float images (N, 3, 64, 64) in [0, 1]."""
        mu, logvar = self.head(self.conv(x)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    """Mirror of the encoder; returns logits (the image is their sigmoid), and with `arch.mask_head` a fourth
    channel, the logit of the person's mask."""

    def __init__(self, arch: ArchConfig):
        super().__init__()
        chans = list(arch.channels[::-1])
        self.first = chans[0]
        self.head = nn.Sequential(
            nn.Linear(arch.latent_dim, arch.hidden), nn.SiLU(), nn.Linear(arch.hidden, chans[0] * 16), nn.SiLU()
        )
        layers = []
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), _norm(arch.norm, c_out), nn.SiLU()]
        self.deconv = nn.Sequential(*layers, nn.ConvTranspose2d(chans[-1], 3 + arch.mask_head, 4, 2, 1))
        # FiLM (Perez et al. 2018): with only the 4x4 MLP output depending on z, a detail the decoder draws the same
        # for every code (the mouth on SynthFaces) sends the encoder no gradient to encode it; a per-block scale and
        # shift from the code is a path from z to every resolution.
        code = arch.latent_dim + arch.cond_dim
        self.film = (nn.ModuleList(nn.Linear(code, 2 * c) for c in chans[1:]) if arch.decoder == "film" else None)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits (N, 3 or 4 with a mask head, 64, 64) of latent codes z (N, latent_dim)."""
        h = self.head(z).view(-1, self.first, 4, 4)
        if self.film is None:
            return self.deconv(h)
        films = iter(self.film)
        for layer in self.deconv:
            h = layer(h)
            if isinstance(layer, nn.SiLU):  # the end of an upsampling block
                scale, shift = next(films)(z)[:, :, None, None].chunk(2, dim=1)
                h = h * (1 + scale) + shift
        return h
