"""core.explore.umap_job: PCA and UMAP maps, the UMAP cache in the run folder and its background worker, colourings,
selections and the Embedding Projector export."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from core.explore import projection, umap_job
from core.data import DataError
from core.explore.projection import EmbedError, UmapParams, pca_2d, umap_2d
from core.explore.umap_job import (cached_encodings, compute_umap, embedding_path, load_encodings, load_umap,
                                   start_umap, umap_status)
from core.explore.colouring import (colour_options, colouring, projector_tsv, selected_rows, selection_summary,
                                    thumbnail_rows)
from core.explore.encode import encodings_path
from core.runs.folder import Run

SPLIT, LIMIT = "test", 200
PARAMS = UmapParams(n_neighbors=10, min_dist=0.2, seed=3)
# A stand-in worker: the real entry point and files, with PCA for UMAP (one real UMAP per test session is enough).
PCA_WORKER = [sys.executable, "-c", "import sys, time; time.sleep(1); import core.explore.umap_job as e; "
              "from core.explore.projection import pca_2d; e.umap_2d = lambda mu, *a, **k: pca_2d(mu)[0]; "
              "e.main(sys.argv[1:])"]
# A worker that never finishes (its command line names core.explore.umap_job, which is how a live worker is recognised).
SLEEPING_WORKER = [sys.executable, "-c", "import time; time.sleep(120)  # stands in for core.explore.umap_job"]


@pytest.fixture
def run(tiny_runs_dir, tmp_path):
    root = shutil.copytree(tiny_runs_dir, tmp_path / "runs")
    return Run(root / "tiny-bvae")


def offline(run: Run) -> Run:
    """Point the run at a CelebA folder that is not on this machine (its data set is 'absent')."""
    config = json.loads((run.path / "config.json").read_text())
    config["data"].update(dataset="celeba", root=str(run.path / "no-such-celeba"))
    (run.path / "config.json").write_text(json.dumps(config))
    return run


def wait_for(predicate, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_pca_recovers_the_planted_main_axis_with_a_stable_sign():
    rng = np.random.default_rng(0)
    t, u = rng.normal(0, 5, 500), rng.normal(size=10)
    u /= np.linalg.norm(u)
    mu = t[:, None] * u + rng.normal(0, 0.3, (500, 10)) + 2.0
    coords, explained = pca_2d(mu)
    assert coords.shape == (500, 2) and coords.dtype == np.float32
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.99
    assert explained[0] > 0.9 > explained[1] > 0
    flipped, _ = pca_2d(-mu)  # same cloud mirrored: the fixed sign convention keeps the picture's orientation rule
    np.testing.assert_allclose(np.abs(flipped), np.abs(coords), atol=1e-3)
    perm = rng.permutation(500)
    np.testing.assert_allclose(pca_2d(mu[perm])[0], coords[perm], atol=1e-3)
    one_dim, explained_1 = pca_2d(mu[:, :1])  # any latent size, even 1
    assert (one_dim[:, 1] == 0).all() and explained_1[0] == pytest.approx(1.0)
    assert pca_2d(mu[:1])[0].shape == (1, 2)


def test_umap_separates_two_clusters_and_reports_layout_progress():
    # The one real UMAP of the suite: its numba code is compiled once per machine into $LATENTLAB_CACHE/numba (about
    # half a minute), and loaded from there by later sessions.
    rng = np.random.default_rng(0)
    mu = np.concatenate([rng.normal(0, 1, (150, 16)), rng.normal(0, 1, (150, 16)) + 6.0])
    truth = np.repeat([0, 1], 150)
    seen = []
    coords = umap_2d(mu, n_neighbors=15, min_dist=0.1, seed=0, progress=lambda s, f: seen.append((s, f)))
    assert coords.shape == (300, 2) and np.isfinite(coords).all()
    centres = np.stack([coords[truth == k].mean(axis=0) for k in (0, 1)])
    nearest = np.linalg.norm(coords[:, None] - centres[None], axis=2).argmin(axis=1)
    assert (nearest == truth).all()
    spread = max(np.linalg.norm(coords[truth == k] - centres[k], axis=1).max() for k in (0, 1))
    assert np.linalg.norm(centres[0] - centres[1]) > 2 * spread
    fractions = [f for s, f in seen if s == "layout epochs"]
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    import umap.umap_  # what umap-learn leaves uncached is cached in LatentLab's folder, and the marker says so

    cache = projection.numba_cache_dir()
    assert umap.umap_.smooth_knn_dist.stats.cache_path.startswith(str(cache)) and projection.umap_is_warm()
    assert list(cache.rglob("umap_.smooth_knn_dist-*.nbi"))


def test_bad_umap_input_is_refused_with_the_fix():
    with pytest.raises(EmbedError, match="n_neighbors is 1"):
        UmapParams(n_neighbors=1)
    with pytest.raises(EmbedError, match="min_dist is 2"):
        UmapParams(min_dist=2.0)
    with pytest.raises(EmbedError, match="at least 4 points"):
        umap_2d(np.zeros((3, 8)))


def test_umap_is_cached_in_the_run_folder_reused_and_invalidated_by_a_newer_checkpoint(run, monkeypatch):
    calls = []

    def fake_umap(mu, n_neighbors, min_dist, seed, progress=None):
        calls.append((len(mu), n_neighbors, min_dist, seed))
        return pca_2d(mu)[0]

    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started although the result is cached")

    monkeypatch.setattr(umap_job, "umap_2d", fake_umap)
    finished = subprocess.Popen(["true"])
    finished.wait()  # the marker of a worker that delivered (as if its clean-up had not happened)
    marker = embedding_path(run, SPLIT, LIMIT, PARAMS).with_suffix(".job")
    marker.parent.mkdir()
    marker.write_text(json.dumps({"pid": finished.pid, "started": time.time() - 1}))
    path = compute_umap(run, SPLIT, LIMIT, PARAMS)
    assert path == embedding_path(run, SPLIT, LIMIT, PARAMS) and path.parent == run.path / "embeddings"
    assert calls == [(LIMIT, 10, 0.2, 3)]
    index = load_encodings(run, SPLIT, LIMIT)["index"]

    monkeypatch.setattr(umap_job.process, "start", no_worker)
    job = start_umap(run, SPLIT, LIMIT, PARAMS, index)
    assert job.state == "done" and job.coords.shape == (LIMIT, 2) and len(calls) == 1
    assert embedding_path(run, SPLIT, LIMIT, UmapParams(11, 0.2, 3)) != path  # other parameters, other file
    assert load_umap(run, SPLIT, LIMIT, PARAMS, index[::-1]) is None  # maps other images: not used

    stamp = path.stat().st_mtime_ns + 10**9
    os.utime(run.checkpoint_path, ns=(stamp, stamp))  # training went on
    # Stale, and not started since: not "failed", although the old marker names a dead worker.
    assert load_umap(run, SPLIT, LIMIT, PARAMS) is None and umap_status(run, SPLIT, LIMIT, PARAMS) is None


def test_background_job_starts_once_reports_progress_and_delivers(run, monkeypatch):
    monkeypatch.setattr(umap_job, "WORKER_COMMAND", PCA_WORKER)
    mu = load_encodings(run, SPLIT, LIMIT)["mu"]  # the page encodes first; the worker reads the cached file
    assert umap_status(run, SPLIT, LIMIT, PARAMS) is None  # never started
    first = start_umap(run, SPLIT, LIMIT, PARAMS)
    assert first.state == "running" and first.pid
    again = umap_status(run, SPLIT, LIMIT, PARAMS)  # a reload, or another browser session
    forced = start_umap(run, SPLIT, LIMIT, PARAMS)  # a second click
    assert again.state == forced.state == "running" and again.pid == forced.pid == first.pid
    assert again.stage == "starting" and again.elapsed >= 0
    done = wait_for(lambda: (job := umap_status(run, SPLIT, LIMIT, PARAMS)).state == "done" and job)
    np.testing.assert_allclose(done.coords, pca_2d(mu)[0], atol=1e-5)
    assert start_umap(run, SPLIT, LIMIT, PARAMS).state == "done"
    assert [p.name for p in (run.path / "embeddings").iterdir() if not p.name.startswith(".")] == \
        [embedding_path(run, SPLIT, LIMIT, PARAMS).name]  # the worker cleaned up after itself


def test_a_failed_job_shows_its_error_and_can_be_started_again(run, monkeypatch):
    offline(run)  # the real worker fails: no data and no cached encodings
    first = start_umap(run, SPLIT, LIMIT, PARAMS)
    failed = wait_for(lambda: (job := umap_status(run, SPLIT, LIMIT, PARAMS)).state == "failed" and job)
    assert failed.error.startswith("DataError: ") and "no cached encodings" in failed.error

    monkeypatch.setattr(umap_job, "WORKER_COMMAND", SLEEPING_WORKER)
    retry = start_umap(run, SPLIT, LIMIT, PARAMS)
    assert retry.pid != first.pid and umap_status(run, SPLIT, LIMIT, PARAMS).state == "running"
    os.kill(retry.pid, signal.SIGKILL)  # a worker killed without a word
    killed = wait_for(lambda: (job := umap_status(run, SPLIT, LIMIT, PARAMS)).state == "failed" and job)
    assert "stopped without a result" in killed.error


def test_a_forged_or_foreign_job_record_is_judged_without_signalling_anyone(run, monkeypatch):
    sleeper = subprocess.Popen(["sleep", "60"])  # a live process that is no worker of ours
    try:
        marker = embedding_path(run, SPLIT, LIMIT, PARAMS).with_suffix(".job")
        marker.parent.mkdir()
        marker.write_text(json.dumps({"pid": sleeper.pid, "started": "yesterday"}))
        forged = umap_status(run, SPLIT, LIMIT, PARAMS)
        assert forged.state == "failed" and "stopped without a result" in forged.error  # not "running"
        monkeypatch.setattr(umap_job, "WORKER_COMMAND", SLEEPING_WORKER)
        retry = start_umap(run, SPLIT, LIMIT, PARAMS)  # so it is started again, and the sleeper is left alone
        assert retry.state == "running" and retry.pid != sleeper.pid and sleeper.poll() is None
        assert umap_status(run, SPLIT, LIMIT, PARAMS).pid == retry.pid
        os.kill(retry.pid, signal.SIGKILL)
        wait_for(lambda: umap_status(run, SPLIT, LIMIT, PARAMS).state == "failed")

        # recorded on another machine: it cannot be checked from here, so it counts as running there
        marker.write_text(json.dumps({"pid": sleeper.pid, "pid_started": 1, "host": "other.invalid",
                                      "started": time.time()}))
        assert umap_status(run, SPLIT, LIMIT, PARAMS).state == "running"
        assert start_umap(run, SPLIT, LIMIT, PARAMS).pid == sleeper.pid  # not started twice
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_run_without_its_data_maps_its_cached_encodings(run):
    fresh = load_encodings(run, SPLIT, LIMIT)
    path = encodings_path(run, SPLIT, LIMIT)
    offline(run)
    with pytest.raises(DataError, match="no cached encodings"):
        load_encodings(run, "val", 100)
    renamed = path.with_name(path.name.replace("synthfaces", "celeba"))
    path.rename(renamed)
    later = renamed.stat().st_mtime_ns + 10**9
    os.utime(run.checkpoint_path, ns=(later, later))  # even older than the checkpoint, they beat nothing
    assert cached_encodings(run) == [(SPLIT, LIMIT)]
    np.testing.assert_array_equal(load_encodings(run, SPLIT, LIMIT)["mu"], fresh["mu"])


def encodings_like(n: int = 60, dims: int = 5) -> dict:
    rng = np.random.default_rng(1)
    attributes = rng.random((n, 3)) < 0.3
    attributes[:10, 2] = True  # the first ten all have it
    return {"mu": rng.normal(size=(n, dims)).astype(np.float32), "index": np.arange(100, 100 + n),
            "attributes": attributes, "attribute_names": np.array(["Smiling", "Bad\tName", "Two\nLines"]),
            "factors": np.stack([np.arange(n) % 5, np.arange(n) % 40], axis=1),
            "factor_names": np.array(["smile", "orientation"])}


def test_colourings_for_attributes_factors_and_dims():
    enc = encodings_like()
    assert len(colour_options(enc)) == 1 + 3 + 2 + 5
    binary = colouring(enc, ("attribute", 0))
    on = int(enc["attributes"][:, 0].sum())
    assert binary.kind == "levels" and binary.ticks == (f"not Smiling ({60 - on})", f"Smiling ({on})")
    assert set(binary.values) == {0, 1}
    smile = colouring(enc, ("factor", 0), dataset_name="synthfaces")
    assert smile.kind == "levels" and smile.ticks[0] == "frown" and len(smile.ticks) == 5
    many = colouring(enc, ("factor", 1))  # 40 levels: a continuous scale, not 40 colours
    assert many.kind == "continuous" and not many.diverging
    dim = colouring(enc, ("dim", 3), dim_label=lambda d: f"z{d} · hair")
    assert dim.kind == "continuous" and dim.diverging and dim.title == "z3 · hair"
    np.testing.assert_array_equal(dim.values, enc["mu"][:, 3])
    assert colouring(enc, ("none", 0)).values is None


def test_selection_rows_thumbnails_and_what_sets_them_apart():
    order = np.array([4, 2, 0, 3, 1])
    np.testing.assert_array_equal(selected_rows(order, [0, 1, 7]), [2, 4])  # 7: from an older, larger map
    picked = thumbnail_rows(range(0, 1000, 2))
    assert len(picked) == 48 and picked[0] == 0 and picked[-1] == 998 and (np.diff(picked) > 0).all()
    np.testing.assert_array_equal(thumbnail_rows([5, 3, 3]), [3, 5])
    enc = encodings_like()
    name, inside, overall = selection_summary(enc, np.arange(10))[0]
    assert name == "Two\nLines" and inside == 1.0 and overall < 0.6
    assert selection_summary(enc, []) == []


def test_projector_tsv_parses_back():
    enc = encodings_like()
    vectors, metadata = projector_tsv(enc["mu"], enc["index"], list(enc["attribute_names"]), enc["attributes"],
                                      list(enc["factor_names"]), enc["factors"], dataset_name="synthfaces")
    rows = vectors.decode().splitlines()
    assert len(rows) == 60 and all(len(r.split("\t")) == 5 for r in rows)
    np.testing.assert_allclose(np.array([r.split("\t") for r in rows], float), enc["mu"], rtol=1e-5, atol=1e-6)
    lines = metadata.decode().split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == 61  # header + one row per point, nothing split by a newline
    header, *body = [line.split("\t") for line in lines[:-1]]
    assert header == ["index", "Smiling", "Bad Name", "Two Lines", "smile", "orientation"]
    assert all(len(row) == len(header) for row in body)
    assert body[0][:4] == ["100", *(str(int(v)) for v in enc["attributes"][0])]
    assert [row[4] for row in body[:5]] == ["frown", "slight frown", "neutral", "smile", "broad smile"]
    assert body[39][5] == "39"  # a factor without level names keeps its level number
    no_factors = projector_tsv(enc["mu"], enc["index"], [], np.zeros((60, 0), bool))[1].decode()
    assert no_factors.splitlines()[0] == "index" and len(no_factors.splitlines()) == 61
