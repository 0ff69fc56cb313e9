"""The plain VAE (Kingma & Welling 2014): reconstruction + KL, beta = 1."""
from core.models.family import FAMILIES, Family

FAMILIES.register("vae", Family(
    order=0, name="vae", title="VAE", summary="the ELBO: reconstruction + KL to the N(0, I) prior",
    reference="Kingma & Welling 2014, Auto-Encoding Variational Bayes",
    defaults={"loss.beta": 1.0}))
