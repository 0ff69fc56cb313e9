"""The calibrated (σ-VAE) and SSIM + L1 reconstruction terms, on hand-checkable cases."""
import math

import pytest
import torch
import torch.nn.functional as F

from core.metrics.likelihood import log_likelihood
from core.objectives.likelihoods import LIKELIHOOD_TERMS, _box_mean, reconstruction, ssim


def gaussian_nll(mean, x, variance):
    d = x[0].numel()
    return 0.5 * (((mean - x) ** 2).flatten(1).sum(1) / variance + d * torch.log(2 * math.pi * variance))


def test_the_calibrated_variance_is_the_per_image_mse_optimum():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8)
    logits = torch.randn(3, 3, 8, 8)
    mean = torch.sigmoid(logits)
    mse = ((mean - x) ** 2).flatten(1).mean(1)
    calibrated = LIKELIHOOD_TERMS["calibrated"].nll(logits, x)
    assert torch.allclose(calibrated, gaussian_nll(mean, x, mse), rtol=1e-5)
    for factor in (0.5, 0.9, 1.1, 2.0):  # any other variance fits worse
        assert (gaussian_nll(mean, x, mse * factor) > calibrated).all()


def test_a_perfect_calibrated_reconstruction_is_bounded_not_infinite():
    x = torch.full((2, 3, 4, 4), 0.25)
    logits = torch.logit(x)
    value = reconstruction(logits, x, "calibrated")
    assert torch.isfinite(value) and value < 0


def test_ssim_is_one_for_identical_images_and_lower_for_different_ones():
    torch.manual_seed(1)
    a = torch.rand(2, 3, 16, 16)
    assert torch.allclose(ssim(a, a), torch.ones_like(a), atol=1e-4)
    assert ssim(a, torch.rand(2, 3, 16, 16)).mean() < 0.5
    perfect = reconstruction(torch.logit(a.clamp(1e-4, 1 - 1e-4)), a, "ssim-l1")
    assert perfect.item() == pytest.approx(0, abs=0.05)
    assert reconstruction(torch.zeros_like(a), a, "ssim-l1") > 10 * max(perfect.item(), 1e-3)


def test_ssims_window_means_are_avg_pools_with_edges_clipped():
    for shape in [(2, 3, 64, 64), (1, 1, 5, 9)]:  # a window wider than the image too
        t = torch.rand(*shape)
        assert torch.allclose(_box_mean(t, 7), F.avg_pool2d(t, 7, 1, 3, count_include_pad=False), atol=1e-5)


def test_ssim_l1_is_not_a_likelihood_and_says_so():
    assert LIKELIHOOD_TERMS["ssim-l1"].log_prob is None
    with pytest.raises(ValueError, match="not a likelihood"):
        log_likelihood(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), "ssim-l1")


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian", "laplace", "calibrated"])
def test_the_exact_log_likelihood_differs_from_the_training_term_by_a_constant(kind):
    torch.manual_seed(2)
    x = torch.rand(4, 3, 8, 8).round() if kind == "bernoulli" else torch.rand(4, 3, 8, 8)
    a, b = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    term = LIKELIHOOD_TERMS[kind]
    gap_a = term.log_prob(a, x) + term.nll(a, x)
    gap_b = term.log_prob(b, x) + term.nll(b, x)
    assert torch.allclose(gap_a, gap_b, atol=1e-3)
