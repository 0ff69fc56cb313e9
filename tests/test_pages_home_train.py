"""Home and Train pages through Streamlit's AppTest, on a copy of the tiny runs (and on the demo runs)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.runs import jobs
from core.runs.folder import Run

ROOT = Path(__file__).resolve().parents[1]
DEMOS = sorted((ROOT / "checkpoints").glob("demo-*"))


@pytest.fixture
def runs(tiny_runs_dir, tmp_path, monkeypatch):
    root = tmp_path / "runs"
    shutil.copytree(tiny_runs_dir, root)
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(root))
    yield root
    for run in map(Run, root.iterdir()):  # a job a test started must not outlive it
        if run.status().get("state") == "running":
            jobs.cancel(run)
            wait_until_stopped(run)


def wait_until_stopped(run: Run, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while (state := jobs.progress(run).state) == "running" and time.time() < deadline:
        time.sleep(0.2)
    return state


def home() -> AppTest:
    return AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=60).run()


def train_page() -> AppTest:
    # the page alone: it links to no other page, so it does not need the others to exist
    return AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=60).run()


def figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def table_runs(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["run"])


# --- Home -------------------------------------------------------------------------------------------

def test_home_lists_runs_links_pages_and_reports_broken_folders(runs):
    (runs / "garbled").mkdir()
    (runs / "garbled" / "config.json").write_text("{not json")
    (runs / "empty").mkdir()
    at = home()
    assert not at.exception
    assert at.title[0].value == "LatentLab"
    assert sorted(table_runs(at)) == ["tiny-bvae", "tiny-modvae"]
    row = at.dataframe[0].value.set_index("run").loc["tiny-bvae"]
    assert (row["model"], row["β"], row["data"], row["step"], row["status"]) == ("β-VAE", 2.0, "synthfaces",
                                                                                  "30 / 30", "finished")
    assert float(row["val −ELBO"].replace(",", "")) > 0
    problems = " ".join(w.value for w in at.warning)
    assert "garbled" in problems and "config" in problems and "empty" in problems
    # every page but Home itself is linked, with what it is for
    assert len(at.get("page_link")) == (ROOT / "dashboard" / "Home.py").read_text().count("st.Page(") - 1


def test_home_shows_a_run_copied_in_without_a_restart(runs):
    at = home()
    assert "copied" not in table_runs(at)
    shutil.copytree(runs / "tiny-bvae", runs / "copied")
    at.run()
    assert "copied" in table_runs(at)


def test_home_shows_when_a_run_was_trained_not_when_its_files_were_copied(runs):
    trained = datetime(2026, 11, 23, 3, 10)
    status = json.loads((runs / "tiny-bvae" / "status.json").read_text())
    (runs / "tiny-bvae" / "status.json").write_text(json.dumps({**status, "updated": trained.timestamp()}))
    (runs / "tiny-modvae" / "status.json").unlink()  # a folder copied without its status: no time to show
    at = home()  # every file was just written, as a git clone writes the shipped demo runs
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["tiny-bvae", "trained"] == trained
    assert pd.isna(table.loc["tiny-modvae", "trained"])
    assert table_runs(at) == ["tiny-bvae", "tiny-modvae"]  # most recently trained first, never-recorded last


def test_home_demo_button_launches_a_job_and_opens_it_on_train(runs):
    at = home()
    at.button(key="home_demo").click().run()
    assert not at.exception
    started = [p.name for p in runs.iterdir() if p.name.startswith("quick-demo-")]
    assert len(started) == 1
    config = Run(runs / started[0]).config
    assert (config.model, config.data.dataset, config.train.steps) == ("beta-vae", "synthfaces", 500)
    assert at.title[0].value == "Train" and at.selectbox(key="tr_watch").value == started[0]


# --- Train ------------------------------------------------------------------------------------------

def test_train_page_overlays_runs_and_switches_to_a_log_axis(runs):
    at = train_page()
    assert not at.exception
    watched = at.selectbox(key="tr_watch").value
    curves = figures(at)[0]
    assert {trace["name"] for trace in curves["data"]} == {f"{watched} (β=2)"}
    at.multiselect(key="tr_compare").set_value(["tiny-bvae", "tiny-modvae"]).run()
    curves = figures(at)[0]
    assert {trace["name"] for trace in curves["data"]} == {"tiny-bvae (β=2)", "tiny-modvae (β=2)"}
    assert len(curves["data"]) == 6  # total, reconstruction, KL for each run
    assert curves["layout"]["yaxis"].get("type") != "log"
    at.checkbox(key="tr_log").check().run()
    assert figures(at)[0]["layout"]["yaxis"]["type"] == "log"
    heat = figures(at)[-1]["data"][0]
    at.selectbox(key="tr_heat").set_value("tiny-modvae").run()
    assert len(heat["y"]) in (8, 12) and len(figures(at)[-1]["data"][0]["y"]) == 12  # one row per latent dim


def test_the_train_form_starts_from_the_data_sets_recipe_and_none_restores_the_family_defaults(runs):
    at = train_page()
    assert at.selectbox(key="tr_recipe").value == "auto"
    assert at.radio(key="tr_model").value == "VAE" and at.number_input(key="tr_train.steps").value == 6000
    assert "loss.reconstruction = calibrated" in " ".join(c.value for c in at.caption)
    at.selectbox(key="tr_recipe").set_value("none").run()
    assert at.radio(key="tr_model").value == "β-VAE" and at.number_input(key="tr_train.steps").value == 2000
    at.selectbox(key="tr_recipe").set_value("faces").run()
    assert "loss.reconstruction = ssim-l1" in " ".join(c.value for c in at.caption) and not at.exception
    assert at.number_input(key="tr_train.steps").value == 2000
    at.selectbox(key="tr_recipe").set_value("auto").run()
    at.selectbox(key="tr_data.dataset").set_value("celeba").run()  # auto on CelebA: the faces recipe
    assert at.number_input(key="tr_train.steps").value == 2000 and at.radio(key="tr_model").value == "VAE"
    assert "loss.reconstruction = ssim-l1" in " ".join(c.value for c in at.caption)


@pytest.mark.parametrize("field, value, message", [
    ("tr_name", "a/b", "run name"),
    ("tr_name", "tiny-bvae", "already exists"),
    ("tr_train.lr", 0.0, "lr"),
    ("tr_data.root", "/nowhere/celeba", "does not exist"),
])
def test_train_form_refuses_bad_input_before_anything_starts(runs, field, value, message):
    at = train_page()
    if field == "tr_data.root":
        at.selectbox(key="tr_data.dataset").set_value("celeba").run()
        at.text_input(key="tr_data.root").input(value)
    elif field == "tr_train.lr":
        at.number_input(key="tr_train.lr").set_value(value)
    else:
        at.text_input(key="tr_name").input(value)
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert sorted(p.name for p in runs.iterdir()) == ["tiny-bvae", "tiny-modvae"]


def test_train_form_launches_a_job_that_the_page_watches_and_cancels(runs):
    at = train_page()
    at.text_input(key="tr_name").input("ui-job")
    at.number_input(key="tr_train.batch_size").set_value(8)
    at.button(key="tr_start").click().run()
    assert not at.exception
    assert "ui-job" in at.success[0].value
    assert at.code[0].value.startswith("python -m core train --name ui-job")  # the command that recreates it
    assert at.selectbox(key="tr_watch").value == "ui-job"
    assert {m.label: m.value for m in at.metric}["State"] == "running"
    at.run()  # the job panel redraws itself: it says "Started" for as long as the job runs, not once per click
    assert "Started **ui-job**" in at.success[0].value
    at.button(key="tr_cancel").click().run()
    assert not at.exception and "Stopping ui-job" in at.info[0].value
    assert not [s for s in at.success if "Started" in s.value]  # cancelled: no longer "Started"
    assert not [c for c in at.code if c.value.startswith("python -m core train")]
    assert wait_until_stopped(Run(runs / "ui-job")) != "running"
    at.run()
    assert {m.label: m.value for m in at.metric}["State"] != "running"
    assert at.button(key="tr_resume")  # a stopped run offers to resume


@pytest.mark.skipif(not DEMOS, reason="no demo runs in checkpoints/")
def test_both_pages_render_the_demo_runs(tmp_path, monkeypatch):
    for demo in DEMOS:
        shutil.copytree(demo, tmp_path / demo.name)
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(tmp_path))
    at = home()
    assert not at.exception and sorted(table_runs(at)) == [d.name for d in DEMOS]
    at = train_page()
    assert not at.exception
    assert len(figures(at)[-1]["data"][0]["y"]) == 64  # the KL heatmap has a row per latent dim


def test_regulariser_terms_are_plotted_for_families_that_log_them():
    from dashboard.charts import regulariser_curves

    plain = {"a": [{"step": 10, "loss": 1.0, "recon": 0.5, "kl": 0.5}]}
    assert regulariser_curves(plain) is None
    tcvae = {"b": [{"step": 10, "loss": 1.0, "mi": 0.1, "tc": 0.2, "dim_kl": 0.3},
                   {"step": 20, "loss": 0.9, "mi": 0.1, "tc": 0.1, "dim_kl": 0.3}]}
    fig = regulariser_curves(tcvae).to_dict()
    assert [a["text"] for a in fig["layout"]["annotations"]] == ["mi", "tc", "dim kl"]
    assert [t["y"] for t in fig["data"]][1] == [0.2, 0.1]


def test_step_axes_tick_whole_steps_only():
    from dashboard.charts import kl_heatmap, train_curves, val_curves

    def records(steps):
        return [{"step": s, "loss": 1.0, "recon": 0.5, "kl": 0.5, "neg_elbo": 1.0, "kl_dims": [0.1, 0.2]}
                for s in steps]

    for steps in ([10], [10, 15], [1, 2, 3]):  # the first records of a run: Plotly alone would tick at 9.5, 10.5 ...
        curves = train_curves({"a": records(steps)}).to_dict()["layout"]
        assert [curves[axis].get("dtick") for axis in ("xaxis", "xaxis2", "xaxis3")] == [1, 1, 1]
        assert val_curves({"a": records(steps)}).to_dict()["layout"]["xaxis"]["dtick"] == 1
        assert kl_heatmap(records(steps)).to_dict()["layout"]["xaxis"]["dtick"] == 1
    later = records(range(10, 210, 10))  # Plotly's own ticks are whole numbers over 190 steps
    assert "dtick" not in train_curves({"a": later}).to_dict()["layout"]["xaxis"]
    assert "dtick" not in kl_heatmap(later).to_dict()["layout"]["xaxis"]


def test_home_lists_the_runs_without_loading_torch_then_preloads_the_other_pages(tiny_runs_dir):
    """Torch was most of Home's first render; configs, run folders and the run table must not need it. Once Home is
    drawn, a background thread loads what the other pages import."""
    script = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        import dashboard.startup as startup
        startup.PAGE_MODULES = ()  # Home alone first
        at = AppTest.from_file({str(ROOT / 'dashboard' / 'Home.py')!r}, default_timeout=60).run()
        assert not at.exception, at.exception
        print(sorted(at.dataframe[0].value["run"]), "torch" in sys.modules)
        startup.PAGE_MODULES = ("dashboard.common",)
        startup.preload_pages.clear()
        at.run()
        startup.preload_pages().join(timeout=60)
        print("dashboard.common" in sys.modules and "torch" in sys.modules)
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LATENTLAB_CHECKPOINTS": str(tiny_runs_dir)})
    assert done.returncode == 0, done.stderr[-2000:]
    home, preloaded = done.stdout.strip().splitlines()[-2:]
    runs, torch_loaded = home.rsplit(" ", 1)
    assert "tiny-bvae" in runs and torch_loaded == "False" and preloaded == "True"
