"""Regularisers by name: loss terms a model family adds to the ELBO's. Each is one file in core/objectives/ that
registers a `Regulariser`; a family (core.models.family) names the ones it uses, and `Objective` builds each one's
`Term` module, adds every named term it returns times its LossConfig weight, and logs them all under their names.

A term is an `nn.Module`, so it may own parameters (FactorVAE's discriminator) and an `optimizer` of its own, which
`update` steps after the model's step; the trainer moves terms to the device and keeps their weights and optimizer
state in the checkpoint ("reg.<name>.*", "regoptim.<name>.*"), so resuming stays exact.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import torch
from torch import nn

from core.models.modvae import Clamp
from core.models.vae import Output
from core.registry import Registry

if TYPE_CHECKING:  # config builds on the objectives' names, so the objectives see it only as a type
    from core.config import LossConfig


@dataclass(frozen=True)
class Context:
    """What a term may need besides the model output: the batch's groups (ModVAE; None outside training) and a
    generator that is a function of (seed, step) (None outside training), for any randomness of its own."""

    clamp: Clamp | None = None
    generator: torch.Generator | None = None


class Term(nn.Module):
    """A regulariser's module: `forward` returns named scalar terms (unweighted); `update` is its own optimisation
    step, run after the model's, returning more named scalars to log (the default: nothing to train)."""

    optimizer: torch.optim.Optimizer | None = None

    def forward(self, out: Output, ctx: Context) -> dict[str, torch.Tensor]:
        """Named scalar terms of this batch; those named in the regulariser's `weights` enter the loss."""
        raise NotImplementedError

    def update(self, out: Output, ctx: Context) -> dict[str, torch.Tensor]:
        """Train this term's own parameters on the step's (detached) output; named scalars to log."""
        return {}


@dataclass(frozen=True)
class Regulariser:
    """A named set of extra loss terms: `make(loss_config, latent_dim, dataset_size)` builds the Term; each term in
    `weights` is added to the loss times that LossConfig field; terms in `logged` are only logged."""

    name: str  # no dots: it prefixes checkpoint keys
    summary: str
    weights: Mapping[str, str]  # term name -> LossConfig field that weighs it
    make: Callable[["LossConfig", int, int], Term]
    logged: tuple[str, ...] = ()  # further terms of forward() or update(), logged but not in the loss

    @property
    def terms(self) -> tuple[str, ...]:
        """Every name this regulariser logs: the weighted terms, then the logged-only ones."""
        return (*self.weights, *self.logged)


REGULARISERS: Registry[Regulariser] = Registry("regulariser")

# The files that register regularisers, imported after REGULARISERS exists (they import it): a new regulariser adds
# its file name here.
for _name in ("clamp", "tc", "factor", "dip"):
    importlib.import_module(f"core.objectives.{_name}")
