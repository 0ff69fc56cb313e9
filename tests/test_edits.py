"""Edit quality: flip rates judged by an attribute classifier, on planted stand-ins and a tiny SynthFaces run."""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from core.config import ConfigError
from core.data.synthfaces import SynthFaces
from core.metrics.classifier import ClassifierSettings, Judge, cache_path, data_fingerprint, load_or_train
from core.explore.encode import checkpoint_digest
from core.metrics.edits import judge_edits, parse_list, positive_rate, reconstructor, vector_specs
from core.metrics.evaluate import evaluate_run, load_eval
from core.metrics.report import summary
from core.runs.folder import Run

# Small enough for a test; 60 judge steps still learn SynthFaces' eyewear and smile (150 steps: AUC 1.0 on all 16).
QUICK = ["edits.classifier_steps=60", "edits.classifier_test_images=300", "edits.num_faces=16",
         "edits.num_train=400", "edits.alphas=0,1,3", "edits.identity_steps=30"]


class Brightness(torch.nn.Module):
    """A planted 'VAE' with one latent dim: the code is an image's mean brightness, decoding paints it flat."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the stub a device

    def encode(self, x):
        mu = x.mean(dim=(1, 2, 3))[:, None]
        return mu, torch.zeros_like(mu)

    def decode(self, z):
        return z.clamp(0, 1)[:, :, None, None].expand(-1, 3, 64, 64)


class Threshold:
    """A planted judge: 'Bright' when brightness > 0.5, 'Grey' a smooth function of brightness, 'Fixed' never moves."""

    def probabilities(self, images):
        b = images.mean(dim=(1, 2, 3)).numpy()
        return np.stack([(b > 0.5).astype(float), b, np.full_like(b, 0.3)], axis=1)


def flat_images(levels):
    return np.stack([np.full((3, 64, 64), round(255 * v), np.uint8) for v in levels])


def test_planted_edits_flip_exactly_the_faces_pushed_past_the_judges_threshold():
    judge = Judge(Threshold(), ["Bright", "Grey", "Fixed"], {}, "planted", cached=False)
    images = flat_images([0.1, 0.2, 0.3, 0.4])
    out = judge_edits(Brightness(), judge, images, np.array([1.0], np.float32), [0.0, 0.15, 0.35, 1.0], "Bright")
    # brightness b + alpha passes 0.5 for: none; b=0.4; b=0.2,0.3,0.4 (0.2+0.35=0.55); all four
    assert out["flip_rate"] == pytest.approx([0, 0.25, 0.75, 1.0])
    # the image moves by alpha per pixel until it saturates at 1
    levels = np.array([0.1, 0.2, 0.3, 0.4])
    expected = [np.mean(np.minimum(levels + a, 1) - levels) for a in (0, 0.15, 0.35, 1.0)]
    assert out["pixel_change"] == pytest.approx(expected, abs=0.01)
    # 'Grey' follows brightness, 'Fixed' never moves: dependency is their mean |change| = half of Grey's
    assert out["dependency"] == pytest.approx([e / 2 for e in expected], abs=0.01)
    assert list(out["most_changed"][-1])[0] == "Grey"
    # Grey is judged present exactly when Bright is, so it flips on the same faces; Fixed never does
    assert out["others_kept"] == pytest.approx([1, 0.75, 0.25, 0])


def test_vector_methods_balance_on_male_and_young_where_present_and_leave_out_what_has_nothing_to_use():
    names = ["Smiling", "Eyeglasses", "Male", "Young"]
    celeba = vector_specs("Smiling", ["Smiling", "Eyeglasses"], names, hold=("Male",))
    assert [(label, s.confounders, s.condition_on) for label, s in celeba] == [
        ("mean", (), ()), ("balanced", ("Male", "Young"), ()), ("conditional", (), ("Eyeglasses",)),
        ("holding Male", (), ("Male",))]
    assert [label for label, _ in vector_specs("Smiling", ["Smiling"], ["Smiling", "Bangs"], hold=("Male",))] == ["mean"]
    # holding the attribute itself, or what "conditional" removes already, adds no vector
    assert len(vector_specs("Male", ["Male", "Eyeglasses"], names, hold=("Male",))) == 3
    assert len(vector_specs("Smiling", ["Smiling", "Eyeglasses"], names, hold=("Eyeglasses",))) == 3


def test_watched_attributes_report_the_signed_change_of_their_judged_probability():
    judge = Judge(Threshold(), ["Bright", "Grey", "Fixed"], {}, "planted", cached=False)
    out = judge_edits(Brightness(), judge, flat_images([0.1, 0.3]), np.array([1.0], np.float32), [0.0, 0.2, -0.1],
                      "Bright", watch=("Grey", "Fixed", "Absent"))
    # Grey is the brightness itself: it moves by +alpha (clamped at 0 for the face at 0.1 when alpha = -0.1)
    assert out["watched"]["Grey"] == pytest.approx([0.0, 0.2, -0.1], abs=0.01)
    assert out["watched"]["Fixed"] == pytest.approx([0.0, 0.0, 0.0]) and "Absent" not in out["watched"]


def test_parse_list_names_the_bad_value():
    assert parse_list("0, 0.5 ,3", float) == [0.0, 0.5, 3.0]
    with pytest.raises(ConfigError, match="'0,big'"):
        parse_list("0,big", float)
    with pytest.raises(ConfigError, match="empty"):
        parse_list(" , ")


@pytest.fixture(scope="module")
def judge_cache(tmp_path_factory):
    """$LATENTLAB_CACHE for this module: where the evaluations' attribute judge is cached."""
    folder = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LATENTLAB_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def edited_run(tiny_runs_dir, tmp_path_factory, judge_cache):
    """A copy of tiny-bvae evaluated with the edits metric (fast mode, shrunk further)."""
    root = shutil.copytree(tiny_runs_dir, tmp_path_factory.mktemp("edits") / "runs")
    run = Run(root / "tiny-bvae")
    evaluate_run(run, ["edits"], fast=True, overrides=QUICK)
    return run


def test_fast_evaluation_writes_flip_rates_for_every_alpha(edited_run):
    doc = load_eval(edited_run)
    edits = doc["results"]["edits"]
    assert edits["alphas"] == [0.0, 1.0, 3.0] and edits["fast"] is True and edits["missing"] == []
    assert [a["name"] for a in edits["attributes"]] == ["Smiling", "Eyeglasses", "Sunglasses"]
    for attribute in edits["attributes"]:
        assert attribute["faces"] == 16
        assert [v["method"] for v in attribute["vectors"]] == ["mean", "balanced", "conditional"]
        for vector in attribute["vectors"]:
            if "skipped" in vector:
                continue
            for key in ("flip_rate", "dependency", "pixel_change", "others_kept"):
                assert len(vector[key]) == 3 and all(0 <= x <= 1 for x in vector[key]), key
            assert vector["others_kept"][0] == 1  # alpha 0 is the reconstruction: nothing else changed
            assert vector["pixel_change"][0] == 0 and vector["dependency"][0] == 0  # alpha 0 is the reconstruction
    assert "renderer's exact ground truth" in edits["judge"]["trained_on"]
    # the judge learns SynthFaces' eyewear and smile from the renderer's exact labels in 60 steps
    assert edits["judge"]["aucs"]["Eyeglasses"] > 0.9 and edits["judge"]["aucs"]["Smiling"] > 0.9
    assert "Eyeglasses" in summary(doc) and "flip rate" in summary(doc)
    # SynthFaces knows its people: every edit says how far it moved the person, on the identity CNN's scale
    assert 0 <= edits["identity"]["calibration_auc"] <= 1 and "identity classifier" in edits["identity"]["kind"]
    for attribute in edits["attributes"]:
        for vector in attribute["vectors"]:
            if "skipped" not in vector:
                assert len(vector["identity_change"]) == 3
                # alpha 0 is the reconstruction itself: closer than two photos of one person (the scale's 0)
                assert vector["identity_change"][0] <= 1e-6


def test_flip_rate_at_alpha_zero_is_the_judges_false_positive_rate_on_reconstructions(edited_run):
    dataset = SynthFaces()
    model = edited_run.load_model()
    judge = load_or_train(dataset, _settings(edited_run), reconstruct=reconstructor(model))
    assert judge.cached  # the evaluation's judge, read back from the cache
    test = dataset.indices("test")
    without = test[~dataset.attributes.column("Eyeglasses")[test]][:40]
    images = dataset.images(without)
    delta = np.random.default_rng(0).normal(size=model.latent_dim).astype(np.float32)
    out = judge_edits(model, judge, images, delta, [0.0, 2.0], "Eyeglasses", batch_size=7)
    assert out["flip_rate"][0] == positive_rate(model, judge, images, "Eyeglasses", reconstruct=True)
    assert out["pixel_change"][1] > 0


def test_another_run_on_the_data_set_reuses_the_judge_with_results_identical_to_training_it(edited_run, tmp_path):
    run = Run(shutil.copytree(edited_run.path, tmp_path / "other-run"))
    (run.path / "eval.json").unlink()
    again = evaluate_run(run, ["edits"], fast=True, overrides=QUICK)["results"]["edits"]
    first = load_eval(edited_run)["results"]["edits"]
    assert first["judge"]["cached"] is False and again["judge"]["cached"] is True
    assert {**again, "seconds": 0, "judge": {}, "identity": {}} == {**first, "seconds": 0, "judge": {}, "identity": {}}
    assert {**again["identity"], "cached": None} == {**first["identity"], "cached": None}
    assert {**again["judge"], "cached": None} == {**first["judge"], "cached": None}


def test_the_runs_judge_learns_from_its_reconstructions_too_and_reports_how_it_does_on_them(edited_run, tmp_path):
    judge = load_eval(edited_run)["results"]["edits"]["judge"]
    assert "this run's reconstructions" in judge["trained_on"]
    for key in ("accuracy", "reconstruction_aucs", "reconstruction_accuracy"):
        assert set(judge[key]) == set(judge["aucs"]) and all(v is None or 0 <= v <= 1 for v in judge[key].values())
    real = ClassifierSettings.of(SynthFaces(), 0, steps=60, test_images=300, seed=0)
    assert real.key() != _settings(edited_run).key()  # one judge per run's weights, another for real images only
    with pytest.raises(ValueError, match="both"):
        load_or_train(SynthFaces(), _settings(edited_run), tmp_path)  # the weights named, no reconstructions given
    doc = evaluate_run(Run(shutil.copytree(edited_run.path, tmp_path / "real")), ["edits"], fast=True,
                       overrides=[*QUICK, "edits.judge=real"])
    assert "reconstructions" not in doc["results"]["edits"]["judge"]["trained_on"]
    assert "reconstruction_aucs" not in doc["results"]["edits"]["judge"]


def test_a_damaged_or_mismatched_judge_cache_is_refused_with_a_message_and_retrained(tmp_path, caplog):
    dataset = SynthFaces()
    settings = ClassifierSettings.of(dataset, 0, steps=2, test_images=50, seed=0)
    assert settings.data_fingerprint == data_fingerprint(dataset)
    assert settings.train_images == len(dataset.indices("train"))
    trained = load_or_train(dataset, settings, tmp_path)
    assert not trained.cached and load_or_train(dataset, settings, tmp_path).cached
    base = cache_path(dataset, settings, tmp_path)
    assert base.parent == tmp_path / "attribute-judge" and base.name.startswith("synthfaces-")
    redrawn = ClassifierSettings(**{**settings.__dict__, "data_fingerprint": "re-rendered"})
    assert cache_path(dataset, redrawn, tmp_path) != base  # the images changed: another judge, trained anew

    weights = base.with_suffix(".safetensors")
    damaged = bytearray(weights.read_bytes())
    damaged[-1] ^= 0xFF  # still parses as safetensors: only the recorded hash tells
    for damage, message in [(lambda: weights.write_bytes(bytes(damaged)), "does not match the SHA-256"),
                            (lambda: weights.write_bytes(b"\x80\x04 a pickle"), "does not match the SHA-256"),
                            (lambda: base.with_suffix(".json").write_text("{not json"), str(base.with_suffix(".json"))),
                            (lambda: base.with_suffix(".json").unlink(), "does not exist")]:
        damage()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="core.metrics.classifier"):
            judge = load_or_train(dataset, settings, tmp_path)
        assert not judge.cached and "attribute judge cache refused" in caplog.text and message in caplog.text
        # retrained over: the same weights as before (fixed seed), and the next evaluation reads them again
        assert all(torch.equal(a, b) for a, b in zip(judge.model.state_dict().values(),
                                                     trained.model.state_dict().values()))
        assert judge.aucs == trained.aucs and load_or_train(dataset, settings, tmp_path).cached


def test_a_data_set_without_the_chosen_attributes_is_skipped_with_the_known_names(edited_run, tmp_path):
    run = Run(shutil.copytree(edited_run.path, tmp_path / "tiny-bvae"))
    doc = evaluate_run(run, ["edits"], fast=True, overrides=["edits.attributes=Moustache"])
    skipped = doc["results"]["edits"]["skipped"]
    assert "Moustache" in skipped and "Eyeglasses" in skipped and "edits.attributes" in skipped


def _settings(run: Run) -> ClassifierSettings:
    """The judge settings of an evaluation with QUICK: the run's own judge, trained with its reconstructions."""
    return ClassifierSettings.of(SynthFaces(), run.config.data.seed, steps=60, test_images=300, seed=0,
                                 reconstructions_of=checkpoint_digest(run))


def test_others_kept_leaves_out_the_attributes_of_the_edited_ones_own_factor():
    judge = Judge(Threshold(), ["Bright", "Grey", "Fixed"], {}, "planted", cached=False)
    out = judge_edits(Brightness(), judge, flat_images([0.1, 0.2, 0.3, 0.4]), np.array([1.0], np.float32),
                      [0.0, 1.0], "Bright", same_factor=("Grey",))
    assert out["others_kept"] == [1.0, 1.0]  # Grey reads Bright's factor: only Fixed counts, and it never moves
    assert SynthFaces().attribute_factor("Frowning") == SynthFaces().attribute_factor("Smiling") == "smile"


def test_a_real_images_judge_keeps_the_record_and_key_it_had_before_judges_learnt_from_reconstructions(tmp_path):
    import json

    dataset = SynthFaces()
    settings = ClassifierSettings.of(dataset, 0, steps=2, test_images=50, seed=0)
    load_or_train(dataset, settings, tmp_path)
    recorded = json.loads(cache_path(dataset, settings, tmp_path).with_suffix(".json").read_text())["settings"]
    assert "reconstructions_of" not in recorded  # as older caches wrote it: they are read, not retrained
    assert load_or_train(dataset, settings, tmp_path).cached
