"""`python -m core evaluate`: eval.json end to end on dSprites, real data without factors, merging, bad input."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import sklearn

from core.cli import main
from core.data import Attributes, Dataset
from core.runs.labels import DimLabel
from core.metrics.registry import METRICS, SECTIONS
from core.metrics.evaluate import evaluate_run, load_eval
from core.metrics.report import summary
from core.metrics.likelihood import bits_per_dim
from core.runs.folder import Run
from core.training.loop import train
from tests.tiny import tiny_config

# Far below even fast mode, so the end-to-end run takes seconds; the settings are recorded in eval.json.
SMALL = {"beta_vae.num_train": 40, "beta_vae.num_eval": 20, "factor_vae.num_train": 40, "factor_vae.num_eval": 20,
         "factor_vae.num_variance_estimate": 300, "mig.num_train": 300, "dci.num_train": 200, "dci.num_test": 100,
         "dci.num_trees": 5, "sap.num_train": 200, "sap.num_test": 100, "likelihood.num_images": 8,
         "likelihood.num_samples": 20, "reconstruction.num_images": 32, "probes.num_train": 300, "probes.num_test": 200}
SET = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]


def test_cli_evaluates_a_dsprites_run_into_eval_json(tmp_path, capsys):
    train(tiny_config("ev", dataset="dsprites", steps=10), tmp_path, progress=False)
    run = Run(tmp_path / "ev")
    assert main(["--runs-dir", str(tmp_path), "evaluate", "ev", "--fast", *SET]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "beta_vae" in out and "Square" in out  # summary table with the probe rows
    doc = json.loads((run.path / "eval.json").read_text())
    assert load_eval(run) == doc  # every result the evaluation writes fits eval.json's schema: none is left out
    assert doc["versions"]["scikit-learn"] == sklearn.__version__ and doc["step"] == run.checkpoint_step()
    results = doc["results"]
    assert list(results) == list(METRICS)
    for name, r in results.items():
        assert r["seed"] == 0 and r["fast"] is True and r["seconds"] >= 0 and r["step"] == doc["step"], name
    assert results["dci"]["settings"] == {"num_train": 200, "num_test": 100, "num_trees": 5}
    assert np.array(results["dci"]["importance"]).shape == (8, 5)  # 8 latent dims x 5 dSprites factors
    for name, key in [("beta_vae", "eval_accuracy"), ("factor_vae", "eval_accuracy"), ("mig", "mig"),
                      ("dci", "disentanglement"), ("sap", "sap")]:
        assert 0 <= results[name][key] <= 1, name
    lik = results["likelihood"]
    assert lik["density"] == "discrete" and lik["dims"] == 3 * 64 * 64  # Bernoulli on binary sprites
    assert lik["iwae_bits_per_dim"] == pytest.approx(bits_per_dim(lik["iwae"], lik["dims"]))
    assert lik["iwae_bits_per_dim"] > 0 and list(lik["iwae_by_k"]) == ["1", "10", "20"]
    assert {"mse_per_pixel", "bce_per_pixel"} <= set(results["reconstruction"])
    assert [a["name"] for a in results["probes"]["attributes"]][:3] == ["Square", "Ellipse", "Heart"]
    assert results["probes"]["split"] == "by data split"
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]

    # a subset merges into the file: the other results stay, the new one replaces its old self
    assert main(["--runs-dir", str(tmp_path), "evaluate", "ev", "--metrics", "mig", "--seed", "1",
                 "--set", "mig.num_train=300"]) == 0
    merged = json.loads((run.path / "eval.json").read_text())["results"]
    assert merged["dci"] == results["dci"] and merged["mig"]["seed"] == 1 and merged["mig"]["fast"] is False


def test_bad_evaluate_input_gives_a_message(tmp_path, capsys):
    base = ["--runs-dir", str(tmp_path), "evaluate"]
    assert main([*base, "ghost"]) == 2
    assert "ghost" in capsys.readouterr().err
    assert main([*base, "ghost", "--metrics", "mig,flip_rate"]) == 2
    err = capsys.readouterr().err
    assert "flip_rate" in err and "beta_vae" in err
    assert main([*base, "ghost", "--set", "dci.trees=3"]) == 2
    assert "dci.num_trees" in capsys.readouterr().err
    assert main([*base, "ghost", "--set", "dci.num_trees=many"]) == 2
    assert "int" in capsys.readouterr().err


class Photos(Dataset):
    """A real-data stand-in: no factors, grey photos of 60 people, one person split across train and test."""

    name = "photos"

    def __init__(self, n: int = 240):
        self.level = np.random.default_rng(0).integers(20, 236, n).astype(np.uint8)
        self.split = np.where(np.arange(n) < 160, 0, 2).astype(np.int8)
        self.identities = (np.arange(n) + 2) // 4  # person 40 owns images 158..161
        self.attributes = Attributes(["Bright", "Never"], np.stack([self.level > 128, np.zeros(n, bool)], axis=1))

    def images(self, index):
        return np.repeat(self.level[index], 3 * 64 * 64).reshape(len(index), 3, 64, 64)


@pytest.fixture
def run_copy(tiny_runs_dir, tmp_path):
    shutil.copytree(tiny_runs_dir / "tiny-bvae", tmp_path / "tiny-bvae")
    return Run(tmp_path / "tiny-bvae")


def test_real_data_skips_disentanglement_but_keeps_the_rest(run_copy):
    doc = evaluate_run(run_copy, fast=True, overrides=[f"{k}={v}" for k, v in SMALL.items()], dataset=Photos())
    results = doc["results"]
    for name in ("beta_vae", "factor_vae", "mig", "dci", "sap"):
        assert "no ground-truth factors" in results[name]["skipped"]
    assert results["likelihood"]["density"] == "unnormalised" and results["likelihood"]["iwae_bits_per_dim"] is None
    probes = results["probes"]
    assert probes["split"].startswith("by identity (2 ")  # images 160, 161 belong to a training person
    assert probes["test_images"] == 78
    bright, never = probes["attributes"]
    assert bright["auc"] > 0.9 and "skipped" in never
    table = summary(doc, {d: DimLabel(f"label{d}") for d in range(8)})
    assert "skipped: photos has no ground-truth factors" in table and " · label" in table


def test_results_of_an_older_checkpoint_are_dropped(run_copy):
    step = run_copy.checkpoint_step()
    stale = {"format": "latentlab-eval-1", "step": step - 1, "results": {"mig": {"mig": 0.5}}}
    (run_copy.path / "eval.json").write_text(json.dumps(stale))
    small = ["reconstruction.num_images=16"]
    evaluate_run(run_copy, ["reconstruction"], overrides=small, dataset=Photos())
    assert list(load_eval(run_copy)["results"]) == ["reconstruction"]
    same_step = {**load_eval(run_copy), "results": {"mig": {"mig": 0.5}}}
    (run_copy.path / "eval.json").write_text(json.dumps(same_step))
    evaluate_run(run_copy, ["reconstruction"], overrides=small, dataset=Photos())
    assert list(load_eval(run_copy)["results"]) == ["mig", "reconstruction"]


def test_finished_metrics_survive_an_interruption(run_copy, monkeypatch):
    def interrupted(ctx, seed):
        raise KeyboardInterrupt

    monkeypatch.setitem(SECTIONS, "likelihood", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run_copy, ["reconstruction", "likelihood"], overrides=["reconstruction.num_images=16"],
                     dataset=Photos())
    assert list(load_eval(run_copy)["results"]) == ["reconstruction"]


def test_eval_json_records_the_version_of_a_generated_data_set(run_copy):
    plain = evaluate_run(run_copy, ["reconstruction"], overrides=["reconstruction.num_images=16"], dataset=Photos())
    assert "photos" not in plain["versions"]
    photos = Photos()
    photos.version = "renderer 9"  # SynthFaces' scores depend on how it draws faces
    evaluate_run(run_copy, ["reconstruction"], overrides=["reconstruction.num_images=16"], dataset=photos)
    assert load_eval(run_copy)["versions"]["photos"] == "renderer 9"
