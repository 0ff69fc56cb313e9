"""core.explore.traverse, core.explore.suggest and the label exports: hand-checkable values, shapes and file formats."""
import csv
import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import DataError
from core.data.synthfaces import SynthFaces
from core.data.images import to_uint8
from core.runs.labels import DimLabel, labels_csv, labels_json
from core.models.vae import VAE
from core.runs.folder import Run
from core.explore.suggest import (MIN_ABS_R, Suggestion, attribute_correlations, correlations, dim_effects,
                                  effect_suggestions)
from core.explore.generate import prior_codes
from core.explore.traverse import (collapsed, decode_grid, dim_ranges, encode_faces, gif_bytes, kl_from_encodings,
                                   kl_from_metrics, kl_order, labelled_grid, traversal_gif, traversal_values, zoom_grid)
from tests.tiny import TINY_ARCH


# --- KL, ordering, collapse ---------------------------------------------------------------------------------------

def test_kl_order_is_largest_first_and_stable_on_ties():
    assert kl_order(np.array([0.1, 2.0, 0.5, 2.0])).tolist() == [1, 3, 2, 0]


def test_collapsed_is_strictly_below_the_threshold():
    assert collapsed(np.array([0.049, 0.05, 1.0]), 0.05).tolist() == [True, False, False]
    assert collapsed(np.array([0.049, 0.05, 1.0]), 0.01).tolist() == [False, False, False]


def test_kl_from_encodings_matches_the_closed_form():
    # KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - log s^2 - 1) / 2: mu=1, s=1 -> 0.5; mu=0, s^2=e -> (e - 2) / 2.
    mu = np.array([[1.0, 0.0], [1.0, 0.0]])
    logvar = np.array([[0.0, 1.0], [0.0, 1.0]])
    np.testing.assert_allclose(kl_from_encodings(mu, logvar), [0.5, (np.e - 2) / 2])


def test_kl_from_metrics_reads_the_last_train_record_of_the_right_size(tiny_runs_dir, tmp_path):
    run = Run(shutil.copytree(tiny_runs_dir / "tiny-bvae", tmp_path / "run"))
    last = [r for r in run.metrics("train")][-1]["kl_dims"]
    np.testing.assert_allclose(kl_from_metrics(run), last)
    run.append_metrics({"type": "train", "step": 999, "kl_dims": [1.0, 2.0]})  # another latent size: ignored
    np.testing.assert_allclose(kl_from_metrics(run), last)
    (run.path / "metrics.jsonl").unlink()
    assert kl_from_metrics(run) is None


# --- ranges and codes ---------------------------------------------------------------------------------------------

MU = np.array([[0.0, 10.0], [1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [4.0, 10.0]])  # dim 1 never varies


def test_prior_range_is_plus_minus_k():
    lo, hi = dim_ranges("prior", 3, k=2.5)
    assert lo.tolist() == [-2.5] * 3 and hi.tolist() == [2.5] * 3


def test_data_ranges_are_min_max_and_quantiles_of_the_means():
    lo, hi = dim_ranges("minmax", 2, mu=MU)
    assert lo.tolist() == [0.0, 10.0] and hi.tolist() == [4.0, 10.0]
    lo, hi = dim_ranges("quantile", 2, mu=MU, quantile=0.25)  # 25th and 75th percentile of 0..4
    assert lo.tolist() == [1.0, 10.0] and hi.tolist() == [3.0, 10.0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(mode="sideways"), "unknown range mode"),
    (dict(mode="minmax"), "needs encoded images"),
    (dict(mode="quantile", mu=MU, quantile=0.5), "quantile must be"),
    (dict(mode="minmax", mu=MU[:, :1]), "1 dims"),
    (dict(mode="prior", k=0), "k must be positive"),
])
def test_bad_range_settings_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dim_ranges(latent_dim=2, **kwargs)


def test_traversal_values_sweep_one_dim_per_row_and_keep_the_rest():
    center = np.array([5.0, 6.0, 7.0, 8.0])
    lo, hi = np.full(4, -1.0), np.full(4, 1.0)
    codes = traversal_values(center, [2, 0], 3, lo, hi)
    assert codes.shape == (2, 3, 4)
    assert codes[0].tolist() == [[5, 6, -1, 8], [5, 6, 0, 8], [5, 6, 1, 8]]
    assert codes[1].tolist() == [[-1, 6, 7, 8], [0, 6, 7, 8], [1, 6, 7, 8]]
    faces = traversal_values(np.stack([center, -center]), [3], 2, lo, hi)  # a batch of centres
    assert faces.shape == (2, 1, 2, 4)
    assert faces[1, 0, :, 0].tolist() == [-5, -5] and faces[1, 0, :, 3].tolist() == [-1, 1]
    with pytest.raises(ValueError, match="at least 2 steps"):
        traversal_values(center, [0], 1, lo, hi)


def test_prior_codes_are_reproducible_per_seed():
    np.testing.assert_array_equal(prior_codes(5, 3, seed=7), prior_codes(5, 3, seed=7))
    assert not np.array_equal(prior_codes(5, 3, seed=7), prior_codes(5, 3, seed=8))


# --- decoding and faces -------------------------------------------------------------------------------------------

def test_decode_grid_keeps_the_grid_layout_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = VAE(TINY_ARCH).eval()
    codes = traversal_values(np.zeros(8), [3, 1], 4, np.full(8, -3.0), np.full(8, 3.0))
    images = decode_grid(model, codes, batch_size=3)  # batches that split rows: order must survive
    assert images.shape == (2, 4, 3, 64, 64) and images.dtype == np.uint8
    with torch.inference_mode():
        expected = to_uint8(model.decode(torch.from_numpy(codes.reshape(-1, 8))))
    # Channels-last may pick other kernels: allow a rounding step, nothing more.
    assert np.abs(images.reshape(-1, 3, 64, 64).astype(int) - expected).max() <= 1
    assert not images[0, 0].tolist() == images[0, -1].tolist()  # the sweep changes the picture
    assert model.decoder.deconv[0].weight.is_contiguous()  # the caller's model is not switched to channels-last


def test_encode_faces_refuses_an_index_outside_the_data_set():
    data = SynthFaces()
    model = VAE(TINY_ARCH).eval()
    mu, images = encode_faces(model, data, [0, 5])
    assert mu.shape == (2, 8) and images.shape == (2, 3, 64, 64)
    with pytest.raises(DataError, match=f"face index {len(data)} is outside 0..{len(data) - 1}"):
        encode_faces(model, data, [len(data)])


# --- pictures -----------------------------------------------------------------------------------------------------

def _tiles(rows: int, steps: int) -> np.ndarray:
    """Distinct flat-colour tiles, so frames and rows can be told apart after encoding."""
    values = np.arange(rows * steps, dtype=np.uint8).reshape(rows, steps) * 20 + 10
    return np.broadcast_to(values[:, :, None, None, None], (rows, steps, 3, 64, 64)).copy()


def test_labelled_grid_has_a_label_margin_and_fades_dimmed_rows():
    images = _tiles(2, 3)
    picture = labelled_grid(images, ["z0\nKL 1.00", "z1 " + "very long label " * 40], [False, True], label_width=150)
    assert picture.shape == (2 * 66 + 2, 150 + 3 * 66 + 2, 3)
    first, second = picture[2:66, 152:216], picture[68:132, 152:216]  # first tile of each row
    assert (first == 10).all()  # an undimmed row keeps its pixels
    assert (second > images[1, 0].max()).all()  # the dimmed row is lighter than its image
    assert (picture[:, 141:150] == 255).all()  # the long label was cut before it reached the images
    with pytest.raises(ValueError, match="1 labels for 2 rows"):
        labelled_grid(images, ["z0"])


def test_gif_goes_forward_and_back():
    frames = [np.full((8, 8, 3), 40 * i, np.uint8) for i in range(5)]
    gif = Image.open(io.BytesIO(gif_bytes(frames)))
    assert gif.n_frames == 8  # 0 1 2 3 4 3 2 1
    order = []
    for i in range(gif.n_frames):
        gif.seek(i)
        order.append(int(np.asarray(gif.convert("RGB"))[0, 0, 0]) // 40)
    assert order == [0, 1, 2, 3, 4, 3, 2, 1]
    assert gif.info["loop"] == 0


def test_traversal_gif_shows_every_face_at_each_step():
    gif = Image.open(io.BytesIO(traversal_gif(_tiles(2, 4), scale=2)))
    assert gif.n_frames == 6 and gif.size == ((2 * 66 + 2) * 2, 68 * 2)
    wrapped = Image.open(io.BytesIO(traversal_gif(_tiles(8, 3), scale=1, per_row=6)))
    assert wrapped.size == (6 * 66 + 2, 2 * 66 + 2)  # 8 faces: a row of 6, then 2


def test_zoom_grid_wraps_each_face_into_even_rows_of_128_px_tiles():
    picture = zoom_grid(_tiles(2, 7), ["face a", "face b"], -3.0, 3.0, per_row=6, label_width=110)
    # 7 steps at most 6 a row: 2 rows of 4 (the last padded white) per face; 64 px tiles drawn at 128 px
    assert picture.shape == ((4 * 66 + 2) * 2, 110 + (4 * 66 + 2) * 2, 3)

    def tile(row: int, column: int) -> np.ndarray:
        top, left = (2 + row * 66) * 2, 110 + (2 + column * 66) * 2
        return picture[top:top + 128, left:left + 128]

    assert (tile(0, 0) == 10).all() and (tile(0, 3) == 70).all()  # face a, steps 0 and 3
    assert (tile(1, 0) == 90).all() and (tile(1, 3) == 255).all()  # face a, step 4, then the padding
    assert (tile(2, 0) == 150).all()  # face b starts a new row
    with pytest.raises(ValueError, match="1 names for 2 faces"):
        zoom_grid(_tiles(2, 7), ["face a"], -3.0, 3.0)


# --- label suggestions --------------------------------------------------------------------------------------------

def test_a_planted_relation_is_suggested_and_noise_is_not():
    rng = np.random.default_rng(0)
    attributes = rng.random((600, 3)) < 0.4
    mu = rng.standard_normal((600, 6))
    mu[:, 4] = attributes[:, 1] + 0.3 * rng.standard_normal(600)  # z4 encodes attribute B
    mu[:, 2] = -1.0 * attributes[:, 0] + 0.6 * rng.standard_normal(600)  # z2 encodes "not A", more weakly
    r, suggestions = attribute_correlations(mu, attributes, ["A", "B", "C"])
    assert r.shape == (6, 3)
    assert [(s.dim, s.attribute) for s in suggestions] == [(4, "B"), (2, "A")]  # strongest first, no noise dims
    assert suggestions[0].r > 0.8 and suggestions[1].r < -0.5 and suggestions[0].n == 600


def test_an_attribute_is_suggested_only_for_the_dims_that_carry_it_most():
    rng = np.random.default_rng(2)
    attributes = rng.random((800, 2)) < 0.5
    mu = rng.standard_normal((800, 5))
    mu[:, 0] = attributes[:, 0] + 0.1 * rng.standard_normal(800)  # carries A (r ~ 0.98)
    mu[:, 3] = attributes[:, 0] + 0.2 * rng.standard_normal(800)  # carries it almost as well (r ~ 0.93)
    mu[:, 1] = attributes[:, 0] + 1.0 * rng.standard_normal(800)  # an echo of A (r ~ 0.45): top attribute, not kept
    r, suggestions = attribute_correlations(mu, attributes, ["A", "B"])
    assert abs(r[1, 0]) >= MIN_ABS_R and np.abs(r[1]).argmax() == 0
    assert [(s.dim, s.attribute) for s in suggestions] == [(0, "A"), (3, "A")]


def test_effects_suggest_the_dim_that_draws_an_attribute_not_its_echo():
    # a "decoder" whose red channel is drawn by z1 and blue by -z3; z2 correlates with nothing it draws
    def decode(z):
        images = np.zeros((len(z), 3, 4, 4))
        images[:, 0] = 1 / (1 + np.exp(-3 * z[:, 1]))[:, None, None]
        images[:, 2] = 1 / (1 + np.exp(3 * z[:, 3] - 0.2 * z[:, 2]))[:, None, None]
        return images

    def judge(images):  # P(Red), P(Blue), P(Green) from the mean of each channel
        return images.mean(axis=(2, 3))[:, [0, 2, 1]]

    codes = np.random.default_rng(3).standard_normal((16, 4)).astype(np.float32)
    effects = dim_effects(decode, judge, codes, dims=[0, 1, 2, 3], k=2.0)
    assert effects.shape == (4, 2, 3) and np.allclose(effects[0, 0], effects[0, 1])  # z0 moves nothing
    found = effect_suggestions(effects, [0, 1, 2, 3], ["Red", "Blue", "Green"], faces=16)
    assert [(e.dim, e.attribute) for e in found] == [(1, "Red"), (3, "Blue")]
    assert found[0].low < 0.01 and found[0].high > 0.99 and found[1].change < -0.98  # higher z3: less blue
    assert found[1].describe({}).startswith("z3 → Blue: judged on 100% → 0% of 16 faces")
    assert "higher z3 → less Blue" in found[1].as_label().note


def test_correlation_is_pearson_and_zero_for_constant_columns():
    rng = np.random.default_rng(1)
    mu = rng.standard_normal((50, 3))
    mu[:, 1] = 2.0  # a collapsed dim that never moves
    attributes = np.column_stack([rng.random(50) < 0.5, np.ones(50, bool)])  # the second attribute is always on
    r = correlations(mu, attributes)
    assert np.isfinite(r).all()
    assert r[1].tolist() == [0.0, 0.0] and r[:, 1].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(r[0, 0], np.corrcoef(mu[:, 0], attributes[:, 0])[0, 1])


def test_attribute_correlations_checks_its_inputs():
    with pytest.raises(ValueError, match="5 posterior means but 4 attribute rows"):
        attribute_correlations(np.zeros((5, 2)), np.zeros((4, 1)), ["A"])
    with pytest.raises(ValueError, match="2 attribute names"):
        attribute_correlations(np.zeros((5, 2)), np.zeros((5, 1)), ["A", "B"])


def test_accepting_a_suggestion_labels_the_dim_with_the_evidence():
    s = Suggestion(16, "Black_Hair", -0.71, 2000)
    assert s.describe({16: DimLabel("hair")}) == "z16 · hair ↔ Black_Hair, r = -0.71"
    label = s.as_label()
    assert label.label == "Black_Hair" and label.meaningful
    assert "r = -0.71" in label.note and "less Black_Hair" in label.note and "2,000" in label.note


# --- label exports ------------------------------------------------------------------------------------------------

LABELS = {16: DimLabel("hair colour", True, 'dark, then "blond"'), 3: DimLabel("smile, width", False, "")}


def test_labels_csv_round_trips_commas_and_quotes():
    rows = list(csv.DictReader(io.StringIO(labels_csv(LABELS))))
    assert [r["dim"] for r in rows] == ["3", "16"]
    assert rows[0]["label"] == "smile, width" and rows[1]["note"] == 'dark, then "blond"'
    assert rows[1]["meaningful"] == "True"
    assert labels_csv({}) == "dim,label,meaningful,note\n"


def test_labels_json_has_the_labels_file_layout():
    data = json.loads(labels_json(LABELS))
    assert data == {"dims": {"3": {"label": "smile, width", "meaningful": False, "note": ""},
                             "16": {"label": "hair colour", "meaningful": True, "note": 'dark, then "blond"'}}}
