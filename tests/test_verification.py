"""Face verification (core.metrics.verification*): SynthFaces people, person-disjoint balanced folds, scores that
must be perfect or chance, a learned comparison that never sees a test person, LFW's pairs.txt, the baseline CNN's
identity distance, and `python -m core verify` end to end on a tiny run."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.data import DataError
from core.data.lfw import LFW
from core.data.synthfaces import IDENTITY_FACTORS, SynthFaces
from core.metrics import verification_scores
from core.metrics.identity_cnn import identity_distance, identity_judge
from core.metrics.verification import FILE, VerifySettings, load_verification, verify_run
from core.metrics.verification_job import (LOG, STATUS, start_verification, verification_running,
                                           verification_stage)
from core.metrics.verification_pairs import (find_lfw_pairs, lfw_pairs, make_folds, person_ids, read_lfw_pairs,
                                             sample_pairs, split_people)
from core.metrics.verification_scores import SCORES, fold_metrics, pair_scores
from core.runs.folder import Run, RunError
from tests.tiny import use_copy


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on the shared 2-core CPU, 2 threads of small convolutions collapse when another
    process is busy (see core/training/threads.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = VerifySettings.fast(heldout_images=600, train_images=600, learned_pairs=300, pairs=40, cnn_steps=20,
                           cnn_batch=16)


# --- people ----------------------------------------------------------------------------------------------------

def test_a_synthfaces_person_is_everything_but_expression_pose_lighting_and_eyewear():
    ds = SynthFaces()
    persons = person_ids(ds)
    assert ds.identities is None  # kept None: the probes would drop every test image of a training person
    people, counts = np.unique(persons, return_counts=True)
    assert len(people) == 4 * 2 * 4 * 4 * 3 == 384 and (counts == 5 * 3 * 5 * 3).all()
    factors = ds.index_to_factors(np.arange(len(ds)))
    varying = [ds.factor_names.index(f) for f in ("smile", "eyewear", "head_rotation", "lighting")]
    base = factors[::997].copy()
    for f in varying:  # changing expression, eyewear, pose or lighting keeps the person
        moved = base.copy()
        moved[:, f] = (moved[:, f] + 1) % ds.factor_sizes[f]
        np.testing.assert_array_equal(ds.identities_from_factors(moved), ds.identities_from_factors(base))
    for name in IDENTITY_FACTORS:  # changing any identity factor makes another person
        f = ds.factor_names.index(name)
        moved = base.copy()
        moved[:, f] = (moved[:, f] + 1) % ds.factor_sizes[f]
        assert (ds.identities_from_factors(moved) != ds.identities_from_factors(base)).all()


def test_people_are_held_out_by_split_when_the_splits_are_identity_disjoint_else_by_person():
    persons = np.repeat(np.arange(100), 3)
    by_person_split = np.where(np.arange(100) < 70, 0, np.where(np.arange(100) < 85, 1, 2))[persons].astype(np.int8)
    s = split_people(persons, by_person_split, seed=0)
    assert s.how == "by split" and not s.encoder_saw_heldout
    np.testing.assert_array_equal(s.heldout_people, np.arange(70, 100))
    per_image = np.tile(np.array([0, 1, 2], np.int8), 100)  # every person in every split
    s = split_people(persons, per_image, seed=0)
    assert s.how == "by person" and s.encoder_saw_heldout and len(s.heldout_people) == 20
    assert not np.intersect1d(s.heldout_people, s.training_people).size
    assert len(s.heldout_people) + len(s.training_people) == 100
    assert not np.array_equal(split_people(persons, per_image, seed=1).heldout_people, s.heldout_people)


def test_folds_never_share_a_person_and_are_balanced():
    rng = np.random.default_rng(0)
    persons = np.repeat(np.arange(80), rng.integers(1, 7, 80))
    index = np.arange(len(persons)) * 3 + 5  # data set indices need not be positions
    pairs = make_folds(index, persons, folds=10, pairs_per_fold=25, seed=0)
    person_of = dict(zip(index.tolist(), persons.tolist()))
    pa, pb = (np.array([person_of[i] for i in side.tolist()]) for side in (pairs.a, pairs.b))
    np.testing.assert_array_equal(pa == pb, pairs.same)
    fold_of: dict[int, int] = {}
    for p, k in zip(np.r_[pa, pb].tolist(), np.r_[pairs.fold, pairs.fold].tolist()):
        assert fold_of.setdefault(p, k) == k, f"person {p} is in folds {fold_of[p]} and {k}"
    for k, c in enumerate(pairs.counts()):
        assert c["same"] == c["different"] > 0
    keys = set(zip(np.minimum(pairs.a, pairs.b).tolist(), np.maximum(pairs.a, pairs.b).tolist()))
    assert len(keys) == len(pairs) and not (pairs.a == pairs.b).any()
    again = make_folds(index, persons, folds=10, pairs_per_fold=25, seed=0)
    np.testing.assert_array_equal(again.a, pairs.a)
    with pytest.raises(DataError, match="cannot make 10 folds"):
        make_folds(index[:30], persons[:30], folds=10, pairs_per_fold=5, seed=0)


# --- scores: a perfect code is perfect, a random one is chance --------------------------------------------------

def evaluate_code(code_of_person, people: int, pairs_per_fold: int, seed: int = 0) -> dict:
    """Scores of a code that is a function of the person (plus whatever noise it adds): half the people train the
    comparisons, the other half make 10 folds of pairs."""
    persons = np.repeat(np.arange(people), 4)
    codes = code_of_person(persons, np.random.default_rng(seed))
    train, test = persons < people // 2, persons >= people // 2
    pairs = make_folds(np.flatnonzero(test), persons[test], folds=10, pairs_per_fold=pairs_per_fold, seed=seed)
    scores, learned = pair_scores(codes[pairs.a], codes[pairs.b], codes[train], persons[train], 1000, seed)
    assert set(learned.people_seen.tolist()) <= set(range(people // 2))
    return {s: fold_metrics(scores[s], pairs.same, pairs.fold, pairs.folds) for s in SCORES}


def test_a_perfect_identity_code_verifies_perfectly():
    one_hot = lambda persons, rng: np.eye(100)[persons]
    for score, r in evaluate_code(one_hot, people=100, pairs_per_fold=30).items():
        if score != "learned":  # it cannot weigh dims that no training person uses: see below
            assert r["auc"] == 1.0 and r["accuracy"] == 1.0 and r["tar_at_far"] == 1.0, (score, r)
    distinct = lambda persons, rng: np.random.default_rng(1).normal(size=(persons.max() + 1, 16))[persons]
    for score, r in evaluate_code(distinct, people=100, pairs_per_fold=30).items():
        assert r["auc"] == 1.0 and r["tar_at_far"] == 1.0 and r["accuracy"] > 0.99, (score, r)


def test_a_random_code_scores_chance():
    # Under chance a fold's AUC (200 + 200 pairs) has sd sqrt(401 / (12 * 200 * 200)) = 0.029, so the mean of 10
    # folds has sd ~0.01 (a little more: pairs share images); 0.05 is about 5 sd. Accuracy: sd 0.025 a fold.
    noise = lambda persons, rng: rng.normal(size=(len(persons), 16))
    for score, r in evaluate_code(noise, people=800, pairs_per_fold=200).items():
        assert abs(r["auc"] - 0.5) < 0.05, (score, r["auc"])
        assert abs(r["accuracy"] - 0.5) < 0.05 and r["tar_at_far"] < 0.1, (score, r)


def test_the_threshold_comes_from_the_other_folds():
    scores = np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.6, 0.4, 0.3])
    same = np.array([1, 1, 0, 0, 1, 1, 0, 0], bool)
    r = fold_metrics(scores, same, np.array([0, 0, 0, 0, 1, 1, 1, 1]), 2)
    assert [f["threshold"] for f in r["folds"]] == [0.5, 0.5]  # midway between the other fold's classes
    assert r["accuracy"] == 1.0 and r["auc"] == 1.0 and r["roc"]["tar"][-1] == 1.0


# --- the learned comparison never sees a test person ------------------------------------------------------------

@pytest.fixture(scope="module")
def verified(tiny_runs_dir, tmp_path_factory):
    """A copy of the tiny runs, both verified with TINY settings (the baseline CNN only for tiny-modvae, cached in a
    private folder). Records the
    people every learned comparison was fitted on and the people of the test pairs."""
    root = shutil.copytree(tiny_runs_dir, tmp_path_factory.mktemp("verification") / "runs")
    cache = tmp_path_factory.mktemp("cnn-cache")
    seen, tested = [], []
    fit, folds = verification_scores.LearnedComparison.fit, make_folds

    def spy_fit(self, codes, persons, pairs):
        seen.append(np.unique(persons))
        return fit(self, codes, persons, pairs)

    def spy_folds(index, persons, *args, **kwargs):
        tested.append(np.unique(persons))
        return folds(index, persons, *args, **kwargs)

    with pytest.MonkeyPatch.context() as m:
        m.setattr(verification_scores.LearnedComparison, "fit", spy_fit)
        m.setattr("core.metrics.verification.make_folds", spy_folds)
        docs = {"tiny-bvae": verify_run(Run(root / "tiny-bvae"), replace(TINY, cnn_steps=0), cache_dir=cache),
                "tiny-modvae": verify_run(Run(root / "tiny-modvae"), TINY, fast=True, cache_dir=cache)}
    return root, cache, docs, seen, tested


def test_the_learned_comparison_never_sees_a_test_person(verified):
    _, _, docs, seen, tested = verified
    assert len(seen) == 1 + (3 + 1)  # latent blocks (bvae: all; modvae: all, identity, other) + modvae's CNN
    assert len(tested) == 2
    for people in seen:
        for test_people in tested:
            assert len(people) > 10 and not np.intersect1d(people, test_people).size
    for doc in docs.values():
        assert doc["protocol"]["learned_comparison_saw_test_people"] is False


def test_verification_json_is_self_describing(verified):
    root, _, docs, _, _ = verified
    doc = load_verification(Run(root / "tiny-modvae"))
    assert doc == json.loads(json.dumps(docs["tiny-modvae"]))
    assert doc["settings"]["pairs"] == 40 and doc["seed"] == 0 and doc["step"] == 20 and doc["fast"]
    assert doc["protocol"]["people_split"] == "by person" and doc["protocol"]["encoder_saw_test_people"]
    latent = doc["results"]["latent"]
    # tiny-modvae: 1 dim per factor, 12 dims; the identity block is the dims of the 5 identity factors
    assert latent["identity"]["dims"] == [2, 3, 4, 5, 8] and len(latent["other"]["dims"]) == 7
    assert set(docs["tiny-bvae"]["results"]["latent"]) == {"all"}
    for result in [*latent.values(), doc["results"]["cnn"]["all"]]:
        assert set(result["scores"]) == set(SCORES)
        for r in result["scores"].values():
            assert len(r["folds"]) == 10 and 0 <= r["auc"] <= 1 and len(r["roc"]["far"]) == len(r["roc"]["tar"])
    cnn = doc["cnn"]
    assert cnn["settings"]["embedding_dim"] == 12 and cnn["settings"]["steps"] == 20
    examples = doc["examples"]["cnn/all"]["pairs"]
    assert {e["outcome"] for e in examples} <= {"true accept", "false accept", "true reject", "false reject"}
    assert all("identity_distance" in e for e in examples)


# --- the baseline CNN's identity distance -----------------------------------------------------------------------

def test_identity_distance_is_0_for_one_person_and_1_for_two(verified):
    _, cache, _, _, _ = verified
    ds = SynthFaces()
    judge = identity_judge(ds, embedding_dim=12, steps=20, batch_size=16, cache_dir=cache)
    # the CNN that verifying tiny-modvae (12 dims) trained, read back from the cache
    assert judge.cached and verified[2]["tiny-modvae"]["cnn"]["cached"] is False
    persons = person_ids(ds)
    people = split_people(persons, ds.split, 0)
    heldout = np.flatnonzero(np.isin(persons, people.heldout_people) & (ds.split == 2))
    i, j, same = sample_pairs(persons[heldout], 300, np.random.default_rng(5))
    a, b = ds.images(heldout[i]), ds.images(heldout[j])
    d = identity_distance(judge, a, b)
    assert np.median(d[same]) < 0.5 < np.median(d[~same])  # fresh held-out pairs: near 0 and near 1
    assert (identity_distance(judge, a[:5], a[:5]) <= 0.05).all()  # an image and itself: at most "typical same"
    np.testing.assert_allclose(identity_distance(judge, a[:5] / 255.0, b[:5]), d[:5], atol=1e-4)  # float input
    with pytest.raises(ValueError, match="pairs"):
        identity_distance(judge, a[:2], b[:3])


# --- LFW's pairs.txt --------------------------------------------------------------------------------------------

def pairs_text(folds: int = 2, n: int = 2) -> str:
    lines = [f"{folds}\t{n}"]
    for k in range(folds):
        lines += [f"Person_{k}_A\t1\t{2 + s}" for s in range(n)]
        lines += [f"Person_{k}_A\t1\tPerson_{k}_B\t{1 + s}" for s in range(n)]
    return "\n".join(lines) + "\n"


def test_lfw_pairs_are_read_and_matched_to_images(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text(pairs_text())
    lines = read_lfw_pairs(path)
    assert len(lines) == 8 and [p.fold for p in lines] == [0] * 4 + [1] * 4
    assert [p.same for p in lines[:4]] == [True, True, False, False]
    assert lines[2].first == ("Person_0_A", 1) and lines[2].second == ("Person_0_B", 1)

    class FakeLFW:
        name, root = "lfw", tmp_path / "lfw"
        files = [f"Person_{k}_{x}/Person_{k}_{x}_{i:04d}.jpg" for k in range(2) for x in "AB" for i in (1, 2)]

    pairs, dropped = lfw_pairs(FakeLFW(), lines)
    assert dropped == 2  # Person_k_A_0003.jpg is not in the folder
    assert len(pairs) == 6 and pairs.folds == 2 and pairs.same.sum() == 2
    assert find_lfw_pairs(FakeLFW()) == path  # beside the image folder
    FakeLFW.files = []
    with pytest.raises(DataError, match="none of the 8 pairs"):
        lfw_pairs(FakeLFW(), lines)


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("1100\nA\t1\t2\n", "View 1"),
    ("ten 300\n", "expected a header 'folds pairs'"),
    ("0\t300\n", "out of range"),
    ("10\t300\nA\t1\t2\n", "announces 10 folds of 300"),
    (pairs_text().replace("Person_0_A\t1\t2\n", "Person_0_A\t1\n", 1), "line 2: expected 'name i j'"),
    (pairs_text().replace("Person_1_A\t1\tPerson_1_B\t2", "Person_1_A\t1\t2", 1), "line 9: expected 'name1 i name2 j'"),
    (pairs_text().replace("Person_0_A\t1\t3", "Person_0_A\t1\t-3", 1), "line 3: image number '-3'"),
    (pairs_text().replace("Person_0_A\t1\t3", "Person_0_A\t1\t³", 1), "line 3: image number"),
])
def test_a_broken_pairs_file_is_refused_with_its_name_and_line(tmp_path, text, message):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as error:
        read_lfw_pairs(path)
    assert str(path) in str(error.value)


def test_an_oversized_or_binary_pairs_file_is_refused(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_bytes(b"10 300\n" + b"x" * 6_000_000)
    with pytest.raises(DataError, match="far more than"):
        read_lfw_pairs(path)
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(DataError, match="not a UTF-8 text file"):
        read_lfw_pairs(path)


def test_lfw_runs_use_the_official_folds_and_train_on_nobody_in_them(verified, tmp_path, write_fake_image):
    images = tmp_path / "lfw"
    people = [f"Person_{k:02d}" for k in range(24)]
    for k, person in enumerate(people):
        for number in range(1, 4):
            write_fake_image(images / person / f"{person}_{number:04d}.jpg", brightness=10 * k + 5 * number)
    lines = ["2 2"]
    for fold in range(2):
        a, b = people[2 * fold], people[2 * fold + 1]
        lines += [f"{a} 1 2", f"{b} 2 3", f"{a} 1 {b} 1", f"{b} 3 {a} 2"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    run_path = shutil.copytree(verified[0] / "tiny-bvae", tmp_path / "runs" / "lfw-run")
    (run_path / FILE).unlink()
    config = json.loads((run_path / "config.json").read_text())
    config["data"].update(dataset="lfw", root=str(images))
    (run_path / "config.json").write_text(json.dumps(config))
    dataset = LFW(images, cache_dir=tmp_path / "decoded", progress=False)
    seen = []
    fit = verification_scores.LearnedComparison.fit
    with pytest.MonkeyPatch.context() as m:
        m.setattr(verification_scores.LearnedComparison, "fit",
                  lambda self, codes, persons, n: seen.append(np.unique(persons)) or fit(self, codes, persons, n))
        doc = verify_run(Run(run_path), replace(TINY, cnn_steps=0), dataset=dataset)
    p = doc["protocol"]
    assert p["pairs"] == "LFW pairs.txt (View 2)" and p["folds"] == 2 and p["dropped_pairs"] == 0
    assert p["per_fold"] == [{"same": 2, "different": 2}] * 2 and p["test_people"] == 4
    official = {dataset.identity_names.index(person) for person in people[:4]}
    assert seen and all(not official & set(s.tolist()) for s in seen)
    assert {e["person_a"] for e in doc["examples"]["latent/all"]["pairs"]} <= set(people[:4])  # names, not ids


# --- the command line --------------------------------------------------------------------------------------------

def test_verify_command_writes_verification_json(verified, tmp_path, monkeypatch, capsys):
    root = shutil.copytree(verified[0], tmp_path / "runs")  # its encodings are cached: only the plumbing runs
    monkeypatch.setattr(VerifySettings, "fast", classmethod(lambda cls, **changes: replace(TINY, **changes)))
    assert main(["--runs-dir", str(root), "verify", "tiny-bvae", "--fast", "--pairs", "20", "--cnn-steps", "0",
                 "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "[1/4] encoding held-out faces" in out and "learned (|z1−z2|, z1⊙z2)" in out and "wrote " in out
    doc = json.loads((root / "tiny-bvae" / FILE).read_text())
    assert doc["seed"] == 3 and doc["settings"]["pairs"] == 20 and doc["cnn"] is None and "cnn" not in doc["results"]
    assert doc["fast"] and doc["settings"]["heldout_images"] == TINY.heldout_images
    config = json.loads((root / "tiny-bvae" / "config.json").read_text())
    config["data"]["dataset"] = "dsprites"
    (root / "tiny-bvae" / "config.json").write_text(json.dumps(config))
    assert main(["--runs-dir", str(root), "verify", "tiny-bvae", "--fast"]) == 2
    assert "dSprites shows sprites, not people" in capsys.readouterr().err


# --- the Verification page ---------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def page(run: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=60)
    at.query_params["run"] = run
    return at.switch_page(str(ROOT / "pages" / "verification.py")).run()


def messages(at: AppTest) -> str:
    return " ".join(str(m.value) for m in [*at.error, *at.warning, *at.info, *at.success, *at.text])


def test_the_page_shows_scores_roc_curves_and_example_pairs(verified, tmp_path, monkeypatch):
    root = use_copy(verified[0], tmp_path / "runs", monkeypatch)
    sprites = shutil.copytree(root / "tiny-bvae", root / "sprites")
    (sprites / FILE).unlink()
    config = json.loads((sprites / "config.json").read_text())
    config["data"]["dataset"] = "dsprites"
    (sprites / "config.json").write_text(json.dumps(config))
    at = page("tiny-modvae")
    assert not at.exception, at.exception
    assert sorted(at.sidebar.selectbox(key="ver_picker").options) == ["tiny-bvae", "tiny-modvae"]
    assert "sprites: dSprites shows sprites, not people" in messages(at)
    table = at.dataframe[0].value
    assert set(zip(table["representation"], table["dims"])) == {
        ("latent codes", "all"), ("latent codes", "identity"), ("latent codes", "other"), ("E2E CNN", "all")}
    assert "encoder saw other images of the test people" in messages(at)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert figure["layout"]["title"]["text"].startswith("Mean ROC over the folds: learned")
    assert len(figure["data"]) == 4  # all, identity and other dims, and the CNN
    at.multiselect(key="ver_overlay").set_value(["tiny-bvae"]).run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(figure["data"]) == 5 and any(trace["name"].startswith("tiny-bvae") for trace in figure["data"])
    assert sorted(set(at.dataframe[1].value["run"])) == ["tiny-bvae", "tiny-modvae"]  # best score per run
    assert at.get("image"), "example pairs are drawn"
    at.radio(key="ver_examples").set_value("cnn/all").run()
    assert not at.exception, at.exception
    assert any("identity_distance" in df.value.columns for df in at.dataframe[2:])


def test_a_run_without_results_offers_a_background_verification(verified, tmp_path, monkeypatch):
    root = use_copy(verified[0], tmp_path / "runs", monkeypatch)
    monkeypatch.setenv("LATENTLAB_CACHE", str(tmp_path / "cache"))  # the background process's CNN cache
    (root / "tiny-bvae" / FILE).unlink()
    run = Run(root / "tiny-bvae")
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert "no verification.json yet" in messages(at) and "python -m core verify tiny-bvae --fast" in messages(at)
    try:
        at.button(key="ver_start").click().run()
        assert not at.exception, at.exception
        assert "Started verifying tiny-bvae" in messages(at) and verification_running(run)
        with pytest.raises(RunError, match="already running"):
            start_verification(run)
    finally:
        record = json.loads((run.path / STATUS).read_text())
        assert record["command"][-3:] == ["verify", "tiny-bvae", "--fast"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record["pid"], signal.SIGTERM)
        for _ in range(100):
            if not verification_running(run):
                break
            time.sleep(0.1)
    assert not verification_running(run)


def test_the_stage_of_a_background_verification_is_read_from_its_log(tmp_path):
    run = Run(tmp_path / "r")
    run.path.mkdir()
    assert verification_stage(run) is None and not verification_running(run)
    (run.path / LOG).write_text("[1/4] encoding held-out faces ...\n[2/4] pairs and training codes ...\nnoise\n")
    assert verification_stage(run) == (2, 4, "pairs and training codes")
    (run.path / STATUS).write_text('{"pid": 1}')  # a record we did not write (no start time): not running
    assert not verification_running(run)
