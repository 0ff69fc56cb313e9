"""FactorVAE (Kim & Mnih 2018): the ELBO plus γ times the total correlation of q(z), estimated by a discriminator
trained alternately to tell codes from dimension-permuted codes (core.objectives.factor)."""
from core.models.family import FAMILIES, Family

FAMILIES.register("factor-vae", Family(
    order=11, name="factor-vae", title="FactorVAE",
    summary="the ELBO + γ·TC (γ = 10), TC estimated by an MLP discriminator of codes vs dimension-permuted codes, "
            "trained alternately with its own Adam",
    reference="Kim & Mnih 2018, Disentangling by Factorising",
    defaults={"loss.beta": 1.0},
    settings=("loss.factor_gamma", "loss.factor_disc_width", "loss.factor_disc_layers", "loss.factor_disc_lr"),
    regularisers=("factor-discriminator",)))
