import json

import pytest

from core.config import ConfigError, RunConfig
from tests.tiny import tiny_config


def test_round_trip_through_json_is_exact():
    config = tiny_config("rt", model="modvae")
    again = RunConfig.from_dict(json.loads(config.to_json()))
    assert again == config
    assert isinstance(again.arch.channels, tuple)


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "/abs", "x;rm -rf", "", "a b", "x" * 101, "a..b"])
def test_unsafe_run_names_are_refused(name):
    data = tiny_config("ok").to_dict()
    data["name"] = name
    with pytest.raises(ConfigError, match="run name"):
        RunConfig.from_dict(data)


@pytest.mark.parametrize("path, value, message", [
    (("loss", "beta"), -1.0, "beta"),
    (("train", "batch_size"), 0, "batch_size"),
    (("arch", "latent_dim"), 0, "latent_dim"),
    (("arch", "latent_dim"), 10_000, "latent_dim"),
    (("train", "lr"), 0.0, "lr"),
    (("model",), "gan", "model"),
    (("data", "dataset"), "imagenet", "dataset"),
    (("train", "steps"), "100", "expected int"),
    (("train", "steps"), True, "expected int"),
    (("arch", "channels"), [8, 8], "channels"),
])
def test_out_of_range_and_mistyped_values_are_refused(path, value, message):
    data = tiny_config("ok").to_dict()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(data)


def test_unknown_and_missing_keys_are_named():
    data = tiny_config("ok").to_dict()
    data["train"]["stepz"] = 3
    with pytest.raises(ConfigError, match="stepz"):
        RunConfig.from_dict(data)
    del data["train"]["stepz"], data["name"]
    with pytest.raises(ConfigError, match="name"):
        RunConfig.from_dict(data)


def test_real_data_sets_need_a_root():
    data = tiny_config("ok").to_dict()
    data["data"]["dataset"] = "celeba"
    with pytest.raises(ConfigError, match="--data-root"):
        RunConfig.from_dict(data)


def test_broken_config_file_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=str(path)):
        RunConfig.load(path)


def test_a_config_written_before_the_decoder_choice_loads_as_the_plain_decoder_it_was_trained_with():
    from core.config import RunConfig

    data = RunConfig("old").to_dict()
    del data["arch"]["decoder"]
    assert RunConfig.from_dict(data).arch.decoder == "plain"
    assert RunConfig("new").arch.decoder == "film"  # today's default
