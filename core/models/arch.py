"""The network's shape as configured: ArchConfig and its presets. No torch here: reading a run's config.json (the
dashboard's Home page, `python -m core runs`) must not wait for torch to load."""
from __future__ import annotations

from dataclasses import dataclass

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
    # film by default: on SynthFaces it learns the mouth in half the steps (benchmarks/RESULTS.md, issue 15)
    decoder: str = setting("film", "decoder design: film (the code also scales and shifts the features after every "
                           "upsampling, a short path from the code to fine detail such as the mouth) or plain (the "
                           "encoder's mirror, as runs made before this option)", label="Decoder",
                           choices=("film", "plain"))
    # masked edits (issue 15, §4): a fourth decoder channel predicts the person's mask, so an edit can be composited
    # over the original background; needs a data set with masks (core.data.masks)
    mask_head: bool = setting(False, "a second decoder head that predicts the person's (foreground) mask, trained "
                              "with BCE + Dice where the data set has masks (SynthFaces renders them; real data sets "
                              "read a CelebAMask-HQ-mask-anno/ folder); edits can then change the face and never the "
                              "background", label="Mask head")


PRESETS = {
    # Burgess et al. 2018 layout: trains on a laptop CPU in minutes.
    "small": ArchConfig("small", (32, 32, 64, 64), 256, 64, "none"),
    # Wider with GroupNorm (BatchNorm would see ModVAE's near-identical batches): for GPU and CelebA.
    "standard": ArchConfig("standard", (64, 128, 256, 512), 512, 64, "group"),
    # Seconds per run: for tests and smoke checks of the whole pipeline, not for results.
    "tiny": ArchConfig("tiny", (8, 8, 16, 16), 32, 8, "none"),
}
