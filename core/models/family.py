"""Model families by name. A family is one file in core/models/families/ that registers a `Family`: the CLI's
--model choices, the Train page's options, run summaries and the README's model table all read this registry.

No torch here: a family names its network as "module:Class", imported when a model is built, so reading configs
(the dashboard's Home page, `python -m core runs`) does not load torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from core.models.arch import ArchConfig
from core.registry import Registry

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Family:
    """How a family differs from the plain VAE: its defaults, its batches, its extra loss terms, its network."""

    name: str  # as typed on the command line and stored in config.json
    title: str  # as shown in the dashboard
    summary: str  # one line: what it does
    reference: str = ""  # the paper
    defaults: Mapping[str, Any] = field(default_factory=dict)  # "section.field" -> value, over the plain defaults
    settings: tuple[str, ...] = ()  # "section.field" keys the Train page shows for this family only
    grouped: bool = False  # trains on groups of images that share all factors but one (DC-IGN / ModVAE batches)
    regularisers: tuple[str, ...] = ()  # names in core.objectives.regularisers.REGULARISERS, added to the loss
    network: str = "core.models.vae:VAE"  # the network's class, "module:Class", built from an ArchConfig
    # encoder and decoder take the data set's binary attributes y (core.models.cvae); arch.cond_dim, their count,
    # is filled in from the data set when the run is created, and the trainer feeds each batch's attribute rows
    conditional: bool = False
    order: int = 100  # position in lists: simplest family first

    def build(self, arch: ArchConfig) -> "nn.Module":
        """A new network of this family for `arch`."""
        module, _, name = self.network.partition(":")
        return getattr(importlib.import_module(module), name)(arch)

    @property
    def plain(self) -> bool:
        """True when the family trains the shared VAE on random batches with the ELBO's terms only."""
        return not self.grouped and not self.regularisers and not self.conditional


# Filled by the files in core/models/families/, which core/models/__init__.py imports.
FAMILIES: Registry[Family] = Registry("model")
