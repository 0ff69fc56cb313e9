"""DIP-VAE-I and DIP-VAE-II (Kumar et al. 2018): the ELBO plus a penalty pulling a covariance of the codes to the
identity (core.objectives.dip). Two families, not one with a switch: the paper names, tabulates and tunes them as
two models (I on Cov[μ(x)] with λ_d = 10 λ_od, II on Cov_q[z] with λ_d = λ_od), so each gets its own defaults and
its own line in run lists and metric tables."""
from core.models.family import FAMILIES, Family

SETTINGS = ("loss.dip_lambda_od", "loss.dip_lambda_d")
REFERENCE = "Kumar et al. 2018, Variational Inference of Disentangled Latent Concepts from Unlabeled Observations"

FAMILIES.register("dip-vae-1", Family(
    order=12, name="dip-vae-1", title="DIP-VAE-I",
    summary="the ELBO + λ_od·Σ off-diagonal² + λ_d·Σ (diagonal − 1)² of Cov[μ(x)] over the batch",
    reference=REFERENCE, defaults={"loss.beta": 1.0, "loss.dip_lambda_d": 100.0}, settings=SETTINGS,
    regularisers=("dip-i",)))

FAMILIES.register("dip-vae-2", Family(
    order=13, name="dip-vae-2", title="DIP-VAE-II",
    summary="the ELBO + the same penalty on Cov_q[z] = Cov[μ(x)] + E[diag σ²(x)], with λ_d = λ_od",
    reference=REFERENCE, defaults={"loss.beta": 1.0, "loss.dip_lambda_d": 10.0}, settings=SETTINGS,
    regularisers=("dip-ii",)))
