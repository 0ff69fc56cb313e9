"""The one convolutional encoder/decoder family shared by every model (64x64 RGB in, 64x64 out)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from core.settings import setting

# Upper bounds that keep a config from asking for a network no machine can hold.
MAX_CHANNELS = 2048
MAX_HIDDEN = 16384
MAX_LATENT = 1024
MAX_CONDITIONS = 4096  # binary attributes a conditional model may take (CelebA has 40, LFW 73)


@dataclass
class ArchConfig:
    """The shared conv encoder/decoder for 64x64 images: channels of the four stride-2 convs, MLP width, code size
    (and, for the VITAE families, how many of the code's dims are perspective)."""

    preset: str = setting("small", "network size preset: small (0.8 M parameters, fine on a CPU) or standard "
                          "(14 M, for a GPU and CelebA); sets channels, hidden and norm",
                          label="Network size", choices=lambda: tuple(PRESETS))
    channels: tuple[int, ...] = (32, 32, 64, 64)
    hidden: int = setting(256, "width of the MLP between the convolutions and the code", label="Hidden width",
                          low=1, high=MAX_HIDDEN, flag=None)
    latent_dim: int = setting(64, "latent dimensions", label="Latent dims", low=1, high=MAX_LATENT)
    norm: str = setting("none", "normalisation after each convolution", label="Normalisation",
                        choices=("none", "group"), flag=None)
    # VITAE families only (core/models/vitae.py); the other families ignore it
    perspective_dim: int = setting(6, "VITAE: latent dims of the perspective code z_P, decoded by an MLP into the 6 "
                                   "parameters of an affine transformation; the other latent dims are the appearance "
                                   "code z_A", label="Perspective dims", low=1, high=MAX_LATENT - 1)
    # conditional families only (core/models/cvae.py): the data set's attribute count, filled in when the run is
    # created (core.training.conditions), so the network is rebuilt from config.json without the data set
    cond_dim: int = setting(0, "conditional VAE: binary attributes y the encoder and decoder take (0: none; filled in "
                            "from the data set when the run is created)", label="Condition dims", low=0,
                            high=MAX_CONDITIONS, flag=None)


PRESETS = {
    # Burgess et al. 2018 layout: trains on a laptop CPU in minutes.
    "small": ArchConfig("small", (32, 32, 64, 64), 256, 64, "none"),
    # Wider with GroupNorm (BatchNorm would see ModVAE's near-identical batches): for GPU and CelebA.
    "standard": ArchConfig("standard", (64, 128, 256, 512), 512, 64, "group"),
    # Seconds per run: for tests and smoke checks of the whole pipeline, not for results.
    "tiny": ArchConfig("tiny", (8, 8, 16, 16), 32, 8, "none"),
}


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
    """Mirror of the encoder; returns logits (the image is their sigmoid)."""

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
        self.deconv = nn.Sequential(*layers, nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits (N, 3, 64, 64) of latent codes z (N, latent_dim); the image is their sigmoid."""
        return self.deconv(self.head(z).view(-1, self.first, 4, 4))
