"""The Arithmetic, Generate and Compare pages on tiny SynthFaces runs: they render, their widgets change what is
drawn, bad input gives a message, and a run whose data set is missing still shows what needs no data."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.explore.arithmetic import LEARNED_AUC, unlearned_warning
from core.runs.folder import Run
from core.training.loop import train
from tests.tiny import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs_dir(tiny_runs_dir, tmp_path_factory):
    """A copy of the tiny runs (the pages write encodings into run folders) plus 'tiny-elsewhere', a run whose
    CelebA folder is not on this machine."""
    root = tmp_path_factory.mktemp("edit-pages") / "runs"
    shutil.copytree(tiny_runs_dir, root)
    shutil.copytree(root / "tiny-bvae", root / "tiny-elsewhere")
    config = json.loads((root / "tiny-elsewhere" / "config.json").read_text())
    config["name"] = "tiny-elsewhere"
    config["data"] = {**config["data"], "dataset": "celeba", "root": "/nowhere/celeba"}
    (root / "tiny-elsewhere" / "config.json").write_text(json.dumps(config))
    masked = tiny_config("tiny-masked", model="vae", dataset="synthfaces", steps=20)
    train(replace(masked, arch=replace(masked.arch, mask_head=True)).validate(), root, progress=False)
    return root


def open_page(page: str, runs_dir: Path, monkeypatch, run: str = "tiny-bvae", timeout: float = 60) -> AppTest:
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(runs_dir))
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=timeout)
    at.session_state["run_name"] = run
    at.run()
    assert not at.exception, at.exception
    return at


def pictures(at: AppTest) -> list[str]:
    """Every image drawn, by media URL (a hash of the image's bytes, so a changed picture has a new URL)."""
    return [url for image in at.get("image") for url in image.value]


def caption_of(at: AppTest, words: str) -> int:
    """Index of the image whose caption contains `words`."""
    return next(i for i, image in enumerate(at.get("image")) if any(words in c for c in image.captions))


# --- Arithmetic ----------------------------------------------------------------------------------

def test_arithmetic_renders_counts_auc_and_the_smile_button_selects_smiling(runs_dir, monkeypatch):
    at = open_page("arithmetic.py", runs_dir, monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    with_, without = (int(metrics[f"Train faces {side}"].replace(",", "")) for side in ("with", "without"))
    assert with_ > 0 and without > 0 and with_ + without > 1000
    assert 0.0 <= float(metrics["ROC-AUC of z·ΔZ (held-out)"]) <= 1.0
    assert at.selectbox(key="arith_attribute").value == "Smiling"

    at.selectbox(key="arith_attribute").set_value("Bangs").run()
    assert at.selectbox(key="arith_attribute").value == "Bangs"
    smile, glasses = at.button[0], at.button[1]
    assert "Smile" in smile.label and "Sunglasses" in glasses.label  # SynthFaces has Sunglasses: preferred
    smile.click().run()
    assert at.selectbox(key="arith_attribute").value == "Smiling"
    at.button[1].click().run()
    assert at.selectbox(key="arith_attribute").value == "Sunglasses"
    assert not at.exception


def test_arithmetic_says_when_the_run_has_not_learned_the_attribute(runs_dir, monkeypatch):
    at = open_page("arithmetic.py", runs_dir, monkeypatch)
    auc = float({m.label: m.value for m in at.metric}["ROC-AUC of z·ΔZ (held-out)"])
    warned = [w.value for w in at.warning if "hasn't learned Smiling" in w.value]
    assert bool(warned) == (auc < LEARNED_AUC)  # the tiny runs: whichever way their AUC fell, the page agrees
    assert unlearned_warning("Smiling", 0.54).startswith("This run hasn't learned Smiling (held-out AUC 0.54")
    assert unlearned_warning("Smiling", 0.97) is None and unlearned_warning("Smiling", None) is None


def test_arithmetic_shows_where_alpha_sits_on_the_evaluated_edit_curve(runs_dir, tmp_path, monkeypatch):
    from core.metrics.evaluate import FILE, FORMAT

    root = shutil.copytree(runs_dir, tmp_path / "runs")
    run = Run(root / "tiny-bvae")
    mean = {"method": "mean", "flip_rate": [0.1, 0.4, 0.9], "dependency": [0.0, 0.1, 0.2],
            "pixel_change": [0.0, 0.05, 0.1], "identity_change": [-0.02, 0.3, 1.4]}
    (run.path / FILE).write_text(json.dumps({
        "format": FORMAT, "run": run.name, "model": "beta-vae", "dataset": "synthfaces", "latent_dim": 8,
        "step": run.checkpoint_step(), "results": {"edits": {
            "alphas": [0.0, 1.0, 2.0], "fast": True, "seconds": 1.0, "judge": {"trained_on": "x", "aucs": {}},
            "attributes": [{"name": "Smiling", "vectors": [mean], "faces": 8, "judge_auc": 0.9,
                            "false_positive_rate_originals": 0.1, "positive_rate_reconstructions_with": 0.2,
                            "judgeable": False}]}}}))
    at = open_page("arithmetic.py", root, monkeypatch)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["title"]["text"] == "Smiling: evaluated edits against α"
    assert [t["y"] for t in chart["data"]] == [[0.1, 0.4, 0.9], [0.0, 0.05, 0.1], [-0.02, 0.3, 1.4]]
    assert [t["name"] for t in chart["data"]][2] == "identity change"
    assert chart["layout"]["yaxis"]["range"] == [-0.02, 1.4]  # the identity curve is not cut off
    assert chart["layout"]["shapes"][0]["x0"] == 1.0  # the slider's α
    assert any("Smiling: the judge finds it in 20% of the run's reconstructions" in w.value for w in at.warning)
    at.slider(key="arith_alpha").set_value(2.0).run()
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["shapes"][0]["x0"] == 2.0
    at.selectbox(key="arith_attribute").set_value("Bangs").run()  # not evaluated: no curve
    assert not at.get("plotly_chart") and not at.exception


def test_moving_alpha_changes_only_the_edited_image(runs_dir, monkeypatch):
    at = open_page("arithmetic.py", runs_dir, monkeypatch)
    before = pictures(at)
    assert len(before) == 3 + 7  # original, reconstruction, edit, then one column per α of the spectrum
    at.slider(key="arith_alpha").set_value(-2.5).run()
    after = pictures(at)
    assert after[2] != before[2]
    assert after[:2] == before[:2] and after[3:] == before[3:]
    assert not at.exception


def test_a_run_with_a_mask_head_keeps_the_background_of_its_edits(runs_dir, monkeypatch):
    plain_run = open_page("arithmetic.py", runs_dir, monkeypatch)
    assert not [t for t in plain_run.toggle if t.key == "arith_keep_background"]  # no mask head: nothing to keep
    at = open_page("arithmetic.py", runs_dir, monkeypatch, run="tiny-masked")
    assert at.toggle(key="arith_keep_background").value is True
    kept = pictures(at)
    at.toggle(key="arith_keep_background").set_value(False).run()
    plain = pictures(at)
    assert not at.exception and plain[:2] == kept[:2]  # originals and reconstructions stay
    assert plain[2] != kept[2] and plain[3:] != kept[3:]  # the edit and the spectrum are drawn without compositing


def test_every_column_of_faces_says_what_it_shows(runs_dir, monkeypatch):
    at = open_page("arithmetic.py", runs_dir, monkeypatch)
    titles = [m.value for m in at.markdown if m.value.startswith("**")]
    assert titles == ["**Original**", "**Reconstruction**", "**Edit: α = +1.0**",
                      *(f"**α = {a:+.2f}**" for a in (-2, -7 / 6, -1 / 3, 0.5, 4 / 3, 13 / 6, 3))]
    at.slider(key="arith_steps").set_value(3).run()
    assert [m.value for m in at.markdown if m.value.startswith("**α")] == ["**α = -2.00**", "**α = +0.50**",
                                                                          "**α = +3.00**"]
    assert len(pictures(at)) == 3 + 3  # a column is one picture of its faces stacked: their rows line up


def test_arithmetic_options_balanced_and_conditional_render(runs_dir, monkeypatch):
    at = open_page("arithmetic.py", runs_dir, monkeypatch)
    norm_mean = at.metric[3].value
    at.toggle(key="arith_balanced").set_value(True).run()
    at.multiselect(key="arith_confounders").set_value(["Eyeglasses"])
    at.multiselect(key="arith_condition").set_value(["Black_Hair", "Pale_Skin"]).run()
    assert not at.exception and not at.error
    assert at.metric[3].value != norm_mean  # |ΔZ|: the vector was rebuilt with the options
    assert any(df.value.shape[0] == 2 for df in at.dataframe)  # the strata table: with / without eyeglasses

    at.multiselect(key="arith_confounders").set_value(["Smiling"]).run()  # the target as its own confounder
    assert "cannot be its own confounder" in at.error[0].value


def test_arithmetic_bad_face_index_gives_a_message(runs_dir, monkeypatch):
    at = open_page("arithmetic.py", runs_dir, monkeypatch)
    at.radio(key="arith_faces_mode").set_value("By index").run()
    assert not at.exception and not at.error  # the default indices are valid faces without the attribute
    at.text_input(key="arith_faces_text").set_value("12, 99999999").run()
    assert "face index 99999999 is outside this data set: use 0 to 86399" in at.error[0].value
    at.text_input(key="arith_faces_text").set_value("12, twelve").run()
    assert "'twelve' is not a whole number" in at.error[0].value
    assert not at.exception


def test_arithmetic_without_the_data_set_says_it_needs_data(runs_dir, monkeypatch):
    at = open_page("arithmetic.py", runs_dir, monkeypatch, run="tiny-elsewhere")
    assert "/nowhere/celeba" in at.warning[0].value and "latent arithmetic" in at.warning[0].value
    assert not at.metric and not pictures(at)


# --- Generate ------------------------------------------------------------------------------------

def test_generate_seed_and_temperature_change_the_samples(runs_dir, monkeypatch):
    at = open_page("generate.py", runs_dir, monkeypatch)
    first = pictures(at)[caption_of(at, "seed 0")]
    at.number_input(key="gen_seed").set_value(7).run()
    assert pictures(at)[caption_of(at, "seed 7")] != first
    at.slider(key="gen_temperature").set_value(0.0).run()
    zero = pictures(at)[caption_of(at, "T = 0")]
    at.number_input(key="gen_seed").set_value(8).run()
    assert pictures(at)[caption_of(at, "T = 0")] == zero  # at T = 0 every sample is the decoded origin


def test_generate_interpolates_between_faces_and_between_prior_samples(runs_dir, monkeypatch):
    at = open_page("generate.py", runs_dir, monkeypatch)
    assert {image.captions[0] for image in at.get("image")} >= {"linear", "spherical"}
    at.radio(key="gen_faces_mode").set_value("By index").run()
    at.text_input(key="gen_faces_text").set_value("5").run()
    assert "type exactly 2 indices" in at.error[0].value
    at.text_input(key="gen_faces_text").set_value("5, 4000").run()
    assert not at.error and "indices 5 and 4000" in at.get("image")[caption_of(at, "the two faces")].captions[0]

    at.radio(key="gen_source").set_value("Prior samples").run()
    at.slider(key="gen_n").set_value(3)
    at.number_input(key="gen_second").set_value(3).run()
    assert not at.exception and len(pictures(at)) == 3  # prior grid + two paths
    # The tiny model's posterior means sit near the origin; prior samples are far enough apart to tell the paths apart.
    assert pictures(at)[caption_of(at, "linear")] != pictures(at)[caption_of(at, "spherical")]
    at.slider(key="gen_n").set_value(2).run()  # the chosen sample 3 no longer exists: clamped, not an error
    assert not at.exception and at.number_input(key="gen_second").value == 2


def test_generate_without_the_data_set_still_samples_the_prior(runs_dir, monkeypatch):
    at = open_page("generate.py", runs_dir, monkeypatch, run="tiny-elsewhere")
    assert "/nowhere/celeba" in at.warning[0].value
    assert at.radio(key="gen_source").options == ["Prior samples"]
    assert len(pictures(at)) == 3 and not at.error


# --- Compare -------------------------------------------------------------------------------------

def test_compare_runs_of_different_latent_sizes(runs_dir, monkeypatch):
    at = open_page("compare.py", runs_dir, monkeypatch)
    at.multiselect(key="cmp_runs").set_value(["tiny-bvae", "tiny-modvae"]).run()
    assert not at.exception and not at.warning
    table = at.dataframe[0].value
    assert list(table["latent dims"]) == [8, 12] and table["train loss"].notna().all()
    captions = [c for image in at.get("image") for c in image.captions]
    assert len(captions) == 3 and "tiny-bvae" in captions[1] and "12 dims" in captions[2]
    at.slider(key="cmp_faces_n").set_value(3).run()
    assert at.get("image")[1].proto.imgs  # still drawn after changing the faces
    assert "indices" in captions[0]


def test_compare_skips_a_run_on_another_data_set_and_explains(runs_dir, monkeypatch):
    at = open_page("compare.py", runs_dir, monkeypatch)
    at.multiselect(key="cmp_runs").set_value(["tiny-bvae", "tiny-elsewhere"]).run()
    assert "Skipped 'tiny-elsewhere'" in at.warning[0].value
    assert len(pictures(at)) == 2  # originals + tiny-bvae
    at.multiselect(key="cmp_runs").set_value(["tiny-elsewhere", "tiny-bvae"]).run()
    assert "/nowhere/celeba" in at.warning[1].value  # the table still shows; faces need the missing data
    assert len(at.dataframe[0].value) == 2 and not pictures(at) and not at.exception


def test_compare_table_follows_a_run_that_logs_again(runs_dir, tmp_path, monkeypatch):
    runs = shutil.copytree(runs_dir, tmp_path / "runs")  # its metrics change: a copy of its own
    at = open_page("compare.py", runs, monkeypatch)
    at.run()  # the table's rows come from the cache now
    Run(runs / "tiny-bvae").append_metrics({"type": "train", "step": 31, "loss": 123.4, "recon": 100.0, "kl": 23.4})
    at.run()
    row = at.dataframe[0].value.iloc[0]
    assert row["run"] == "tiny-bvae" and row["train loss"] == 123.4 and row["steps"] == 31
