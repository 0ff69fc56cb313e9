"""Recipes (core.recipes): `auto` gives each data set its measured bundle, given options win, `none` is the plain
family defaults, and the recorded command recreates the run without the recipe."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import recipes
from core.cli import build_parser, config_from_args
from core.config import RunConfig, option_value

ROOT = Path(__file__).resolve().parents[1]


def config(*argv: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(["train", "--name", "r", *argv]))


def test_auto_gives_synthfaces_its_recipe_and_none_the_family_defaults():
    auto = config()
    assert (auto.model, auto.train.steps, auto.arch.decoder, auto.loss.reconstruction) == ("vae", 6000, "film",
                                                                                             "calibrated")
    plain = config("--recipe", "none")
    assert (plain.model, plain.train.steps, plain.loss.beta) == ("beta-vae", 2000, 4.0)
    assert config("--dataset", "dsprites").model == "beta-vae"  # dSprites has no recipe


def test_real_faces_get_the_faces_recipe_and_given_options_win():
    faces = config("--dataset", "celeba", "--data-root", "/somewhere")
    assert (faces.model, faces.loss.reconstruction, faces.train.steps) == ("vae", "ssim-l1", 2000)
    mine = config("--dataset", "celeba", "--data-root", "/somewhere", "--model", "beta-vae", "--steps", "40",
                  "--recon", "bernoulli")
    assert (mine.model, mine.loss.beta, mine.train.steps, mine.loss.reconstruction) == ("beta-vae", 4.0, 40,
                                                                                      "bernoulli")
    assert config("--recipe", "faces").loss.reconstruction == "ssim-l1"  # a recipe by name, on any data set


def test_the_recorded_command_recreates_the_run_without_the_recipe():
    auto = config()
    again = config(*auto.command.split()[4:], "--recipe", "none")  # after "python -m core train"
    fields = [{k: v for k, v in json.loads(c.to_json()).items() if k != "command"} for c in (auto, again)]
    assert fields[0] == fields[1]


@pytest.mark.parametrize("recipe", list(recipes.RECIPES), ids=lambda r: r.name)
def test_every_recipe_is_valid_settings_with_its_measurements_in_results(recipe):
    built = RunConfig.from_options(dict(recipe.options), "check")
    assert all(option_value(built, key) == value for key, value in recipe.options.items())
    assert recipe.evidence and recipe.evidence in (ROOT / "benchmarks" / "RESULTS.md").read_text()
