"""VITAE (Detlefsen & Hauberg 2019, Explicit disentanglement of appearance and perspective in generative models): a
VAE whose code is split into an appearance code z_A and a perspective code z_P, with a spatial transformer in the
decoder.

Generative model: the shared conv decoder (core.models.networks.Decoder) turns z_A into an untransformed image (the
"appearance"); a small MLP turns z_P into the 6 parameters γ of a 2×3 affine generator, and the output is the
appearance warped by T(γ) = the top two rows of expm([[a, b, c], [d, e, f], [0, 0, 0]]) (torch.linalg.matrix_exp).
The exponential map makes every T(γ) invertible with T(γ)⁻¹ = T(−γ) exactly, which C-VITAE's encoder relies on.

- `UVITAE` (unconditional): one encoder gives both codes, exactly as the VAE's.
- `CVITAE` (conditional): a perspective encoder infers z_P from x; the appearance encoder sees x un-warped by the
  inferred perspective (T(−γ) applied to x), so appearance is encoded in a canonical pose.

Latent order: z = [z_A, z_P]. Dims 0 .. A-1 are appearance, A .. D-1 perspective (A = latent_dim - perspective_dim);
`latent_groups()` says so for pages. Both models present the VAE's interface (encode -> (mu, logvar) over all D dims,
decode, decode_logits, forward -> Output, sample, latent_dim), so every page and metric works unchanged.

Warping and the likelihoods: the decoder's *logits* are warped (bilinear, `padding_mode="border"`), not its
probabilities. Every reconstruction term (core.objectives.likelihoods) takes logits and reads the mean as their
sigmoid, so a warped logit map is as valid an input as an unwarped one, BCE-with-logits stays exact and stable (no
log of a clamped probability, no dead gradient at saturated pixels), and the identity warp returns the logits
up to the float rounding of the sampling grid (a few 1e-6 of the step to the neighbouring pixel). Border padding repeats the edge logits where the warp looks outside the image
(the background colour of SynthFaces, black on dSprites); zero padding would mean logit 0, a grey p = 0.5 border.
C-VITAE un-warps the input images (values in [0, 1]) the same way.
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from core.models.arch import ArchConfig
from core.models.networks import Decoder, Encoder
from core.models.vae import VAE, Output

AFFINE_PARAMS = 6  # a, b, c, d, e, f of the generator [[a, b, c], [d, e, f], [0, 0, 0]]
PADDING = "border"  # F.grid_sample's padding_mode for every warp (see the module docstring)


def split_dims(arch: ArchConfig) -> tuple[int, int]:
    """(appearance dims A, perspective dims P) of `arch`, A + P = latent_dim; ValueError unless both are at least 1."""
    p = arch.perspective_dim
    if not 1 <= p < arch.latent_dim:
        raise ValueError(f"VITAE needs at least one appearance dim: arch.perspective_dim = {p} must be between 1 and "
                         f"latent_dim - 1 = {arch.latent_dim - 1} (--perspective-dim, --latent-dim)")
    return arch.latent_dim - p, p


def affine_matrix(gamma: torch.Tensor) -> torch.Tensor:
    """T(γ): (B, 6) generator parameters -> (B, 2, 3) affine matrices, the top two rows of the matrix exponential of
    [[a, b, c], [d, e, f], [0, 0, 0]]. In fp32 whatever γ's precision (bf16 autocast on the fast path)."""
    g = gamma.float().reshape(-1, 2, 3)
    generator = torch.cat([g, g.new_zeros(g.shape[0], 1, 3)], dim=1)
    return torch.linalg.matrix_exp(generator)[:, :2, :]


def warp(image: torch.Tensor, gamma: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """`image` (B, C, H, W) resampled through T(γ) (T(−γ) when `inverse`): output pixel p takes the image's value at
    T(γ)·p in normalised coordinates ([-1, 1], pixel centres, align_corners=False), bilinearly, edge values repeated
    outside. γ = 0 is the identity. fp32 output (logits on the fast path are bf16; the losses want fp32 anyway)."""
    theta = affine_matrix(-gamma if inverse else gamma)
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    return F.grid_sample(image.float(), grid, mode="bilinear", padding_mode=PADDING, align_corners=False)


class PerspectiveDecoder(nn.Module):
    """z_P (B, P) -> the 6 generator parameters γ (B, 6), through one hidden layer. The last layer starts at zero, so
    a new model starts from the identity warp (a plain VAE on the appearance code) and learns to move away from it."""

    def __init__(self, perspective_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(perspective_dim, hidden), nn.SiLU(), nn.Linear(hidden, AFFINE_PARAMS))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, z_p: torch.Tensor) -> torch.Tensor:
        """Generator parameters (B, 6) of perspective codes (B, P)."""
        return self.net(z_p)


class _VITAE(VAE):
    """What both VITAE models share: the [z_A, z_P] split, the appearance decoder, the perspective MLP and the warp.
    Subclasses build their encoders."""

    def __init__(self, arch: ArchConfig):
        nn.Module.__init__(self)  # not VAE.__init__: the encoders and the decoder are sized per code
        self.arch = arch
        self.appearance_dim, self.perspective_dim = split_dims(arch)
        self.decoder = Decoder(replace(arch, latent_dim=self.appearance_dim))
        self.perspective = PerspectiveDecoder(self.perspective_dim, arch.hidden)

    def latent_groups(self) -> dict[str, range]:
        """The two codes' dims: {"appearance": range(0, A), "perspective": range(A, D)}."""
        return {"appearance": range(self.appearance_dim), "perspective": range(self.appearance_dim, self.latent_dim)}

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_A, z_P) of codes (B, D) laid out [z_A, z_P]."""
        return z[:, :self.appearance_dim], z[:, self.appearance_dim:]

    def generator(self, z: torch.Tensor) -> torch.Tensor:
        """γ (B, 6): the affine generator parameters of full codes (B, D) (only z_P is read)."""
        return self.perspective(self.split(z)[1])

    def appearance_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Logits (B, 3 (+1 mask), 64, 64) of the untransformed appearance of full codes (B, D) (only z_A is read)."""
        return self.decoder(self.split(z)[0])

    def decode_channels(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes (B, D) -> logits (B, 3 (+1 mask), 64, 64): the appearance's logits warped by T(γ(z_P)), in
        fp32 (a mask moves with the face it outlines)."""
        return warp(self.appearance_logits(z), self.generator(z))


class UVITAE(_VITAE):
    """Unconditional VITAE: one conv encoder gives the posterior of both codes, [z_A, z_P]; the VAE's forward."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        self.encoder = Encoder(arch)


class CVITAE(_VITAE):
    """Conditional VITAE: q(z_P | x) from a perspective encoder, then q(z_A | T(−γ(z_P)) x) from an appearance encoder
    that sees the input un-warped into its canonical pose.

    `encode` un-warps with the perspective mean; the training forward un-warps with the sampled z_P (the same z_P the
    decoder warps with), so `Output.mu` / `logvar` of z_A are those of q(z_A | x, z_P) for that sample and the KL is
    the usual one-sample estimate of the hierarchical posterior's. Their diagonal Gaussian is still a valid proposal
    for the importance-sampled bounds of core.metrics.likelihood."""

    def __init__(self, arch: ArchConfig):
        super().__init__(arch)
        self.perspective_encoder = Encoder(replace(arch, latent_dim=self.perspective_dim))
        self.appearance_encoder = Encoder(replace(arch, latent_dim=self.appearance_dim))

    def canonical(self, x: torch.Tensor, z_p: torch.Tensor) -> torch.Tensor:
        """Images `x` (B, 3, 64, 64) un-warped by the perspective codes z_P (B, P): T(−γ(z_P)) applied to x."""
        return warp(x, self.perspective(z_p), inverse=True)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: float images in [0, 1], (B, 3, 64, 64) -> posterior (mu, logvar), each (B, D) laid out [z_A, z_P];
        appearance is encoded from x un-warped by the perspective mean."""
        mu_p, logvar_p = self.perspective_encoder(x)
        mu_a, logvar_a = self.appearance_encoder(self.canonical(x, mu_p))
        return torch.cat([mu_a, mu_p], dim=1), torch.cat([logvar_a, logvar_p], dim=1)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None, clamp=None) -> Output:
        """Encode z_P, sample it (training mode, with noise[:, A:]; eval mode: the mean), un-warp x by it, encode and
        sample z_A (noise[:, :A]), optionally clamp (ModVAE), decode. Same contract as VAE.forward: `noise` is
        (B, D) fp32 standard normal, None draws fresh noise; one torch.compile graph (no host sync in here)."""
        if self.training and noise is None:
            noise = torch.randn(x.shape[0], self.latent_dim, device=x.device)
        mu_p, logvar_p = self.perspective_encoder(x)
        noise_a, noise_p = self.split(noise) if self.training else (None, None)
        z_p = self.reparameterize(mu_p, logvar_p, noise_p) if self.training else mu_p
        mu_a, logvar_a = self.appearance_encoder(self.canonical(x, z_p))
        z_a = self.reparameterize(mu_a, logvar_a, noise_a) if self.training else mu_a
        mu, logvar = torch.cat([mu_a, mu_p], dim=1), torch.cat([logvar_a, logvar_p], dim=1)
        z = torch.cat([z_a, z_p], dim=1)
        group_mean = None
        if clamp is not None:
            group_mean = clamp.group_mean(mu)
            z = clamp.apply(z, group_mean)
        return Output.of(self.decode_channels(z), mu, logvar, z, group_mean)
