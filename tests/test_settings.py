"""One source of configuration: the CLI, RunConfig in Python and from_options (the Train page's path) build the same
run, refuse the same values with the same message, and every setting's range is enforced everywhere."""
import json
import math
import shlex

import pytest

from core import recipes
from core.cli import build_parser, config_from_args
from core.config import RunConfig, all_settings, option_value
from core.models.family import FAMILIES
from core.settings import ConfigError
from core.training.batches import steps_for_epochs
from core.data.synthfaces import SynthFaces


def cli_config(*options: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(["train", "--name", "x", *options]))


def sections(config: RunConfig) -> dict:
    data = config.to_dict()
    data.pop("command")
    return data


@pytest.mark.parametrize("model", FAMILIES.names())
def test_python_cli_and_form_give_one_family_the_same_defaults(model):
    python = RunConfig(name="x", model=model)
    assert sections(cli_config("--model", model, "--recipe", "none")) == sections(python)
    assert sections(RunConfig.from_options({"model": model}, "x")) == sections(python)
    for key, value in FAMILIES[model].defaults.items():
        assert option_value(python, key) == value
    # by default both the CLI and the Train page lay the data set's recipe under what is given (core.recipes)
    under_recipe = RunConfig.from_options(recipes.with_recipe({"model": model}, recipes.AUTO, "synthfaces"), "x")
    assert sections(cli_config("--model", model)) == sections(under_recipe)


def test_beta_vae_in_python_has_the_family_recipe_not_the_plain_one():
    config = RunConfig(name="x", model="beta-vae")
    assert (config.loss.beta, config.loss.warmup_steps) == (4.0, 500)
    assert RunConfig(name="x", model="vae").loss.beta == 1.0


@pytest.mark.parametrize("flag, key, value", [
    ("--beta", "loss.beta", -4.0), ("--batch-size", "train.batch_size", 0), ("--steps", "train.steps", 0),
    ("--beta", "loss.beta", math.inf), ("--lr", "train.lr", math.nan), ("--threads", "train.threads", -1),
    ("--seed", "train.seed", -3), ("--latent-dim", "arch.latent_dim", 10**12), ("--val-images", "train.val_images", -5),
])
def test_out_of_range_values_are_refused_with_one_message_everywhere(flag, key, value):
    with pytest.raises(ConfigError) as from_form:
        RunConfig.from_options({key: value}, "x")
    with pytest.raises(ConfigError) as from_cli:
        cli_config(flag, str(value))
    assert str(from_cli.value) == str(from_form.value)
    assert str(from_form.value).startswith(f"{key} = ") and flag in str(from_form.value)
    config = RunConfig(name="x")
    section, name = key.split(".")
    setattr(getattr(config, section), name, value)
    with pytest.raises(ConfigError) as from_python:
        config.validate()
    assert str(from_python.value) == str(from_form.value)


def test_steps_zero_is_refused_not_replaced_by_the_default():
    with pytest.raises(ConfigError, match="train.steps = 0: must be between 1"):
        cli_config("--steps", "0")


def test_epochs_must_be_positive_and_become_steps():
    config = cli_config("--batch-size", "64")
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ConfigError, match="epochs"):
            steps_for_epochs(config, bad, SynthFaces())
    assert steps_for_epochs(config, 0.5, SynthFaces()) == round(0.5 * (len(SynthFaces().indices("train")) // 64))


def test_the_recorded_command_rebuilds_the_same_config():
    config = cli_config("--model", "modvae", "--dims-per-factor", "2", "--preset", "standard", "--lr", "0.0003",
                        "--plain", "--compile", "--recon", "laplace", "--data-seed", "5")
    words = shlex.split(config.command)
    assert words[:4] == ["python", "-m", "core", "train"]
    again = config_from_args(build_parser().parse_args(words[3:]))
    assert again == config


def test_every_setting_with_a_flag_is_a_train_option_with_its_help():
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for s in all_settings():
        if s.flag:
            assert s.flag in help_text, s.key


def test_model_choices_are_the_registry():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    model = next(a for a in train._actions if a.dest == "model")
    assert tuple(model.choices) == FAMILIES.names()
    with pytest.raises(ConfigError, match="model = 'gan': use one of vae, beta-vae, modvae"):
        RunConfig.from_options({"model": "gan"}, "x")


def test_a_saved_config_with_an_infinite_beta_is_refused_naming_the_field(tmp_path):
    data = RunConfig(name="x").to_dict()
    data["loss"]["beta"] = 1e400  # json.dumps writes Infinity
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"config.json: loss.beta = inf: must be a finite number"):
        RunConfig.load(path)


def test_run_names_with_a_trailing_newline_are_refused():
    with pytest.raises(ConfigError, match="run name"):
        RunConfig(name="ok\n").validate()
