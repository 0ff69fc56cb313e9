"""Recipes: measured bundles of settings (family, network, likelihood, schedule, steps) for a kind of data.

`--recipe auto`, the CLI's and the Train page's default, takes the recipe of the chosen data set; `none` leaves the
family's and the settings' own defaults. Settings given by the user always win over the recipe's. Each recipe's
numbers are in benchmarks/RESULTS.md under the section its `evidence` names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.registry import Registry

AUTO, NONE = "auto", "none"


@dataclass(frozen=True)
class Recipe:
    """A named bundle of settings, what `auto` gives it to, and where its measurements are."""

    name: str
    summary: str
    datasets: tuple[str, ...]  # the data sets `auto` gives it to
    options: dict[str, Any] = field(default_factory=dict)  # {"model" or "section.field": value}
    evidence: str = ""  # the benchmarks/RESULTS.md section with its measurements


RECIPES: Registry[Recipe] = Registry("recipe")
RECIPES.register("synthfaces", Recipe(
    "synthfaces", "a VAE with the FiLM decoder and the calibrated Gaussian for 6,000 steps: learns every factor, the "
    "smile and the frown included (probe AUCs ≥ 0.99), in 10.6 minutes on 2 idle CPU cores", ("synthfaces",),
    {"model": "vae", "arch.decoder": "film", "loss.reconstruction": "calibrated", "train.steps": 6000},
    "SynthFaces renderer 2"))
RECIPES.register("faces", Recipe(
    "faces", "a VAE (β = 1) with the FiLM decoder and the SSIM + L1 reconstruction for 2,000 steps: sharper "
    "held-out CelebA faces than 3,000 steps of the β-VAE default in the same CPU minutes (SSIM + L1 steps cost 1.5 "
    "Bernoulli ones); not a likelihood, so such runs report no ELBO", ("celeba", "lfw", "folder"),
    {"model": "vae", "arch.decoder": "film", "loss.reconstruction": "ssim-l1", "train.steps": 2000},
    "A faces recipe: sharper real faces at equal CPU minutes"))


def choices() -> tuple[str, ...]:
    """What --recipe accepts: auto, none and every recipe's name."""
    return (AUTO, NONE, *(r.name for r in RECIPES))


def resolve(name: str, dataset: str) -> Recipe | None:
    """The recipe `name` stands for on `dataset` (auto: the data set's, if any; none: None)."""
    if name == NONE:
        return None
    if name == AUTO:
        return next((r for r in RECIPES if dataset in r.datasets), None)
    return RECIPES[name]


def with_recipe(options: dict[str, Any], name: str, dataset: str) -> dict[str, Any]:
    """`options` ({"model" or "section.field": value}, what the user gave) over the recipe's."""
    recipe = resolve(name, dataset)
    return {**(recipe.options if recipe else {}), **options}
