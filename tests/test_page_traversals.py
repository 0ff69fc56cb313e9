"""The Traversals page on the tiny runs: renders for any latent size, widgets change the grid, labels persist,
suggestions can be accepted, and bad input or missing data gives a message instead of a traceback."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.explore.encode import encodings_path, load_or_encode
from core.runs.labels import DimLabel, load_labels
from core.runs.folder import Run
from tests.tiny import encoded_copy, use_copy
from core.explore.traverse import kl_from_metrics, kl_order

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "pages" / "traversals.py"
SPLIT, LIMIT = "test", 2000  # what the page encodes


@pytest.fixture(scope="module")
def encoded_runs(tiny_runs_dir, tmp_path_factory):
    """The tiny runs with the page's subset already encoded, so each test's copy starts warm."""
    return encoded_copy(tiny_runs_dir, tmp_path_factory.mktemp("traversal-runs") / "runs", SPLIT, LIMIT)


@pytest.fixture
def runs(encoded_runs, tmp_path, monkeypatch):
    return use_copy(encoded_runs, tmp_path / "runs", monkeypatch)


def page(run: str) -> AppTest:
    """The page as the app shows it: Home.py's navigation, then a switch to Traversals."""
    at = AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=60)
    at.query_params["run"] = run
    return at.switch_page(str(PAGE)).run()


def image_with(at: AppTest, words: str):
    return next(img for el in at.get("image") for img in el.proto.imgs if words in img.caption)


def grid_image(at: AppTest):
    """The main grid: the image whose caption says 'N dims × S steps'."""
    return image_with(at, " dims × ")


def widget(elements, label: str):
    return next(e for e in elements if e.label == label)


def messages(at: AppTest) -> str:
    return " ".join(str(m.value) for m in [*at.error, *at.warning, *at.info, *at.success])


@pytest.mark.parametrize("name, dims", [("tiny-bvae", 8), ("tiny-modvae", 12)])
def test_renders_every_dim_of_any_latent_size(runs, name, dims):
    at = page(name)
    assert not at.exception, at.exception
    assert f"{dims} dims × 9 steps" in grid_image(at).caption
    zoom = at.selectbox(key="trav_zoom_dim")
    kl = kl_from_metrics(Run(runs / name))
    assert zoom.options[0].startswith(f"z{kl_order(kl)[0]} ")  # ordered by KL, largest first
    assert len(zoom.options) == dims


def test_a_new_checkpoint_redraws_the_cached_pictures(runs):
    at = page("tiny-bvae")
    at.radio(key="trav_source").set_value("Prior mean (z = 0)").run()  # codes that do not depend on the weights
    at.slider(key="trav_zoom_faces").set_value(1).run()
    captions = (" dims × ", ", 15 steps", "forward and back")  # the grid, the zoomed dim, its GIF
    drawn = lambda: [image_with(at, words).url for words in captions]  # noqa: E731
    before = drawn()
    at.run()
    assert drawn() == before  # a rerun draws the cached pictures
    run = Run(runs / "tiny-bvae")
    model = run.load_model()
    with torch.no_grad():
        for weight in model.parameters():
            weight.mul_(0.5)
    run.save_checkpoint(model, None, run.checkpoint_step() + 1)  # as the trainer does: a new file, a new mtime
    at.run()
    assert not at.exception, at.exception
    assert all(new != old for new, old in zip(drawn(), before, strict=True))


def test_steps_range_and_hiding_change_the_grid(runs):
    at = page("tiny-bvae")
    first = grid_image(at)
    at.slider(key="trav_steps").set_value(5).run()
    assert "8 dims × 5 steps" in grid_image(at).caption and grid_image(at).url != first.url
    at.radio(key="trav_mode").set_value("quantile").run()
    assert "data quantiles" in grid_image(at).caption
    kl = kl_from_metrics(Run(runs / "tiny-bvae"))
    at.number_input(key="trav_threshold").set_value(0.3).run()
    at.checkbox(key="trav_hide").check().run()
    assert f"{int((kl >= 0.3).sum())} dims × 5 steps" in grid_image(at).caption
    assert not at.exception


def test_a_saved_label_shows_everywhere_and_survives_reruns_and_a_new_session(runs):
    at = page("tiny-bvae")
    dim = int(kl_order(kl_from_metrics(Run(runs / "tiny-bvae")))[0])
    widget(at.text_input, "Label").input("hair colour")
    widget(at.checkbox, "Meaningful (one clear factor)").check()
    widget(at.text_area, "Note").input("dark to blond")
    widget(at.button, "Save label").click().run()
    assert not at.exception, at.exception
    assert load_labels(Run(runs / "tiny-bvae"))[dim] == DimLabel("hair colour", True, "dark to blond")
    assert f"Saved: z{dim} · hair colour" in messages(at)
    for session in (at.run(), page("tiny-bvae")):  # a rerun, then a fresh browser session
        assert session.selectbox(key="trav_zoom_dim").options[0].startswith(f"z{dim} · hair colour")
        assert widget(session.text_input, "Label").value == "hair colour"
        assert widget(session.text_area, "Note").value == "dark to blond"


def test_accepting_a_suggestion_writes_the_label(runs):
    run = Run(runs / "tiny-bvae")
    dim = int(kl_order(kl_from_metrics(run))[0])  # an active dim
    encodings = load_or_encode(run, SPLIT, LIMIT)
    smiling = list(encodings["attribute_names"]).index("Smiling")
    rng = np.random.default_rng(0)
    planted = dict(encodings, mu=rng.standard_normal(encodings["mu"].shape).astype(np.float32))
    planted["mu"][:, dim] = encodings["attributes"][:, smiling] + 0.2 * rng.standard_normal(len(planted["mu"]))
    with open(encodings_path(run, SPLIT, LIMIT), "wb") as f:  # newer than the checkpoint: the page reads it
        np.savez(f, **planted)
    at = page("tiny-bvae")
    assert any(f"z{dim} ↔ Smiling, r = +0.9" in m.value for m in at.markdown)
    at.button(key=f"trav_accept_{dim}").click().run()
    assert not at.exception, at.exception
    label = load_labels(run)[dim]
    assert label.label == "Smiling" and label.meaningful and "r = +0.9" in label.note
    assert at.button(key=f"trav_accept_{dim}").disabled  # already accepted
    assert json.loads((run.path / "labels.json").read_text())["dims"][str(dim)]["label"] == "Smiling"


def test_an_out_of_range_face_index_gives_a_message(runs):
    at = page("tiny-bvae")
    at.radio(key="trav_face_mode").set_value("By index").run()
    at.text_input(key="trav_face_text").input("999999").run()
    assert not at.exception, at.exception
    assert any("face index 999999 is outside this data set" in e.value for e in at.error)
    at.text_input(key="trav_face_text").input("12").run()
    assert not at.error and "face 12:" in grid_image(at).caption


def move_data_away(run: Run) -> None:
    """Make the run look trained on a CelebA folder that is not on this machine."""
    config = json.loads((run.path / "config.json").read_text())
    config["data"].update(dataset="celeba", root="/nowhere/celeba")
    (run.path / "config.json").write_text(json.dumps(config))


def test_a_run_whose_data_is_elsewhere_still_traverses_from_the_prior(runs):
    run = Run(runs / "tiny-bvae")
    shutil.rmtree(run.path / "encodings")
    move_data_away(run)
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert "/nowhere/celeba" in messages(at) and "no label suggestions" in messages(at)
    assert at.radio(key="trav_source").options == ["Random face from the prior", "Prior mean (z = 0)"]
    assert at.radio(key="trav_mode").options == ["±k·σ of the prior"]
    assert "prior sample 0: 8 dims × 9 steps" in grid_image(at).caption
    at.radio(key="trav_source").set_value("Prior mean (z = 0)").run()
    assert "prior mean: 8 dims" in grid_image(at).caption and not at.exception


def test_without_training_metrics_the_kl_comes_from_the_encodings(runs):
    (runs / "tiny-bvae" / "metrics.jsonl").unlink()
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert any("KL from 2,000 encoded images" in c.value for c in at.caption)


def test_a_corrupt_labels_file_is_reported_not_overwritten(runs):
    labels = runs / "tiny-bvae" / "labels.json"
    labels.write_text("{not json")
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert any("labels.json: not valid JSON" in e.value and "fix or delete it" in e.value for e in at.error)
    assert labels.read_text() == "{not json"


def test_encodings_copied_with_the_run_stand_in_for_its_data(runs):
    run = Run(runs / "tiny-bvae")
    move_data_away(run)
    folder = run.path / "encodings"
    (folder / f"synthfaces-{SPLIT}-{LIMIT}.npz").rename(folder / f"celeba-{SPLIT}-{LIMIT}.npz")
    at = page("tiny-bvae")
    assert not at.exception, at.exception
    assert at.radio(key="trav_source").options == ["Random face from the prior", "Prior mean (z = 0)"]
    assert len(at.radio(key="trav_mode").options) == 3  # data ranges from the copied encodings
    assert "use the 2,000 encoded images saved in the run folder" in messages(at)
    at.radio(key="trav_mode").set_value("minmax").run()
    assert "data min–max" in grid_image(at).caption and not at.exception


def test_suggestions_from_effects_judge_decoded_faces_and_can_be_accepted(runs, monkeypatch):
    from core.metrics import registry
    from core.metrics.classifier import Judge

    class Brightness(Judge):
        """A stand-in judge: 'Bright' when a face is brighter than the median face of the batch it is shown."""

        def __init__(self):
            super().__init__(model=None, names=["Bright"], aucs={"Bright": 0.9}, trained_on="a stand-in",
                             cached=True)

        def score(self, images):
            mean = np.asarray(images, np.float64).mean(axis=(1, 2, 3))
            return (mean > np.median(mean)).astype(float)[:, None]

    judged = []
    monkeypatch.setattr(registry, "attribute_judge", lambda run, dataset: judged.append(run.name) or Brightness())
    at = page("tiny-bvae")
    assert not [b for b in at.button if b.key and b.key.startswith("trav_effect_accept_")]  # only when asked
    at.button(key="trav_effects_go").click().run()
    assert not at.exception, at.exception
    found = [m.value for m in at.markdown if "→ Bright: judged on" in m.value]
    assert found and judged == ["tiny-bvae"] and all("judge's held-out AUC 0.90" in f for f in found)
    accept = next(b for b in at.button if b.key and b.key.startswith("trav_effect_accept_"))
    dim = int(accept.key.rsplit("_", 1)[1])
    accept.click().run()
    label = load_labels(Run(runs / "tiny-bvae"))[dim]
    assert label.label == "Bright" and label.note.startswith("suggested from its effect")
    at.run()
    assert judged == ["tiny-bvae"]  # cached per run and checkpoint: the judge is not asked again
