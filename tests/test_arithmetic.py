"""Attribute vectors, conditional / balanced variants, separation AUC, edits, and decoding / interpolation,
checked on planted latent data where the right answer is known."""
from __future__ import annotations

import numpy as np
import pytest

from core.explore.arithmetic import (VectorError, VectorSpec, attribute_vector, build_vector, conditional_vector, edit,
                                     preset_attribute, rank_auc, separation_auc, strata, strongest_dims)
from core.data import DataError
from core.explore.generate import decode, interpolate, parse_indices, prior_codes, sample_indices
from core.models.vae import VAE
from tests.tiny import TINY_ARCH

D = 16


def unit(rng, d=D):
    v = rng.standard_normal(d)
    return v / np.linalg.norm(v)


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def planted(n=3000, seed=0, shift=2.0):
    """Codes with an attribute that moves them by `shift` along a known unit direction."""
    rng = np.random.default_rng(seed)
    u = unit(rng)
    labels = rng.random(n) < 0.4
    mu = rng.standard_normal((n, D)) + shift * labels[:, None] * u
    return mu, labels, u


def confounded(n=6000, seed=1):
    """Target a (direction u), confounder c (direction v, orthogonal to u); P(a | c) = 0.8, P(a | not c) = 0.2."""
    rng = np.random.default_rng(seed)
    u = unit(rng)
    v = unit(rng)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    c = rng.random(n) < 0.5
    a = rng.random(n) < np.where(c, 0.8, 0.2)
    mu = rng.standard_normal((n, D)) + 2.0 * a[:, None] * u + 3.0 * c[:, None] * v
    return mu, a, c, u, v


def test_mean_vector_recovers_a_planted_direction():
    mu, labels, u = planted()
    delta = attribute_vector(mu, labels)
    assert cosine(delta, u) > 0.95
    assert delta.shape == (D,) and delta.dtype == np.float32
    assert abs(np.linalg.norm(delta) - 2.0) < 0.3  # the length is the planted shift: α = 1 adds the attribute once


def test_balanced_vector_removes_a_planted_confound():
    mu, a, c, u, v = confounded()
    mean = attribute_vector(mu, a)
    balanced = attribute_vector(mu, a, "balanced", confounders=c[:, None])
    assert abs(mean @ v) > 1.2  # 3 × (P(c|a) − P(c|¬a)) = 1.8 in expectation: the confound leaks in
    assert abs(balanced @ v) < 0.15
    assert abs(balanced @ u - 2.0) < 0.2
    assert cosine(balanced, u) > 0.98 > cosine(mean, u)


def test_strata_report_counts_and_which_are_too_small():
    labels = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
    conf = np.array([[0], [0], [0], [0], [1], [1], [1], [1]], bool)
    rows = strata(labels, conf, min_count=2)
    assert [(s.values, s.n_with, s.n_without, s.used) for s in rows] == [
        ((False,), 2, 2, True), ((True,), 1, 3, False)]


def test_balanced_vector_without_usable_strata_or_confounders_is_a_clear_error():
    mu, a, c, _, _ = confounded(n=200)
    with pytest.raises(VectorError, match="no confounder stratum has 500"):
        attribute_vector(mu, a, "balanced", confounders=c[:, None], min_count=500)
    with pytest.raises(VectorError, match="at least one confounder"):
        attribute_vector(mu, a, "balanced")
    with pytest.raises(VectorError, match="method 'median'"):
        attribute_vector(mu, a, "median")


def test_conditional_vector_is_orthogonal_to_the_conditioned_directions():
    rng = np.random.default_rng(3)
    delta, others = rng.standard_normal(D), rng.standard_normal((3, D))
    out = conditional_vector(delta, list(others) + [others[0] * 2])  # a duplicate direction adds nothing
    assert np.abs(others @ out).max() < 1e-4 * np.linalg.norm(delta)
    # What is left is delta's component outside the span, untouched (no rescaling).
    q, _ = np.linalg.qr(others.T)
    expected = delta - q @ (q.T @ delta)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    np.testing.assert_allclose(conditional_vector(delta, []), delta, atol=1e-6)


def test_conditional_vector_inside_the_span_is_a_clear_error():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(D), rng.standard_normal(D)
    with pytest.raises(VectorError, match="inside the span"):
        conditional_vector(a + 0.5 * b, [a, b])


def test_separation_auc_is_one_for_separable_and_half_for_noise():
    mu, labels, u = planted(shift=8.0)
    assert separation_auc(mu, labels, attribute_vector(mu, labels)) > 0.999
    rng = np.random.default_rng(5)
    noise = rng.random(len(mu)) < 0.5
    assert abs(separation_auc(mu, noise, u) - 0.5) < 0.04
    # The score's sign matters: the opposite vector gives 1 − AUC.
    assert separation_auc(mu, labels, -u) < 0.01


@pytest.mark.parametrize("labels, side", [(np.zeros(50, bool), "lacks"), (np.ones(50, bool), "has")])
def test_an_attribute_without_positives_or_negatives_is_a_clear_error(labels, side):
    mu = np.random.default_rng(0).standard_normal((50, D))
    with pytest.raises(VectorError, match=f"'Smiling': every one of the 50 faces {side} it"):
        attribute_vector(mu, labels, name="Smiling")
    with pytest.raises(VectorError, match="nothing to contrast"):
        separation_auc(mu, labels, np.ones(D), name="Smiling")


def test_edit_moves_each_face_along_delta_by_each_alpha():
    rng = np.random.default_rng(6)
    z, delta = rng.standard_normal((3, D)), rng.standard_normal(D)
    codes = edit(z, delta, [-1.0, 0.0, 2.5])
    assert codes.shape == (3, 3, D)
    np.testing.assert_allclose(codes[:, 1], z, atol=1e-6)
    np.testing.assert_allclose(codes[:, 2] - codes[:, 1], np.tile(2.5 * delta, (3, 1)), atol=1e-5)
    assert edit(z[0], delta, 1.0).shape == (1, 1, D)


def encodings_table(mu, columns: dict[str, np.ndarray]):
    return {"mu": mu, "attributes": np.stack(list(columns.values()), axis=1),
            "attribute_names": np.array(list(columns), dtype=str)}


def test_build_vector_follows_the_spec():
    mu, a, c, u, v = confounded()
    table = encodings_table(mu, {"Smiling": a, "Male": c})
    plain = build_vector(table, VectorSpec("Smiling"))
    np.testing.assert_allclose(plain, attribute_vector(mu, a), atol=1e-6)
    balanced = build_vector(table, VectorSpec("Smiling", "balanced", confounders=("Male",)))
    assert abs(balanced @ v) < 0.15
    conditional = build_vector(table, VectorSpec("Smiling", condition_on=("Male",)))
    assert abs(conditional @ attribute_vector(mu, c)) < 1e-3
    with pytest.raises(VectorError, match="unknown attribute 'Beard'; this data set has: Smiling, Male"):
        build_vector(table, VectorSpec("Beard"))
    with pytest.raises(VectorError, match="its own confounder"):
        build_vector(table, VectorSpec("Smiling", "balanced", confounders=("Smiling",)))


def test_one_click_presets_prefer_sunglasses_then_eyeglasses():
    assert preset_attribute(["Eyeglasses", "Sunglasses", "Smiling"], "glasses") == "Sunglasses"
    assert preset_attribute(["Eyeglasses", "Smiling"], "glasses") == "Eyeglasses"
    assert preset_attribute(["Smiling"], "smile") == "Smiling"
    assert preset_attribute(["Male"], "smile") is None


# --- core.explore.generate -------------------------------------------------------------------------------

def test_interpolation_end_points_and_slerp_keeps_the_norm():
    rng = np.random.default_rng(7)
    z0, z1 = rng.standard_normal(64), rng.standard_normal(64)
    z1 *= np.linalg.norm(z0) / np.linalg.norm(z1)
    for method in ("linear", "spherical"):
        path = interpolate(z0, z1, 9, method)
        assert path.shape == (9, 64)
        np.testing.assert_allclose(path[[0, -1]], [z0, z1], atol=1e-5)
    norms = np.linalg.norm(interpolate(z0, z1, 9, "spherical"), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(z0), rtol=1e-4)
    assert np.linalg.norm(interpolate(z0, z1, 9, "linear")[4]) < 0.85 * np.linalg.norm(z0)  # the straight line sags
    with pytest.raises(ValueError, match="at least 2"):
        interpolate(z0, z1, 1)
    with pytest.raises(ValueError, match="'cubic'"):
        interpolate(z0, z1, 5, "cubic")


def test_prior_codes_follow_seed_and_temperature():
    a, b = prior_codes(8, 5, seed=1), prior_codes(8, 5, seed=2)
    assert not np.allclose(a, b)
    np.testing.assert_allclose(prior_codes(8, 3, seed=1), a[:3])
    np.testing.assert_allclose(prior_codes(8, 5, seed=1, temperature=0.5), 0.5 * a, atol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        prior_codes(8, 5, seed=1, temperature=-1)


def test_decode_keeps_leading_shape():
    model = VAE(TINY_ARCH).eval()
    images = decode(model, np.zeros((2, 3, TINY_ARCH.latent_dim), np.float32))
    assert images.shape == (2, 3, 3, 64, 64) and images.dtype == np.uint8
    assert decode(model, np.zeros((0, TINY_ARCH.latent_dim))).shape == (0, 3, 64, 64)


def test_strongest_dims_rank_by_magnitude_and_keep_the_sign():
    assert strongest_dims(np.array([0.1, -2.0, 0.5, 1.5]), k=3) == [(1, -2.0), (3, 1.5), (2, 0.5)]


def test_parse_indices_accepts_commas_and_spaces_and_names_bad_values():
    np.testing.assert_array_equal(parse_indices(" 12, 40 7,", 100), [12, 40, 7])
    for text, message in [("", "no face indices"), ("3, x", "'x' is not a whole number"), ("1.5", "'1.5' is not"),
                          ("100", "face index 100 is outside this data set: use 0 to 99"), ("-1", "index -1 is outside")]:
        with pytest.raises(DataError, match=message):
            parse_indices(text, 100)


def test_sample_indices_are_distinct_members_of_the_pool_and_follow_the_seed():
    pool = np.arange(10, 60, 5)
    a = sample_indices(pool, 4, seed=1)
    assert len(set(a)) == 4 and set(a) <= set(pool)
    np.testing.assert_array_equal(a, sample_indices(pool, 4, seed=1))
    assert not np.array_equal(a, sample_indices(pool, 4, seed=2))
    assert sorted(sample_indices(pool, 50, seed=0)) == list(pool)  # asking for more than the pool gives all of it


@pytest.mark.parametrize("levels", [3, 50, None])  # heavy ties, some ties, none
def test_rank_auc_is_sklearns_roc_auc(levels):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(levels or 0)
    labels = rng.random(500) < 0.3
    scores = labels + rng.standard_normal(500)
    if levels:
        scores = np.round(scores * levels / 8)
    assert rank_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)

