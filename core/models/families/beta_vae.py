"""β-VAE (Higgins et al. 2017): the KL weighted by β > 1 for more independent, blurrier codes."""
from core.models.family import FAMILIES, Family

FAMILIES.register("beta-vae", Family(
    order=1, name="beta-vae", title="β-VAE", summary="the KL term weighted by β > 1, warmed up linearly",
    reference="Higgins et al. 2017, β-VAE: Learning Basic Visual Concepts with a Constrained Variational Framework",
    # the warm-up keeps a large β from collapsing every dim in the first steps
    defaults={"loss.beta": 4.0, "loss.warmup_steps": 500},
    settings=("loss.beta", "loss.warmup_steps")))
