"""Every registered model family trains on tiny data and logs finite terms; FactorVAE's discriminator resumes exactly;
a new family's run is scored by `python -m core evaluate`."""
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from core.cli import main
from core.config import RunConfig
from core.data.dsprites import DSprites
from core.models.family import FAMILIES
from core.objectives.regulariser import REGULARISERS
from core.training.loop import resume, train
from tests.tiny import tiny_config

DSPRITES = DSprites()


def family_config(name: str, model: str, steps: int = 20):
    """tiny_config with the family's own loss defaults (β-TCVAE's β = 0, ...) and groups that fit a tiny batch."""
    config = tiny_config(name, model=model, steps=steps)
    config.loss = RunConfig(name=name, model=model).loss
    config.modvae.dims_per_factor, config.modvae.group_size = 1, 8
    return config.validate()


@pytest.mark.parametrize("family", list(FAMILIES), ids=FAMILIES.names())
def test_every_family_trains_and_logs_finite_terms(tmp_path, family):
    run = train(family_config("f", family.name), tmp_path, progress=False, dataset=DSPRITES)
    records = run.metrics("train")
    names = ["loss", "recon", "kl", *(t for r in family.regularisers for t in REGULARISERS[r].terms)]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    for record in records:
        assert all(math.isfinite(record[k]) for k in names), record
    assert run.status()["state"] == "finished" and run.checkpoint_step() == 20


@pytest.fixture(scope="module")
def factor_runs(tmp_path_factory):
    """FactorVAE trained 20 steps straight; the checkpoint of another after 10 steps; that one resumed to 20."""
    root = tmp_path_factory.mktemp("factor")
    straight = train(family_config("straight", "factor-vae"), root, progress=False, dataset=DSPRITES)
    half = train(family_config("half", "factor-vae", steps=10), root, progress=False, dataset=DSPRITES)
    at_ten = load_file(half.checkpoint_path)
    return straight, at_ten, resume(half, steps=20, progress=False, dataset=DSPRITES)


def test_factor_vae_resumes_exactly_with_its_discriminator(factor_runs):
    straight, _, resumed = factor_runs
    a, b = load_file(straight.checkpoint_path), load_file(resumed.checkpoint_path)
    assert a.keys() == b.keys()
    for prefix in ("model.", "optim.", "reg.factor-discriminator.", "regoptim.factor-discriminator."):
        assert any(k.startswith(prefix) for k in a), prefix
    for k in a:  # both networks' weights and both Adams' state, bit for bit
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    la = [(r["step"], r["loss"], r["tc"], r["disc_loss"]) for r in straight.metrics("train")]
    assert la == [(r["step"], r["loss"], r["tc"], r["disc_loss"]) for r in resumed.metrics("train")]


def test_factor_vae_steps_its_discriminator_once_per_vae_step(factor_runs):
    _, at_ten, resumed = factor_runs
    at_twenty = load_file(resumed.checkpoint_path)
    weights = [k for k in at_ten if k.startswith("reg.factor-discriminator.")]
    assert weights and all(not torch.equal(at_ten[k], at_twenty[k]) for k in weights)  # every weight moved
    assert [int(c["regoptim.factor-discriminator.0.step"]) for c in (at_ten, at_twenty)] == [10, 20]
    assert int(at_twenty["optim.0.step"]) == 20


def test_evaluate_scores_a_new_familys_run(factor_runs, capsys):
    straight = factor_runs[0]
    assert main(["--runs-dir", str(straight.path.parent), "evaluate", straight.name, "--fast", "--metrics", "mig"]) == 0
    doc = json.loads((straight.path / "eval.json").read_text())
    assert doc["model"] == "factor-vae" and 0 <= doc["results"]["mig"]["mig"] <= 1
