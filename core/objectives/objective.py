"""Loss terms, kept apart from the models and composed by `Objective`.

Every term is summed over pixels / latent dims and averaged over the batch, so beta means the same
thing for every image size and batch size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from core.models.modvae import Clamp
from core.models.vae import Output
from core.objectives.regulariser import REGULARISERS, Context
from core.objectives.kl import kl_per_dim
from core.objectives.likelihoods import reconstruction
from core.objectives.masks import mask_loss, person_target
from core.objectives.schedules import LinearWarmup

if TYPE_CHECKING:  # config builds on the objectives' names, so the objectives see it only as a type
    from core.config import LossConfig


@dataclass
class Objective:
    """recon + beta(t) * KL, or recon + gamma * |KL - C(t)| with capacity annealing, + each named regulariser's terms
    times their weights. `config` must have its family defaults applied (RunConfig does that). `latent_dim` and
    `dataset_size` (training images) are for the regularisers that need them (FactorVAE, β-TCVAE).

    The regularisers' modules (`modules`, by name) and their own optimizers (`optimizers`) belong to the objective:
    move them with `to(device)`, step them with `update` after the model's step, checkpoint both."""

    config: LossConfig
    regularisers: tuple[str, ...] = ()  # names in REGULARISERS, usually the model family's
    latent_dim: int = 0
    dataset_size: int = 0
    mask_head: bool = False  # the model predicts masks: their loss is a term ("mask")

    def __post_init__(self):
        c = self.config
        self.extra = [REGULARISERS[name] for name in self.regularisers]
        weights = ["beta", "warmup_steps", *(f for reg in self.extra for f in reg.weights.values())]
        if unset := [f for f in weights if getattr(c, f) is None]:
            raise ValueError(f"LossConfig.{', '.join(unset)} unset: build the config through RunConfig, which "
                             "applies the model family's defaults, or give them")
        self.beta = LinearWarmup(c.beta, c.warmup_steps)
        self.capacity = LinearWarmup(c.capacity_max, c.capacity_steps) if c.capacity_max > 0 else None
        self.modules = nn.ModuleDict({reg.name: reg.make(c, self.latent_dim, self.dataset_size) for reg in self.extra})
        # the regularisers' terms and the mask's, by name in the log
        self.logged = tuple(name for reg in self.extra for name in reg.terms) + (("mask",) if self.mask_head else ())

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The regularisers' own optimizers, by regulariser name (FactorVAE's discriminator Adam)."""
        return {name: m.optimizer for name, m in self.modules.items() if m.optimizer is not None}

    def to(self, device: str | torch.device) -> "Objective":
        """Move the regularisers' modules (and so their optimizers' parameters) to `device`; self."""
        self.modules.to(device)
        return self

    def __call__(self, out: Output, x: torch.Tensor, step: int, clamp: Clamp | None = None,
                 generator: torch.Generator | None = None,
                 masks: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The loss and its logged terms; `masks` (float (B, 1, 64, 64) in [0, 1], bool (B,) known) are the batch's
        person masks, for the mask head and --recon-region person (core.objectives.masks)."""
        target = x
        if masks is not None and self.config.recon_region == "person":
            target = person_target(out.logits, x, *masks)
        recon = reconstruction(out.logits, target, self.config.reconstruction)
        kl_dims = kl_per_dim(out.mu, out.logvar)
        kl = kl_dims.sum()
        if self.capacity is not None:
            kl_term = self.config.capacity_gamma * (kl - self.capacity(step)).abs()
        else:
            kl_term = self.beta(step) * kl
        terms = {"recon": recon, "kl": kl, "kl_dims": kl_dims}
        loss = recon + kl_term
        if self.mask_head and out.mask_logits is not None and masks is not None:
            terms["mask"] = mask_loss(out.mask_logits, *masks)
            loss = loss + self.config.mask_weight * terms["mask"]
        ctx = Context(clamp, generator)
        for reg in self.extra:
            named = self.modules[reg.name](out, ctx)
            terms.update(named)
            for name, weight in reg.weights.items():
                loss = loss + getattr(self.config, weight) * named[name]
        terms["loss"] = loss
        return terms

    def update(self, out: Output, clamp: Clamp | None = None,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Each regulariser's own optimisation step on this step's output (after the model's step); what they log."""
        ctx, logged = Context(clamp, generator), {}
        for module in self.modules.values():
            logged.update(module.update(out, ctx))
        return logged
