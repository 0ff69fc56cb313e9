"""Sanity tests of the metrics: true factors score ~1, noise ~0 (or chance), a code mixing two factors in between;
invariance to permuting code dims; determinism; likelihood bounds against a model with a known marginal."""
from __future__ import annotations

import math
import platform

import numpy as np
import pytest
import torch
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from core.data import GroundTruthData
from core.device import inference_layout, reuse_freed_memory
from core.metrics import (CachedRepresentation, beta_vae_score, dci_score, encoder_means, factor_vae_score,
                          mig_score, sap_score)
from core.metrics.dci import completeness, disentanglement, importance_matrix
from core.metrics.likelihood import (Bounds, bits_per_dim, density_kind, importance_bounds, log_likelihood,
                                     model_bounds)
from core.metrics.mig import histogram_discretize
from core.metrics.probes import attribute_probes, column_aucs, identity_disjoint
from core.models.vae import VAE
from tests.tiny import TINY_ARCH


class Grid(GroundTruthData):
    """4 x 4 x 3 x 2 factor grid whose images carry their factor levels in the first pixels."""

    name = "grid"
    factor_names = ["a", "b", "c", "d"]
    factor_sizes = [4, 4, 3, 2]

    def images_from_factors(self, factors):
        images = np.zeros((len(factors), 3, 64, 64), np.uint8)
        images[:, 0, 0, :4] = factors
        return images


GRID = Grid()
CHANCE = 1 / GRID.num_factors


def true_factors(images):
    return images[:, 0, 0, :4].astype(float)


def mixed(images):
    """Factors a and b (same number of levels) mixed into two dims; c and d kept."""
    f = true_factors(images)
    return np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2], f[:, 3]], axis=1)


def noise(seed=1):
    rng = np.random.default_rng(seed)
    return lambda images: rng.normal(size=(len(images), 4))


# Small point counts: the whole file runs in seconds; the scores are what each metric is named for.
METRICS = {
    "beta_vae": (beta_vae_score, dict(num_train=300, num_eval=200), "eval_accuracy"),
    "factor_vae": (factor_vae_score, dict(num_train=300, num_eval=200, num_variance_estimate=1000), "eval_accuracy"),
    "mig": (mig_score, dict(num_train=2000), "mig"),
    "dci": (dci_score, dict(num_train=600, num_test=300, num_trees=10), "disentanglement"),
    "sap": (sap_score, dict(num_train=1000, num_test=500), "sap"),
}
AT_CHANCE = {"beta_vae": CHANCE, "factor_vae": CHANCE, "mig": 0.0, "dci": 0.0, "sap": 0.0}


def score(name, representation, seed=0):
    fn, kwargs, key = METRICS[name]
    return fn(GRID, representation, seed=seed, **kwargs)[key]


@pytest.fixture(scope="module")
def scores():
    return {name: {"true": score(name, true_factors), "noise": score(name, noise()), "mixed": score(name, mixed)}
            for name in METRICS}


@pytest.mark.parametrize("name", METRICS)
def test_true_factors_score_high_and_noise_at_chance(name, scores):
    s = scores[name]
    floor = 0.3 if name == "sap" else 0.95  # SAP: a 1-d linear SVM cannot separate middle levels one-vs-rest
    assert floor <= s["true"] <= 1 + 1e-9, s
    assert abs(s["noise"] - AT_CHANCE[name]) < (0.1 if name in ("beta_vae", "factor_vae") else 0.05), s


@pytest.mark.parametrize("name", METRICS)
def test_mixing_two_factors_scores_in_between(name, scores):
    s = scores[name]
    assert s["noise"] + 0.1 < s["mixed"] < s["true"] - 0.1, s


@pytest.mark.parametrize("name", METRICS)
def test_permuting_dims_keeps_the_score(name):
    reversed_dims = lambda images: mixed(images)[:, ::-1]
    assert score(name, reversed_dims) == pytest.approx(score(name, mixed), abs=0.01)


@pytest.mark.parametrize("name", METRICS)
def test_fixed_seed_is_deterministic(name):
    fn, kwargs, _ = METRICS[name]
    first = fn(GRID, noise(5), seed=3, **kwargs)
    assert fn(GRID, noise(5), seed=3, **kwargs) == first
    assert fn(GRID, noise(5), seed=4, **kwargs) != first


def test_factor_vae_prunes_collapsed_dims():
    with_dead = lambda images: np.concatenate([true_factors(images), np.full((len(images), 2), 0.3)], axis=1)
    out = factor_vae_score(GRID, with_dead, num_train=100, num_eval=50, num_variance_estimate=500)
    assert out["num_active_dims"] == 4 and out["eval_accuracy"] == 1.0
    zeros = lambda images: np.zeros((len(images), 3))
    dead = factor_vae_score(GRID, zeros, num_train=10, num_eval=10, num_variance_estimate=100)
    assert dead == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_histogram_discretize_matches_disentanglement_lib():
    # np.digitize against the histogram's left edges: bins 1..num_bins, the maximum in the last bin
    codes = np.array([[0.0, 5.0], [0.4, 5.0], [0.6, 7.0], [1.0, 9.0]])
    assert histogram_discretize(codes, num_bins=2).tolist() == [[1, 1], [1, 1], [2, 2], [2, 2]]


def test_dci_scores_by_hand():
    # rows are code dims, columns factors
    assert disentanglement(np.eye(3)) == pytest.approx(1) and completeness(np.eye(3)) == pytest.approx(1)
    assert disentanglement(np.ones((3, 3))) == pytest.approx(0, abs=1e-9)
    one_code_for_both = np.array([[0.5, 0.5], [0.0, 0.0]])  # each factor in one code, that code shared
    assert disentanglement(one_code_for_both) == pytest.approx(0, abs=1e-6)
    assert completeness(one_code_for_both) == pytest.approx(1, abs=1e-6)


def test_dci_fits_its_factors_side_by_side_with_the_results_of_one_after_another():
    rng = np.random.default_rng(0)
    factors = rng.integers(0, 3, (300, 3))
    codes = np.concatenate([factors + rng.normal(0, 0.3, factors.shape), rng.normal(size=(300, 2))], axis=1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = importance_matrix(codes[:200], factors[:200], codes[200:], factors[200:], num_trees=5)
        torch.set_num_threads(3)
        three = importance_matrix(codes[:200], factors[:200], codes[200:], factors[200:], num_trees=5)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(one[0], three[0]) and one[1:] == three[1:]
    assert one[0].shape == (5, 3) and np.argmax(one[0][:3], axis=0).tolist() == [0, 1, 2]


def test_cached_representation_encodes_each_cell_once():
    seen = []

    def counting(images):
        seen.append(len(images))
        return mixed(images)

    cached = CachedRepresentation(GRID, counting)
    factors = GRID.sample_factors(500, np.random.default_rng(0))
    codes = cached.codes(factors)
    assert np.array_equal(codes, mixed(GRID.images_from_factors(factors)))
    first = sum(seen)
    assert first == len(np.unique(GRID.factors_to_index(factors))) <= 96
    again = cached.codes(GRID.sample_factors(500, np.random.default_rng(1)))
    assert sum(seen) - first == cached.cached - first and cached.cached <= 96
    assert again.shape == (500, 4)
    assert score("mig", cached) == score("mig", mixed)


# --- likelihood ------------------------------------------------------------------------------------

def test_iwae_bounds_converge_to_a_known_marginal():
    # z ~ N(0, 1), x | z ~ N(z, s^2): log p(x) = log N(x; 0, 1 + s^2). q is deliberately off the posterior.
    s2 = 0.25
    x = torch.tensor([-1.0, 0.3, 2.0], dtype=torch.float64)
    mu, logvar = 0.6 * x, torch.full((3, 1), math.log(0.5), dtype=torch.float64)
    log_lik = lambda z: -0.5 * ((x[:, None] - z[..., 0]) ** 2 / s2 + math.log(2 * math.pi * s2))
    g = torch.Generator().manual_seed(0)
    bounds = importance_bounds(mu[:, None], logvar, log_lik, 50_000, g, chunk=10_000)
    exact = (-0.5 * (x ** 2 / (1 + s2) + math.log(2 * math.pi * (1 + s2)))).numpy()
    # iwae(k) averages disjoint groups of k samples: an estimate of E[IWAE_k], which rises with k to log p(x)
    iwae = {k: bounds.iwae(k) for k in (1, 10, 100, 50_000)}
    assert np.all(bounds.elbo < exact - 0.2)
    assert np.all(bounds.elbo < iwae[10]) and np.all(iwae[10] < iwae[100])
    assert np.abs(iwae[50_000] - exact).max() < 0.01  # Monte Carlo noise of one 50,000-sample estimate
    assert np.abs(iwae[1] - bounds.elbo).max() < 0.02  # E[IWAE_1] = ELBO
    # the ELBO in closed form: E_q log p(x|z) - KL(q || p)
    m, v = mu.numpy(), 0.5
    closed = (-0.5 * (((x.numpy() - m) ** 2 + v) / s2 + math.log(2 * math.pi * s2))
              - 0.5 * (m ** 2 + v - 1 - math.log(v)))
    assert np.abs(bounds.elbo - closed).max() < 0.01


def test_model_bounds_pair_each_image_with_its_own_samples():
    torch.manual_seed(0)
    model = VAE(TINY_ARCH).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 3, 64, 64), dtype=np.uint8)
    images[1] = 255 - images[1]
    bounds = model_bounds(model, images, "gaussian", num_samples=3, seed=7)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        x = torch.from_numpy(images).float() / 255
        mu, logvar = model.encode(x)
        eps = torch.randn((2, 3, TINY_ARCH.latent_dim), generator=g)
        for i in range(2):
            z = mu[i] + torch.exp(0.5 * logvar[i]) * eps[i]
            ll = log_likelihood(model.decode_logits(z), x[i].expand(3, -1, -1, -1), "gaussian")
            log_w = ll - 0.5 * (z ** 2).sum(1) + 0.5 * (eps[i] ** 2 + logvar[i]).sum(1)
            assert np.allclose(bounds.log_weights[i], log_w.numpy(), rtol=1e-5, atol=1e-2)


def test_log_likelihoods_and_bits_per_dim_by_hand():
    logits, x = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])  # decoder mean 0.5 at both pixels
    assert log_likelihood(logits, x, "bernoulli").item() == pytest.approx(2 * math.log(0.5))
    assert log_likelihood(logits, x, "gaussian").item() == pytest.approx(2 * (-0.25 - 0.5 * math.log(math.pi)))
    assert log_likelihood(logits, x, "laplace").item() == pytest.approx(2 * (-0.5 - math.log(2)))
    d = 12288
    assert bits_per_dim(-d * math.log(2), d) == pytest.approx(1.0)  # a fair coin per binary pixel
    # the uniform density on [0, 1]^d (log p = 0) puts 1/255 on each 8-bit level: log2(255) bits
    assert bits_per_dim(0.0, d, 1 / 255) == pytest.approx(math.log2(255))
    bounds = Bounds(np.zeros(1), np.log([[1.0, 3.0, 2.0, 6.0]]))
    assert bounds.iwae().item() == pytest.approx(math.log(3))  # log of the mean weight
    assert bounds.iwae(2).item() == pytest.approx((math.log(2) + math.log(4)) / 2)  # mean over two groups of 2


def test_density_kind_follows_decoder_and_data():
    binary = np.array([0, 255], np.uint8).repeat(6).reshape(1, 3, 2, 2)
    grey = binary // 2
    assert density_kind("bernoulli", binary) == "discrete"
    assert density_kind("bernoulli", grey) == "unnormalised"
    assert density_kind("gaussian", grey) == density_kind("laplace", binary) == "continuous"


def test_the_channels_last_inference_layout_changes_codes_and_images_only_by_float_rounding():
    torch.manual_seed(0)
    model = VAE(TINY_ARCH).eval()
    images = GRID.images_from_factors(GRID.sample_factors(5, np.random.default_rng(0)))
    z = torch.randn(5, TINY_ARCH.latent_dim)
    with torch.inference_mode():
        before, decoded = encoder_means(model)(images), model.decode(z)
        model = inference_layout(model)
        assert model.encoder.conv[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert np.allclose(encoder_means(model)(images), before, atol=1e-5)
        assert torch.allclose(model.decode(z), decoded, atol=1e-5)


def test_freed_memory_is_kept_for_reuse_where_malloc_is_glibcs():
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert reuse_freed_memory() is glibc


def test_encoder_means_batches_consistently():
    torch.manual_seed(0)
    model = VAE(TINY_ARCH).eval()
    images = GRID.images_from_factors(GRID.sample_factors(5, np.random.default_rng(0)))
    assert np.allclose(encoder_means(model, batch_size=2)(images), encoder_means(model)(images), atol=1e-5)


# --- probes ----------------------------------------------------------------------------------------

def test_probes_find_the_informative_dim_and_its_sign():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(2000, 6))
    attrs = np.stack([codes[:, 3] > 0.2, codes[:, 1] < 0, rng.random(2000) < 0.5, np.zeros(2000, bool)], axis=1)
    out = attribute_probes(codes[:1500], attrs[:1500], codes[1500:], attrs[1500:], ["up", "down", "coin", "never"])
    up, down, coin, never = out["attributes"]
    assert up["auc"] > 0.98 and (up["best_dim"], up["best_dim_sign"]) == (3, 1) and up["best_dim_auc"] > 0.98
    assert (down["best_dim"], down["best_dim_sign"]) == (1, -1) and down["best_dim_auc"] > 0.98
    assert 0.4 < coin["auc"] < 0.6
    assert "skipped" in never and "auc" not in never
    assert out["mean_auc"] == pytest.approx(np.mean([up["auc"], down["auc"], coin["auc"]]))


def test_column_aucs_from_ranks_equal_roc_auc_score_ties_included():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 4))
    codes[:, 1] = np.round(codes[:, 1])  # ties, counted as half
    codes[:, 2] = 0.0  # all tied: 0.5
    labels = rng.random(500) < 0.1
    expected = [roc_auc_score(labels, codes[:, d]) for d in range(4)]
    assert column_aucs(rankdata(codes, axis=0), labels) == pytest.approx(expected, abs=1e-12)


def test_identity_split_drops_people_seen_in_training():
    assert identity_disjoint(None, np.arange(3)) is None
    assert identity_disjoint(np.array([1, 2]), np.array([2, 3, 1, 4])).tolist() == [False, True, False, True]
