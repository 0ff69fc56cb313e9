"""The regularisers of β-TCVAE, FactorVAE and DIP-VAE on hand-made codes, the Objective that composes them, and the
checkpointing of a regulariser's own network and optimizer."""
import math

import pytest
import torch

from core.config import LossConfig, RunConfig
from core.models.vae import Output
from core.objectives.dip import covariance, dip_penalty
from core.objectives.factor import Discriminator, permute_dims
from core.objectives.kl import kl_per_dim
from core.objectives.objective import Objective
from core.objectives.regulariser import REGULARISERS, Context
from core.objectives.tc import gaussian_log_density, log_weights, tc_decomposition
from core.runs.folder import Run


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: one thread is fastest, and on a loaded machine two threads are many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SIGMA = 0.3  # posterior std of the hand-made codes: wide enough for the minibatch estimates of q(z) to be smooth


def codes(n: int, rho: float, seed: int = 0, sigma: float = SIGMA):
    """Posteriors N(mu, sigma^2 I) of n "images" whose means are standard normal in 2-d with correlation rho, and
    one code z sampled from each. q(z) is close to N(0, [[1 + s2, rho], [rho, 1 + s2]]), s2 = sigma^2."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, 2, generator=g)
    mu[:, 1] = rho * mu[:, 0] + math.sqrt(1 - rho ** 2) * mu[:, 1]
    logvar = torch.full((n, 2), 2 * math.log(sigma))
    return mu + sigma * torch.randn(n, 2, generator=g), mu, logvar


def gaussian_tc(rho: float, sigma: float = SIGMA) -> float:
    """The total correlation of a 2-d Gaussian with unit-variance means of correlation rho, plus sigma^2 noise."""
    r = rho / (1 + sigma ** 2)
    return -0.5 * math.log(1 - r ** 2)


def test_total_correlation_is_zero_for_independent_codes_and_the_gaussian_value_for_correlated_ones():
    independent, correlated = codes(1000, 0.0), codes(1000, 0.95, seed=1)
    # minibatch-stratified sampling estimates q(z) without bias: near the true values, N = batch or far larger
    for n in (1000, 10 ** 6):
        assert abs(tc_decomposition(*independent, n, "mss")["tc"].item()) < 0.05
        assert tc_decomposition(*correlated, n, "mss")["tc"].item() == pytest.approx(gaussian_tc(0.95), abs=0.05)
    # minibatch-weighted sampling is the paper's lower bound on log q(z): its weights sum to 1/N, which shifts
    # log q(z) and each log q(z_d) by about -log N, so the TC by (D - 1) log N; the differences are right
    n = 10 ** 6
    mws = [tc_decomposition(*c, n, "mws")["tc"].item() for c in (independent, correlated)]
    assert mws[0] == pytest.approx(math.log(n), abs=0.05)
    assert mws[1] - mws[0] == pytest.approx(gaussian_tc(0.95), abs=0.05)


@pytest.mark.parametrize("sampling", ["mws", "mss"])
def test_mi_tc_and_dim_kl_sum_to_the_kl_of_the_same_samples(sampling):
    z, mu, logvar = codes(1000, 0.5)
    terms = tc_decomposition(z, mu, logvar, 50_000, sampling)
    log_q = gaussian_log_density(z, mu, logvar).sum(1)
    log_p = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    total = terms["mi"] + terms["tc"] + terms["dim_kl"]
    assert total.item() == pytest.approx((log_q - log_p).mean().item(), abs=1e-4)  # the identity, term by term
    assert total.item() == pytest.approx(kl_per_dim(mu, logvar).sum().item(), abs=0.15)  # the KL, up to sampling


def test_stratified_weights_sum_to_one_and_give_the_own_image_one_nth():
    w = log_weights(5, 100, "mss").double().exp()
    torch.testing.assert_close(w.sum(1), torch.ones(5, dtype=torch.float64))
    assert torch.diagonal(w).tolist() == pytest.approx([1 / 100] * 5)
    assert sorted(w[0].tolist()) == pytest.approx(sorted([1 / 100, (100 - 4) / 400, 1 / 4, 1 / 4, 1 / 4]))
    assert log_weights(5, 100, "mws").exp()[0, 0].item() == pytest.approx(1 / 500)
    assert log_weights(1, 100, "mss").shape == (1, 1)  # a batch of one falls back to mws
    with pytest.raises(ValueError, match="use one of mss, mws"):
        log_weights(5, 100, "iid")


def test_dip_penalty_is_zero_for_the_identity_and_positive_otherwise():
    assert {k: v.item() for k, v in dip_penalty(torch.eye(3)).items()} == {"dip_od": 0.0, "dip_d": 0.0}
    off = dip_penalty(torch.tensor([[1.0, 0.5], [0.5, 1.0]]))
    assert off["dip_od"].item() == pytest.approx(0.5) and off["dip_d"].item() == 0
    scaled = dip_penalty(torch.diag(torch.tensor([2.0, 0.5])))
    assert scaled["dip_od"].item() == 0 and scaled["dip_d"].item() == pytest.approx(1.25)
    v = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    torch.testing.assert_close(covariance(v), torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))


def test_dip_i_uses_the_means_and_dip_ii_adds_the_posterior_variances():
    mu = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])  # Cov[mu] = diag(4, 0)
    out = Output(torch.zeros(2, 3, 4, 4), mu, torch.zeros_like(mu), mu)  # sigma^2 = 1
    one = REGULARISERS["dip-i"].make(LossConfig(), 2, 10)(out, Context())
    two = REGULARISERS["dip-ii"].make(LossConfig(), 2, 10)(out, Context())
    assert one["dip_d"].item() == pytest.approx(9 + 1)  # diag(4, 0): (4 - 1)^2 + (0 - 1)^2
    assert two["dip_d"].item() == pytest.approx(16 + 0)  # diag(5, 1): (5 - 1)^2 + (1 - 1)^2


def test_permuted_dims_keep_each_dims_values_and_lose_the_correlation():
    z = codes(2000, 0.95)[0]
    shuffled = permute_dims(z, torch.Generator().manual_seed(0))
    for d in range(2):
        torch.testing.assert_close(shuffled[:, d].sort().values, z[:, d].sort().values)
    assert torch.corrcoef(z.T)[0, 1] > 0.8 and abs(torch.corrcoef(shuffled.T)[0, 1]) < 0.1
    torch.testing.assert_close(permute_dims(z, torch.Generator().manual_seed(0)), shuffled)  # a function of the seed


def test_the_discriminator_trains_alternately_and_estimates_the_total_correlation():
    torch.manual_seed(0)
    disc = Discriminator(2, width=64, layers=2, lr=1e-3)
    z, mu, logvar = codes(512, 0.95)
    out = Output(torch.zeros(512, 3, 4, 4), mu, logvar, z)
    before = [p.detach().clone() for p in disc.parameters()]
    g = torch.Generator().manual_seed(0)
    losses = [disc.update(out, Context(generator=g))["disc_loss"].item() for _ in range(150)]
    assert all(not torch.equal(a, b) for a, b in zip(before, disc.parameters()))  # every weight moved
    assert disc.optimizer.state and losses[0] == pytest.approx(math.log(2), abs=0.1) and losses[-1] < 0.6
    assert disc(out, Context())["tc"].item() > 0.3  # correlated codes: a clearly positive TC estimate
    # the VAE's term is differentiable w.r.t. the codes, and the VAE's backward leaves grads that update() drops
    zg = z.clone().requires_grad_()
    disc(Output(out.logits, mu, logvar, zg), Context())["tc"].backward()
    assert zg.grad.abs().sum() > 0
    disc.update(out, Context(generator=g))  # runs with those stale grads on its weights: zero_grad comes first


def _out(mu: torch.Tensor) -> Output:
    return Output(torch.zeros(len(mu), 1, 2, 2), mu, torch.zeros_like(mu), mu)


@pytest.mark.parametrize("model", ["beta-tcvae", "factor-vae", "dip-vae-1", "dip-vae-2"])
def test_the_objective_adds_each_named_term_times_its_weight_and_logs_every_one(model):
    config = RunConfig(name="x", model=model)
    family = config.family
    torch.manual_seed(0)
    objective = Objective(config.loss, family.regularisers, latent_dim=3, dataset_size=100)
    mu = torch.randn(8, 3)
    x = torch.rand(8, 1, 2, 2)
    terms = objective(_out(mu), x, 1000, generator=torch.Generator().manual_seed(0))
    expected = terms["recon"] + config.loss.beta * terms["kl"]
    for name in family.regularisers:
        for term, weight in REGULARISERS[name].weights.items():
            expected = expected + getattr(config.loss, weight) * terms[term]
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    logged = {**terms, **objective.update(_out(mu), generator=torch.Generator().manual_seed(0))}
    assert set(objective.logged) <= set(logged) and objective.logged
    assert all(torch.isfinite(logged[k]) for k in objective.logged)


def test_beta_tcvae_replaces_the_kl_and_dip_families_take_the_papers_weights():
    tc, one, two = (RunConfig(name="x", model=m).loss for m in ("beta-tcvae", "dip-vae-1", "dip-vae-2"))
    assert tc.beta == 0 and (tc.tc_alpha, tc.tc_beta, tc.tc_gamma) == (1, 6, 1)
    assert (one.dip_lambda_od, one.dip_lambda_d) == (10, 100) and (two.dip_lambda_od, two.dip_lambda_d) == (10, 10)
    assert RunConfig(name="x", model="vae").loss.dip_lambda_d == 100  # a family that sets none: the plain default
    explicit = RunConfig.from_options({"model": "dip-vae-2", "loss.dip_lambda_d": 3.0})
    assert explicit.loss.dip_lambda_d == 3.0 and "--dip-lambda-d 3" in explicit.command
    with pytest.raises(ValueError, match="dip_lambda_d"):
        Objective(LossConfig(beta=1.0, warmup_steps=0), ("dip-i",))  # unset and not through RunConfig


def test_a_regularisers_network_and_optimizer_round_trip_through_the_checkpoint(tmp_path):
    config = RunConfig(name="ck", model="factor-vae", arch=RunConfig(name="x").arch)
    run = Run(tmp_path / "ck")
    run.path.mkdir()
    run.write_config(config)
    model = config.family.build(config.arch)
    torch.manual_seed(0)
    objective = Objective(config.loss, config.family.regularisers, config.arch.latent_dim, 100)
    out = _out(torch.randn(16, config.arch.latent_dim))
    objective.update(out, generator=torch.Generator().manual_seed(0))
    run.save_checkpoint(model, None, 1, extra=objective.modules, extra_optimizers=objective.optimizers)

    fresh = Objective(config.loss, config.family.regularisers, config.arch.latent_dim, 100)
    assert run.load_extra(fresh.modules, fresh.optimizers) == []
    for a, b in zip(objective.modules.parameters(), fresh.modules.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    saved, loaded = objective.optimizers["factor-discriminator"], fresh.optimizers["factor-discriminator"]
    for a, b in zip(saved.state.values(), loaded.state.values()):
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], rtol=0, atol=0)
    # a checkpoint saved without them (older, or an export) still loads; the names come back as missing
    run.save_checkpoint(model, None, 1)
    assert run.load_extra(fresh.modules, fresh.optimizers) == ["factor-discriminator"]
    assert run.load_model() is not None
