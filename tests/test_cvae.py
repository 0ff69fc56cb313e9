"""The conditional VAE (cvae): trains on SynthFaces' 16 attributes, records their count in config.json so a run
reloads without its data set, resumes exactly, refuses data without attributes, and its decoder changes a face's
attribute when the condition is flipped (checked against the SynthFaces renderer; the attribute judge's flip
rates on a longer-trained model are in benchmarks/cvae_condition.py and benchmarks/RESULTS.md)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from streamlit.testing.v1 import AppTest

from core.config import ConfigError, RunConfig
from core.data.base import Attributes, DataError, Dataset
from core.data.synthfaces import SynthFaces
from core.explore.condition import (ConditionError, attribute_column, condition_edit, face_conditions, reconstruct,
                                    set_condition)
from core.explore.encode import encode
from core.explore.generate import decode
from core.models.cvae import CVAE, is_conditional
from core.runs.folder import Run, create_run
from core.training.batches import ShuffledBatches
from core.training.feed import Feed
from core.training.loop import Trainer, resume, train
from tests.tiny import tiny_config

ROOT = Path(__file__).resolve().parents[1]
SYNTH = SynthFaces()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """'tiny-cvae': 20 steps, created the way the Train page does (jobs.launch reserves the folder before the data
    set is loaded, so cond_dim is still 0 in the config.json it writes), then trained; and its trainer."""
    root = tmp_path_factory.mktemp("cvae") / "runs"
    run = create_run(tiny_config("tiny-cvae", model="cvae", dataset="synthfaces", steps=20), root)
    assert run.config.arch.cond_dim == 0
    trainer = Trainer(run, SYNTH, progress=False)
    trainer.fit()
    return root, trainer


def test_trains_with_finite_losses_and_config_json_records_the_attribute_count(runs):
    root, trainer = runs
    run = Run(root / "tiny-cvae")
    records = run.metrics("train")
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["kl"]) for r in records)
    assert all(math.isfinite(r["neg_elbo"]) for r in run.metrics("val"))
    assert run.status()["state"] == "finished"
    assert json.loads((run.path / "config.json").read_text())["arch"]["cond_dim"] == 16 == len(SYNTH.attributes.names)
    # y=None stands for the train split's attribute frequencies, saved with the weights
    train_mean = SYNTH.attributes.values[SYNTH.indices("train")].mean(0)
    np.testing.assert_allclose(run.load_model().condition_mean.numpy(), train_mean, rtol=1e-6)


def test_reloads_without_the_data_set_and_gives_identical_outputs(runs, monkeypatch):
    root, trainer = runs

    def no_data(*args, **kwargs):
        raise AssertionError("the data set was loaded")

    monkeypatch.setattr("core.data.load_dataset", no_data)
    monkeypatch.setattr(SynthFaces, "__init__", no_data)
    model = Run(root / "tiny-cvae").load_model()
    reference = trainer.model.eval()
    assert isinstance(model, CVAE) and is_conditional(model) and model.cond_dim == 16
    x = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    y = torch.rand(5, 16, generator=torch.Generator().manual_seed(1)).round()
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    for given in ({"y": y}, {}):  # the data set's conditions, and none (the recorded attribute frequencies)
        for a, b in zip(model.encode(x, **given), reference.encode(x, **given)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(model.decode(z, **given), reference.decode(z, **given), rtol=0, atol=0)
        torch.testing.assert_close(model(x, **given).logits, reference(x, **given).logits, rtol=0, atol=0)


def test_resume_continues_exactly(tmp_path):
    def config(name: str, steps: int):
        return tiny_config(name, model="cvae", dataset="synthfaces", steps=steps)

    straight = train(config("straight", 20), tmp_path, progress=False, dataset=SYNTH)
    half = train(config("half", 10), tmp_path, progress=False, dataset=SYNTH)
    assert half.config.arch.cond_dim == 16  # written before the folder existed
    resumed = resume(half, steps=20, progress=False, dataset=SYNTH)
    a, b = load_file(straight.checkpoint_path), load_file(resumed.checkpoint_path)
    assert a.keys() == b.keys() and "model.condition_mean" in a and any(k.startswith("optim.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert ([(r["step"], r["loss"]) for r in straight.metrics("train")]
            == [(r["step"], r["loss"]) for r in resumed.metrics("train")])


class NoAttributes(Dataset):
    """LFW without lfw_attributes.txt, in miniature: images but no attribute columns."""

    name = "no-attributes"

    def __init__(self, n: int = 64):
        self.split = np.zeros(n, np.int8)
        self.attributes = Attributes([], np.zeros((n, 0), bool))

    def images(self, index):
        return np.zeros((len(index), 3, 64, 64), np.uint8)


def test_data_without_attributes_is_refused_before_a_run_folder_exists(tmp_path):
    with pytest.raises(DataError, match="conditioned on the data set's binary attributes, and no-attributes has none"):
        train(tiny_config("bare", model="cvae", dataset="synthfaces"), tmp_path, progress=False, dataset=NoAttributes())
    assert not (tmp_path / "bare").exists()
    with pytest.raises(ConfigError, match="an image folder has none without --attributes-csv"):
        RunConfig.from_options({"model": "cvae", "data.dataset": "folder", "data.root": str(tmp_path)})
    config = tiny_config("wrong", model="beta-vae")
    config.arch.cond_dim = 3
    with pytest.raises(ConfigError, match="arch.cond_dim = 3: only a conditional model family"):
        config.validate()


def test_a_run_made_for_other_attributes_is_refused(runs):
    root, _ = runs
    config = Run(root / "tiny-cvae").config
    config.data.dataset = "dsprites"  # 6 attributes, the run was made for 16
    from core.data.dsprites import DSprites
    from core.runs.folder import RunError
    from core.training.conditions import with_conditions

    with pytest.raises(RunError, match="created for 16 attributes, but dsprites now has 6"):
        with_conditions(config, DSprites())
    with pytest.raises(ConditionError, match="conditioned on 16 attributes, but the data set dsprites has 6"):
        face_conditions(Run(root / "tiny-cvae").load_model(), DSprites(), np.arange(3))


class FirstImages(Dataset):
    """The first n SynthFaces images with their attributes, all in the train split (a small resident copy)."""

    name = "synthfaces[:512]"

    def __init__(self, n: int = 512):
        self.split = np.zeros(n, np.int8)
        self.attributes = Attributes(SYNTH.attributes.names, SYNTH.attributes.values[:n])

    def images(self, index):
        return SYNTH.images(index)


def test_resident_and_streamed_feeds_serve_the_same_conditions():
    small = FirstImages()
    rows = small.attributes.values.astype(np.float32)
    batches = ShuffledBatches(small, batch_size=16, seed=3)
    resident = Feed(small, batches, torch.device("cpu"), resident=True, conditions=rows)
    streamed = Feed(small, batches, torch.device("cpu"), resident=False, conditions=rows)
    try:
        for step in [0, 1, 5, 2, 2]:  # read ahead, skip, go back, repeat
            (b1, x1, y1, _), (b2, x2, y2, _) = resident.fetch(step), streamed.fetch(step)
            assert np.array_equal(b1.index, b2.index) and torch.equal(x1, x2)
            assert torch.equal(y1, torch.from_numpy(rows[b1.index])) and torch.equal(y2, y1)
        assert resident(3)[1].shape == (16, 3, 64, 64)  # feed(step) keeps its (batch, images) form
        assert Feed(small, batches, torch.device("cpu"), resident=True).fetch(0)[2] is None  # no conditions
    finally:
        streamed.close()


def test_flipping_the_condition_changes_the_decoded_image_and_unaware_callers_still_work(runs):
    root, _ = runs
    model = Run(root / "tiny-cvae").load_model()
    index = SYNTH.indices("test")[:4]
    mu = encode(model, SYNTH, index)[0]  # encoded under each face's own attributes
    y = face_conditions(model, SYNTH, index)
    assert y.shape == (4, 16) and set(np.unique(y)) <= {0.0, 1.0}
    column = attribute_column(SYNTH.attributes.names, "Dark_Skin")
    images = condition_edit(model, mu, y, column, [0.0, 0.5, 1.0])
    assert images.shape == (4, 3, 3, 64, 64) and images.dtype == np.uint8
    assert np.abs(images[:, 2].astype(int) - images[:, 0]).mean() > 0  # the pixels change
    np.testing.assert_array_equal(set_condition(y, column, [0.25])[:, 0, column], 0.25)
    own = reconstruct(model, mu, y)
    untouched = (y[:, column] == 0)
    np.testing.assert_array_equal(own[untouched], images[untouched, 0])  # α = the face's own value: its reconstruction
    # code that knows nothing about conditions: y=None is the attribute frequencies
    assert decode(model, mu).shape == (4, 3, 64, 64)
    assert model.sample(2).shape == (2, 3, 64, 64)
    with pytest.raises(ConditionError, match="need a conditional model"):
        condition_edit(torch.nn.Linear(1, 1), mu, y, column, [1.0])


def test_a_flipped_condition_moves_the_face_the_way_the_renderer_moves_it(tmp_path):
    """The issue's check ("the decoder changes the attribute the judge sees when its condition is flipped") with the
    SynthFaces renderer as the judge: for faces with neither dark nor pale skin, decode(z, Dark_Skin = 1) −
    decode(z, Dark_Skin = 0) must point the way the renderer's own image changes when only the skin-tone factor is
    set to dark (cosine similarity of the two pixel differences). 60 tiny steps learn it (about 5 s on 2 cores); 20
    do not (cosine ≈ 0)."""
    run = train(tiny_config("learnt", model="cvae", dataset="synthfaces", steps=60, lr=3e-3, val_every=60,
                            checkpoint_every=60, sample_every=60), tmp_path, progress=False, dataset=SYNTH)
    model = run.load_model()
    names, values = SYNTH.attributes.names, SYNTH.attributes.values
    dark, pale = names.index("Dark_Skin"), names.index("Pale_Skin")
    test = SYNTH.indices("test")
    index = np.random.default_rng(0).choice(test[~values[test, dark] & ~values[test, pale]], 16, replace=False)
    factors = SYNTH.index_to_factors(index)
    darker = factors.copy()
    darker[:, SYNTH.factor_names.index("skin_tone")] = 3  # pale, light, tan, dark
    truth = (SYNTH.images_from_factors(darker).astype(float) - SYNTH.images(index)).reshape(16, -1)
    images = condition_edit(model, encode(model, SYNTH, index)[0], face_conditions(model, SYNTH, index), dark,
                            [0.0, 1.0]).astype(float)
    change = (images[:, 1] - images[:, 0]).reshape(16, -1)
    cosine = (change * truth).sum(1) / (np.linalg.norm(change, axis=1) * np.linalg.norm(truth, axis=1))
    assert cosine.min() > 0.2 and cosine.mean() > 0.4, cosine  # measured: min 0.44, mean 0.57


def test_arithmetic_page_offers_edit_by_condition_for_a_cvae_run(runs, monkeypatch, tmp_path):
    root, _ = runs
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(root))
    at = AppTest.from_file(str(ROOT / "pages" / "arithmetic.py"), default_timeout=120)
    at.session_state["run_name"] = "tiny-cvae"
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="arith_how").value == "vector"
    vector_pictures = [url for image in at.get("image") for url in image.value]
    assert len(vector_pictures) == 3 + 7  # the vector edit as for any run: original, reconstruction, edit, α steps

    at.radio(key="arith_how").set_value("condition").run()
    assert not at.exception and not at.error
    before = [url for image in at.get("image") for url in image.value]
    assert len(before) == 3 + 5  # original, reconstruction under the faces' own attributes, the edit, 5 values
    assert any("Condition: Smiling = +1.0" in m.value for m in at.markdown)
    assert [m.value for m in at.markdown if m.value.startswith("**c =")] == [
        f"**c = {v:+.2f}**" for v in (0, 0.25, 0.5, 0.75, 1)]
    at.slider(key="arith_cond_value").set_value(0.0).run()
    after = [url for image in at.get("image") for url in image.value]
    assert after[2] != before[2] and after[:2] == before[:2] and after[3:] == before[3:]
    at.slider(key="arith_cond_range").set_value((0.0, 2.0)).run()
    assert [url for image in at.get("image") for url in image.value][-1] != after[-1]  # the last value: 1 -> 2
    assert not at.exception and not at.error


@pytest.mark.parametrize("mode", ["plain", "fast"])
def test_the_conditioned_training_forward_is_one_graph(tmp_path, mode):
    """As tests/test_compile_graphs.py for the VAE: the forward the trainer calls, with the feed's conditions."""
    import torch._dynamo

    trainer = Trainer(create_run(tiny_config(f"graph-{mode}", model="cvae", dataset="synthfaces", steps=1, mode=mode),
                                 tmp_path), SYNTH, progress=False)
    try:
        batch, x, y, _ = trainer.feed.fetch(0)
    finally:
        trainer.feed.close()
    assert y.shape == (16, 16) and torch.equal(y, torch.from_numpy(SYNTH.attributes.values[batch.index]).float())
    x, noise = trainer.speed.images(x), trainer._noise(0)
    trainer.model.train()
    with trainer.speed.autocast(trainer.device):
        explained = torch._dynamo.explain(trainer.train_model)(x, noise, None, y=y)
    reasons = [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1 and explained.graph_break_count == 0 and not reasons, reasons


def test_the_judge_benchmark_runs_and_prints_a_row_per_attribute(tmp_path, monkeypatch, capsys):
    """benchmarks/cvae_condition.py (the judge's flip rates, numbers in benchmarks/RESULTS.md), smoke-sized."""
    import runpy

    monkeypatch.setattr("sys.argv", ["cvae_condition.py", "--runs-dir", str(tmp_path), "--preset", "tiny",
                                     "--latent-dim", "8", "--steps", "4", "--batch-size", "8", "--device", "cpu",
                                     "--judge-steps", "2", "--judge-test-images", "32", "--val-images", "16",
                                     "--faces", "4"])
    runpy.run_path(str(ROOT / "benchmarks" / "cvae_condition.py"), run_name="__main__")
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| attribute")]
    assert len(rows) == 16 and "| Dark_Skin | " in out and "mean flip rate at α = 1" in out
