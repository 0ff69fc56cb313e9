import math

import pytest
import torch

from core.config import LossConfig
from core.objectives.schedules import LinearWarmup
from core.objectives.objective import Objective
from core.objectives.clamp import clamp_loss
from core.objectives.kl import kl_per_dim
from core.objectives.likelihoods import reconstruction
from core.models.modvae import Clamp
from core.models.vae import Output

X = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])  # two 1x2x2 "images"


def test_reconstruction_is_summed_over_pixels_and_averaged_over_batch():
    zero = torch.zeros_like(X)  # sigmoid(0) = 0.5 everywhere
    assert reconstruction(zero, X, "bernoulli").item() == pytest.approx(4 * math.log(2))
    assert reconstruction(zero, X, "gaussian").item() == pytest.approx(4 * 0.25)
    assert reconstruction(zero, X, "laplace").item() == pytest.approx(4 * 0.5)
    # a confident, correct first image and the 0.5 guess on the second: mean of the two per-image sums
    logits = torch.cat([(X[:1] * 2 - 1) * 20, torch.zeros_like(X[1:])])
    assert reconstruction(logits, X, "laplace").item() == pytest.approx((0 + 2) / 2, abs=1e-6)


def test_kl_per_dim_matches_closed_form():
    mu = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, math.log(2.0)]])
    kl = kl_per_dim(mu, logvar)
    assert kl[0].item() == pytest.approx((0.5 * 1 + 0.5 * 9) / 2)
    assert kl[1].item() == pytest.approx(0.5 * (2 - 1 - math.log(2)))
    assert kl_per_dim(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max().item() == 0


def _output(mu, x=X):
    return Output(torch.zeros_like(x), mu, torch.zeros_like(mu), mu)


def test_beta_warmup_and_capacity():
    mu = torch.tensor([[2.0], [0.0]])  # KL = (0.5*4 + 0) / 2 = 1 nat
    recon = 4 * math.log(2)
    warm = Objective(LossConfig(beta=4.0, warmup_steps=10))
    assert warm(_output(mu), X, 0)["loss"].item() == pytest.approx(recon)
    assert warm(_output(mu), X, 5)["loss"].item() == pytest.approx(recon + 2.0)
    assert warm(_output(mu), X, 50)["loss"].item() == pytest.approx(recon + 4.0)
    cap = Objective(LossConfig(beta=1.0, warmup_steps=0, capacity_max=5.0, capacity_steps=10, capacity_gamma=10.0))
    assert cap(_output(mu), X, 4)["loss"].item() == pytest.approx(recon + 10 * abs(1 - 2))
    assert LinearWarmup(3.0, 0)(0) == 3.0


def test_clamp_loss_pulls_masked_dims_to_their_group_mean():
    mu = torch.tensor([[1.0, 5.0], [3.0, 7.0], [10.0, 0.0], [10.0, 4.0]])
    clamp = Clamp(torch.tensor([[True, False], [True, False], [True, False], [False, False]]), group_size=2)
    # group 0, dim 0: mean 2 -> (1-2)^2 + (3-2)^2; group 1, dim 0: both 10 -> zero. Summed over dims, mean over batch.
    assert clamp_loss(mu, clamp).item() == pytest.approx(2 / 4)
    objective = Objective(LossConfig(beta=1.0, warmup_steps=0, clamp_weight=3.0), ("clamp",))
    x = X.repeat(2, 1, 1, 1)
    terms = objective(_output(mu, x), x, 0, clamp)
    assert terms["loss"].item() == pytest.approx(terms["recon"].item() + terms["kl"].item() + 1.5, rel=1e-5)


def test_clamp_loss_uses_the_group_mean_the_forward_pass_computed():
    mu = torch.tensor([[1.0], [3.0]], requires_grad=True)
    clamp = Clamp(torch.ones(2, 1, dtype=torch.bool), group_size=2)
    given = torch.tensor([[0.0], [0.0]])  # not mu's group mean (2): proves the given one is used, not recomputed
    assert clamp_loss(mu, clamp, given).item() == pytest.approx((1 + 9) / 2)
    out = Output(torch.zeros(2, 1, 2, 2), mu, torch.zeros_like(mu), mu, group_mean=clamp.group_mean(mu))
    terms = Objective(LossConfig(beta=1.0, warmup_steps=0, clamp_weight=1.0), ("clamp",))(out, X, 0, clamp)
    assert terms["clamp"].item() == pytest.approx(1.0)  # (1-2)^2 + (3-2)^2, mean over 2
    terms["clamp"].backward()
    assert mu.grad.tolist() == [[-1.0], [1.0]]  # the target is detached: d/dmu of (mu - 2)^2 / 2
