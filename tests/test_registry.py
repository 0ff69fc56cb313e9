"""Registries by name: a model family is one file, and everything that offers a choice picks it up."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import RunConfig, all_settings
from core.models.family import FAMILIES
from core.objectives.regulariser import REGULARISERS
from core.registry import Registry
from core.settings import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_names_list_the_choices_and_names_are_unique():
    registry = Registry("colour")
    registry.register("red", 1)
    registry.register("blue", 2)
    with pytest.raises(ConfigError, match="colour 'green': use one of red, blue"):
        registry["green"]
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("red", 3)


@pytest.mark.parametrize("family", list(FAMILIES), ids=FAMILIES.names())
def test_every_family_names_real_settings_and_regularisers(family):
    keys = {s.key for s in all_settings()}
    assert set(family.defaults) <= keys and set(family.settings) <= keys
    assert all(name in REGULARISERS for name in family.regularisers)
    config = RunConfig(name="x", model=family.name)
    assert all(getattr(getattr(config, k.split(".")[0]), k.split(".")[1]) == v for k, v in family.defaults.items())
    assert config.family is family


def test_a_new_family_file_is_all_it_takes(tmp_path):
    """Copy core/, drop one file into core/models/families/, and the CLI offers the new family."""
    shutil.copytree(ROOT / "core", tmp_path / "core", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "core" / "models" / "families" / "test_family.py").write_text(
        "from core.models.family import FAMILIES, Family\n"
        "FAMILIES.register('planted', Family(name='planted', title='Planted', summary='a test family', order=99,"
        " defaults={'loss.beta': 7.0}))\n")
    code = ("from core.cli import build_parser; from core.config import RunConfig; "
            "a = build_parser().parse_args(['train', '--model', 'planted']); "
            "print(RunConfig(name='x', model='planted').loss.beta)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "7.0"
