"""The conditional VAE (Sohn et al. 2015): the shared conv encoder/decoder, both also given binary attributes y.

Where y enters: the encoder concatenates y to the flattened output of its convolutions, the input of its MLP
(q(z | x, y)); the decoder's MLP takes [z, y] (p(x | z, y)). The prior stays N(0, I), independent of y, so the
ELBO and its KL term are the VAE's. The code z is then free to hold what y does not say, and an attribute is
edited by re-decoding the same z with its entry of y changed (core.explore.condition).

y is float (B, cond_dim), 1 for "has the attribute", 0 for "has not"; values in between (or beyond) are allowed
and interpolate. Every method takes `y=None` too, which means `condition_mean`: the attribute frequencies of the
training split, stored as a buffer in the checkpoint (set by the trainer before the first step), so code that
knows nothing about conditions (a page that only encodes and decodes, a metric) works on a CVAE as on a VAE, with
an "average face" condition.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.models.arch import ArchConfig
from core.models.networks import Decoder, Encoder
from core.models.vae import VAE, Output


def is_conditional(model: nn.Module) -> bool:
    """Whether `model` takes a condition y (a CVAE), so callers that know the images' attributes pass them."""
    return getattr(model, "cond_dim", 0) > 0


class ConditionalEncoder(Encoder):
    """The shared encoder with y concatenated to the input of its MLP: (x, y) -> posterior (mu, logvar)."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        first = self.head[0]
        self.head[0] = nn.Linear(first.in_features + arch.cond_dim, first.out_features)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mu, logvar), each (N, latent_dim), of images (N, 3, 64, 64) in [0, 1] with conditions (N, A)."""
        h = self.conv(x)
        mu, logvar = self.head(torch.cat([h, y.to(h.dtype)], dim=1)).chunk(2, dim=1)
        return mu, logvar


class ConditionalDecoder(Decoder):
    """The shared decoder whose MLP takes [z, y]: logits (N, 3, 64, 64)."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        first = self.head[0]
        self.head[0] = nn.Linear(arch.latent_dim + arch.cond_dim, first.out_features)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Logits (N, 3, 64, 64) of codes z (N, latent_dim) under conditions y (N, cond_dim)."""
        return super().forward(torch.cat([z, y.to(z.dtype)], dim=1))


class CVAE(VAE):
    """A VAE whose encoder and decoder are conditioned on `arch.cond_dim` binary attributes (see the module doc).
    The VAE's interface with an optional `y` everywhere; `y=None` is the training split's attribute frequencies."""

    def __init__(self, arch: ArchConfig):
        if arch.cond_dim < 1:
            raise ValueError("a conditional VAE needs arch.cond_dim >= 1 (the data set's attribute count, filled in "
                             "when the run is created)")
        nn.Module.__init__(self)
        self.arch = arch
        self.encoder = ConditionalEncoder(arch)
        self.decoder = ConditionalDecoder(arch)
        # what y=None means; the trainer sets it to the training split's attribute frequencies
        self.register_buffer("condition_mean", torch.full((arch.cond_dim,), 0.5))

    @property
    def cond_dim(self) -> int:
        """A, the number of attributes in a condition y."""
        return self.arch.cond_dim

    def set_condition_mean(self, mean) -> None:
        """Store what `y=None` stands for: (cond_dim,) values, normally the training split's attribute frequencies."""
        mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        if mean.shape != (self.cond_dim,):
            raise ValueError(f"condition mean of shape {tuple(mean.shape)}: expected ({self.cond_dim},)")
        self.condition_mean.copy_(mean)

    def condition(self, y, rows: int) -> torch.Tensor:
        """y as float (rows, cond_dim) on the model's device: None is `condition_mean` for every row; a single
        (cond_dim,) row is repeated; numpy arrays and bool tensors are converted."""
        if y is None:
            return self.condition_mean.expand(rows, -1)
        y = torch.as_tensor(y, device=self.condition_mean.device)
        y = y.float() if not y.is_floating_point() else y
        if y.ndim == 1:
            y = y.expand(rows, -1)
        if y.shape != (rows, self.cond_dim):
            raise ValueError(f"condition of shape {tuple(y.shape)} for {rows} rows: expected ({rows}, {self.cond_dim})")
        return y

    def encode(self, x: torch.Tensor, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float images in [0, 1] (B, 3, 64, 64), y: conditions (B, A) or None -> posterior (mu, logvar)."""
        return self.encoder(x, self.condition(y, x.shape[0]))

    def decode_channels(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """Codes (B, latent_dim) under conditions y (B, A) or None -> logits (B, 3 (+1 mask), 64, 64)."""
        return self.decoder(z, self.condition(y, z.shape[0]))

    def decode_logits(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """Codes (B, latent_dim) under conditions y (B, A) or None -> logits (B, 3, 64, 64)."""
        return self.decode_channels(z, y)[:, :3]

    def decode(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """Codes under conditions y (or None) -> images in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z, y))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None, clamp=None, y=None) -> Output:
        """The VAE's forward pass (see VAE.forward) with the batch's conditions y (B, A) given to the encoder and
        the decoder; no host sync or data-dependent shape, so it stays one torch.compile graph."""
        y = self.condition(y, x.shape[0])
        mu, logvar = self.encoder(x, y)
        z = self.reparameterize(mu, logvar, noise) if self.training else mu
        group_mean = None
        if clamp is not None:
            group_mean = clamp.group_mean(mu)
            z = clamp.apply(z, group_mean)
        return Output.of(self.decoder(z, y), mu, logvar, z, group_mean)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, y=None) -> torch.Tensor:
        """n images decoded from the N(0, I) prior under conditions y ((n, A), one (A,) row, or None)."""
        device = self.condition_mean.device
        z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        return self.decode(z, y)
