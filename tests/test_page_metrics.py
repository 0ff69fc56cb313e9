"""The Metrics page and its background evaluation: no eval.json, a SynthFaces run's scores and charts, a
real-data run without disentanglement metrics, starting an evaluation (once), and missing data."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.data import DataError
from core.metrics.background import STATUS, evaluation_progress, evaluation_running, start_evaluation
from core.metrics.evaluate import FILE, evaluate_run
from core.metrics.registry import METRICS
from core.runs import process
from core.runs.folder import Run, RunError
from tests.tiny import evaluated_run, tiny_config, use_copy

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["mig.num_train=300", "reconstruction.num_images=32", "probes.num_train=300", "probes.num_test=200",
         "edits.classifier_steps=30", "edits.classifier_test_images=200", "edits.num_faces=8", "edits.num_train=300",
         "edits.alphas=0,1,2", "edits.identity_steps=20"]


@pytest.fixture(scope="module")
def evaluated(tiny_runs_dir, tmp_path_factory):
    """tiny-bvae with a small eval.json; tiny-modvae posing as a CelebA run (its ground-truth metrics skipped)."""
    root = shutil.copytree(tiny_runs_dir, tmp_path_factory.mktemp("metrics") / "runs")
    doc = evaluate_run(Run(root / "tiny-bvae"), ["mig", "reconstruction", "probes", "edits"], fast=True,
                       overrides=SMALL)
    real = json.loads(json.dumps(doc))
    real.update(run="tiny-modvae", dataset="celeba", step=Run(root / "tiny-modvae").checkpoint_step())
    real["results"]["mig"] = {"skipped": "celeba has no ground-truth factors", "step": real["step"]}
    (root / "tiny-modvae" / FILE).write_text(json.dumps(real))
    return root


def page(run: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=60)
    at.query_params["run"] = run
    return at.switch_page(str(ROOT / "pages" / "metrics.py")).run()


def messages(at: AppTest) -> str:
    return " ".join(str(m.value) for m in [*at.error, *at.warning, *at.info, *at.success])


def table_with(at: AppTest, column: str):
    """The first table on the page that has `column`."""
    return next(d.value for d in at.dataframe if column in d.value)


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def kill(run: Run) -> None:
    """End the evaluation this test started (by its recorded pid) and wait until it is gone."""
    pid = json.loads((run.path / STATUS).read_text())["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        if not evaluation_running(run):
            return
        time.sleep(0.1)


def test_a_run_without_eval_json_says_how_to_make_one(tiny_runs_dir, tmp_path, monkeypatch):
    root = use_copy(tiny_runs_dir, tmp_path / "runs", monkeypatch)
    (root / "tiny-modvae" / FILE).write_text('{"format": "latentlab-eval-1", "res')  # a truncated file counts as none
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert "no eval.json yet" in messages(at) and "python -m core evaluate tiny-bvae --fast" in messages(at)
    assert "No run has an eval.json yet" in messages(at)
    assert at.button(key="met_start").label.startswith("Evaluate tiny-bvae")


def test_scores_charts_and_comparison_of_evaluated_runs(evaluated, tmp_path, monkeypatch):
    use_copy(evaluated, tmp_path / "runs", monkeypatch)
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    scores = at.dataframe[0].value
    assert list(scores["metric"]) == ["mig", "reconstruction", "probes", "edits"]
    judge = at.dataframe[1].value
    assert list(judge["attribute"]) == ["Smiling", "Eyeglasses", "Sunglasses"] and (judge["faces edited"] == 8).all()
    # a warning for exactly the attributes the tiny model cannot draw (judged present in < half its reconstructions)
    undrawn = {a for a, rate in zip(judge["attribute"], judge["judged present: reconstructions with it"]) if rate < 0.5}
    assert {a for a in judge["attribute"] if f"{a}: the judge finds it in" in messages(at)} == undrawn
    edits = json.loads((tmp_path / "runs" / "tiny-bvae" / FILE).read_text())["results"]["edits"]["attributes"]
    assert {a["name"] for a in edits if not a["judgeable"]} == undrawn
    assert sorted(table_with(at, "run")["run"]) == ["tiny-bvae", "tiny-modvae"]
    titles = chart_titles(at)
    assert any("held-out ROC-AUC" in t for t in titles) and any(t.endswith(": flip rate") for t in titles)
    # only tiny-bvae has a MIG (tiny-modvae poses as CelebA): its numbers, not a one-point chart
    assert not [t for t in titles if " vs " in t]
    assert sum("tiny-bvae only" in c.value for c in at.caption) == 2
    assert "renderer's exact ground truth" in " ".join(c.value for c in at.caption)

    at.radio(key="met_edit_measure").set_value("pixel change").run()
    assert any(t.endswith(": pixel change") for t in chart_titles(at))
    at.selectbox(key="met_beta_metric").set_value("reconstruction MSE/pixel").run()
    assert "β vs reconstruction MSE/pixel" in chart_titles(at)
    assert not at.exception


def test_the_leaderboard_groups_seeds_and_plots_reconstruction_against_disentanglement(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(root))
    grid = {("beta-vae", "dsprites"): (0.6, 0.8), ("vae", "dsprites"): (0.1, 0.3), ("vae", "synthfaces"): (0.5,)}
    for (model, dataset), scores in grid.items():
        for seed, dci in enumerate(scores):
            config = tiny_config(f"{model}-{dataset}-s{seed}", model=model, dataset=dataset, seed=seed)
            dci_result = {"disentanglement": dci, "completeness": 0.5, "informativeness_train": 1,
                          "informativeness_test": 1}
            evaluated_run(root, config, {"dci": dci_result, "reconstruction": {"mse_per_pixel": 0.01 * (seed + 1)}})
    at = page("vae-dsprites-s0")
    assert not at.exception, at.exception
    board = table_with(at, "hyper-parameters")
    assert list(board["family"]) == ["beta-vae", "vae"] and list(board["seeds"]) == [2, 2]
    assert list(board["DCI disentanglement"]) == pytest.approx([0.7, 0.2])
    assert list(board["DCI disentanglement ±"]) == pytest.approx([0.1 * 2**0.5] * 2)
    assert list(board["reconstruction MSE/pixel"]) == pytest.approx([0.015] * 2)
    assert "reconstruction MSE/pixel vs DCI disentanglement on dsprites: mean ± std over seeds" in chart_titles(at)

    at.toggle(key="met_lb_descending").set_value(False).run()
    assert list(table_with(at, "hyper-parameters")["family"]) == ["vae", "beta-vae"]
    at.selectbox(key="met_lb_dataset").set_value("synthfaces").run()
    assert not at.exception, at.exception
    assert list(table_with(at, "hyper-parameters")["seeds"]) == [1]
    assert "One group only has both reconstruction MSE/pixel and DCI disentanglement on synthfaces" in messages(at)
    assert not [t for t in chart_titles(at) if "over seeds" in t]


def test_one_evaluated_run_shows_its_numbers_in_their_units_and_no_one_point_chart(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(root))
    likelihood = {"iwae": -7435.3, "elbo": -7440.25, "importance_samples": 50, "iwae_bits_per_dim": 0.87}
    evaluated_run(root, tiny_config("only", dataset="synthfaces"),
                  {"mig": {"mig": 0.25}, "likelihood": likelihood, "reconstruction": {"mse_per_pixel": 0.012345}})
    at = page("only")
    assert not at.exception, at.exception
    scores = table_with(at, "metric")
    assert dict(zip(scores["metric"], scores["score"])) == {"mig": "0.250", "likelihood": "-7435.3 nats/image",
                                                            "reconstruction": "0.0123"}
    # the table of evaluated runs: the scores some run has, under short headings; the rest on demand
    runs = next(d for d in at.dataframe if "run" in d.value)
    assert list(runs.proto.column_order) == ["run", "model", "β", "step", "MIG", "IWAE (nats/image)",
                                             "reconstruction MSE/pixel"]
    at.toggle(key="met_all_columns").set_value(True).run()
    assert not list(next(d for d in at.dataframe if "run" in d.value).proto.column_order)  # every column
    # one run: β vs MIG and reconstruction vs MIG are numbers, not a point on axes scaled around it
    assert not [t for t in chart_titles(at) if " vs " in t]
    numbers = [(m.label, m.value) for m in at.metric]
    assert numbers == [("β", "2"), ("MIG", "0.250"), ("reconstruction MSE/pixel", "0.0123"), ("MIG", "0.250")]
    assert sum("only only: a chart needs two evaluated runs" in c.value for c in at.caption) == 2


def test_a_real_data_run_says_it_has_no_disentanglement_metrics(evaluated, tmp_path, monkeypatch):
    use_copy(evaluated, tmp_path / "runs", monkeypatch)
    at = page("tiny-modvae")
    assert not at.exception, at.exception
    assert "celeba has no ground-truth factors, so the disentanglement metrics (mig)" in messages(at)


def test_evaluate_starts_one_background_job_and_shows_its_progress(tiny_runs_dir, tmp_path, monkeypatch):
    root = use_copy(tiny_runs_dir, tmp_path / "runs", monkeypatch)
    run = Run(root / "tiny-bvae")
    at = page("tiny-bvae")
    try:
        at.button(key="met_start").click().run()
        assert not at.exception, at.exception
        assert "Started evaluating tiny-bvae" in messages(at)
        assert evaluation_running(run)
        with pytest.raises(RunError, match="already running"):
            start_evaluation(run)
        for _ in range(300):  # the process announces its first metric within seconds
            if evaluation_progress(run).current:
                break
            time.sleep(0.1)
        p = evaluation_progress(run)
        assert p.running and p.total == len(METRICS) and p.current == "beta_vae" and p.fraction == 0
        at.run()
        assert f"Evaluating **tiny-bvae** · 0 of {len(METRICS)} metrics done · now: beta_vae" in \
            [b.proto.text for b in at.get("progress")]
        # where the scores will be, the page says they are on their way (not "click Evaluate", which is hidden)
        assert f"is being evaluated (0 of {len(METRICS)} metrics done)" in messages(at)
        assert "no eval.json yet" not in messages(at) and "met_start" not in [b.key for b in at.button]
    finally:
        kill(run)
    p = evaluation_progress(run)
    assert not p.running and p.done == 0 and f"[1/{len(METRICS)}] beta_vae" in p.log


def test_evaluating_a_run_whose_data_is_missing_names_the_folder(tiny_runs_dir, tmp_path, monkeypatch):
    root = use_copy(tiny_runs_dir, tmp_path / "runs", monkeypatch)
    config = json.loads((root / "tiny-bvae" / "config.json").read_text())
    config["data"].update(dataset="celeba", root=str(tmp_path / "no-celeba"))
    (root / "tiny-bvae" / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataError, match="no-celeba"):
        start_evaluation(Run(root / "tiny-bvae"))
    at = page("tiny-bvae")
    at.button(key="met_start").click().run()
    assert not at.exception, at.exception
    assert "no-celeba" in messages(at) and not (root / "tiny-bvae" / STATUS).exists()


def test_a_forged_or_foreign_evaluation_record(tmp_path):
    run = Run(tmp_path / "r")
    run.path.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])  # a live process that is no evaluation of ours
    try:
        (run.path / STATUS).write_text(json.dumps({"pid": sleeper.pid}))
        assert not evaluation_running(run) and not evaluation_progress(run).running
        record = {**process.identity(sleeper.pid), "command": ["sleep", "60"], "started": time.time()}
        (run.path / STATUS).write_text(json.dumps(record))
        assert evaluation_running(run)  # a record exactly like ours: pid, start time and host match
        # recorded on another machine: running there until its log shows the end
        (run.path / STATUS).write_text(json.dumps({**record, "host": "other.invalid"}))
        (run.path / "evaluate.log").write_text("[1/9] beta_vae ...\n")
        assert evaluation_running(run) and evaluation_progress(run).current == "beta_vae"
        (run.path / "evaluate.log").write_text("[1/9] beta_vae ...\nerror: no such run\n")
        assert not evaluation_running(run)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
