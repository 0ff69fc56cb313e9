"""β-TCVAE (Chen et al. 2018): the ELBO's KL replaced by its three parts, index-code mutual information, total
correlation and dimension-wise KL, weighted α, β, γ (core.objectives.tc); β > 1 penalises only the total correlation."""
from core.models.family import FAMILIES, Family

FAMILIES.register("beta-tcvae", Family(
    order=10, name="beta-tcvae", title="β-TCVAE",
    summary="the KL split into α·MI + β·TC + γ·dim-KL (1, 6, 1; q(z) from the minibatch), which replaces the plain "
            "KL term (--beta 0)",
    reference="Chen et al. 2018, Isolating Sources of Disentanglement in Variational Autoencoders",
    # the three terms sum to the KL, so the plain KL term is off; a --beta > 0 adds it on top
    defaults={"loss.beta": 0.0},
    settings=("loss.tc_alpha", "loss.tc_beta", "loss.tc_gamma", "loss.tc_sampling"),
    regularisers=("tc-decomposition",)))
