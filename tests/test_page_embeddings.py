"""The Embeddings page on the tiny runs: a PCA map for any latent size, colour-by changes the figure, a UMAP
request shows its background job's progress, and a run without its data says what is missing."""
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.explore import projection, umap_job
from core.explore.encode import HELD_OUT, encodings_path
from core.runs.folder import Run
from tests.tiny import encoded_copy, use_copy
from tests.test_embed import SLEEPING_WORKER, wait_for

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "pages" / "embeddings.py"
SPLIT, LIMIT = HELD_OUT  # the page's default subset


@pytest.fixture(scope="module")
def encoded_runs(tiny_runs_dir, tmp_path_factory):
    """The tiny runs with the page's subset already encoded, so each test's copy starts warm."""
    return encoded_copy(tiny_runs_dir, tmp_path_factory.mktemp("embedding-runs") / "runs", SPLIT, LIMIT)


@pytest.fixture
def runs(encoded_runs, tmp_path, monkeypatch):
    return use_copy(encoded_runs, tmp_path / "runs", monkeypatch)


def page(run: str) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["run"] = run
    return at.run()


def figure(at: AppTest) -> dict:
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def messages(at: AppTest) -> str:
    return " ".join(str(m.value) for m in [*at.error, *at.warning, *at.info, *at.success])


def widget(elements, label: str):
    return next(e for e in elements if e.label == label)


@pytest.mark.parametrize("name, dims", [("tiny-bvae", 8), ("tiny-modvae", 12)])
def test_pca_map_of_any_latent_size_is_one_webgl_trace(runs, name, dims):
    at = page(name)
    assert not at.exception, at.exception
    (trace,) = figure(at)["data"]
    assert trace["type"] == "scattergl" and trace["marker"]["colorbar"]["title"]["text"] == "Smiling"
    assert any(f"PCA of 2,000 test images × {dims} latent dims" in c.value for c in at.caption)


def test_colour_by_changes_the_figure(runs):
    at = page("tiny-bvae")
    before = figure(at)["data"][0]["marker"]
    at = widget(at.selectbox, "Colour by").set_value(("factor", 2)).run()  # smile, eyewear, hair_colour, ...
    factor = figure(at)["data"][0]["marker"]
    assert factor["colorbar"]["ticktext"] == ["black", "brown", "blond", "grey"] and factor != before
    at = widget(at.selectbox, "Colour by").set_value(("dim", 3)).run()
    dim = figure(at)["data"][0]["marker"]
    assert dim["colorscale"] != factor["colorscale"] and dim["colorbar"]["title"]["text"] == "z3"
    assert not at.exception, at.exception


def test_umap_request_shows_the_background_job_and_does_not_start_it_twice(runs, monkeypatch):
    monkeypatch.setattr(umap_job, "WORKER_COMMAND", SLEEPING_WORKER)
    at = page("tiny-bvae")
    at = widget(at.radio, "Map").set_value("UMAP").run()
    run = Run(runs / "tiny-bvae")
    marker = umap_job.embedding_path(run, SPLIT, LIMIT, projection.UmapParams()).with_suffix(".job")
    assert "No UMAP of these 2,000 points" in messages(at) and not marker.exists()  # only on request
    at = widget(at.button, "Compute UMAP").click().run()
    pid = json.loads(marker.read_text())["pid"]
    try:
        assert not at.exception, at.exception
        progress = at.get("progress")
        assert progress and "Computing UMAP of 2,000 points" in progress[0].proto.text
        assert len(at.get("plotly_chart")) == 1  # PCA meanwhile
        at.run()  # a rerun (or a reload) finds the running job
        assert json.loads(marker.read_text())["pid"] == pid and not at.exception
    finally:
        os.kill(pid, signal.SIGKILL)


def test_a_run_without_its_data_says_so_and_maps_cached_encodings(runs):
    run = Run(runs / "tiny-bvae")
    cached = encodings_path(run, SPLIT, LIMIT)
    stash = cached.rename(cached.with_suffix(".stashed"))
    config = json.loads((run.path / "config.json").read_text())
    config["data"].update(dataset="celeba", root=str(runs / "no-such-celeba"))
    (run.path / "config.json").write_text(json.dumps(config))

    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert "no cached encodings" in messages(at) and not at.get("plotly_chart")

    stash.rename(cached.with_name(f"celeba-{SPLIT}-{LIMIT}.npz"))  # encodings made where the data was
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert "face view of selected points" in messages(at) and len(at.get("plotly_chart")) == 1
    assert widget(at.selectbox, "Cached encodings").value == (SPLIT, LIMIT)


def test_a_corrupt_labels_file_is_reported_and_the_map_still_drawn(runs):
    (runs / "tiny-bvae" / "labels.json").write_text("{not json")
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert "labels.json" in messages(at) and len(at.get("plotly_chart")) == 1


def test_a_failed_umap_shows_its_error_and_offers_to_try_again(runs, monkeypatch):
    failing = [sys.executable, "-c", "print('ValueError: planted failure')  # core.explore.umap_job"]
    monkeypatch.setattr(umap_job, "WORKER_COMMAND", failing)
    at = widget(page("tiny-bvae").radio, "Map").set_value("UMAP").run()
    at = widget(at.button, "Compute UMAP").click().run()
    run = Run(runs / "tiny-bvae")
    wait_for(lambda: umap_job.umap_status(run, SPLIT, LIMIT, projection.UmapParams()).state == "failed")
    at.run()
    assert not at.exception, at.exception
    assert "UMAP failed: ValueError: planted failure" in messages(at)
    assert widget(at.button, "Try again") and len(at.get("plotly_chart")) == 1  # PCA still there


def test_a_cached_umap_is_drawn_at_once(runs, monkeypatch):
    run = Run(runs / "tiny-bvae")
    monkeypatch.setattr(umap_job, "umap_2d", lambda mu, *args, **kwargs: projection.pca_2d(mu)[0])
    umap_job.compute_umap(run, SPLIT, LIMIT, projection.UmapParams())
    at = widget(page("tiny-bvae").radio, "Map").set_value("UMAP").run()
    assert not at.exception, at.exception
    assert figure(at)["layout"]["xaxis"]["title"]["text"] == "UMAP 1" and not at.get("progress")
    assert any("UMAP of 2,000 test images" in c.value for c in at.caption)
