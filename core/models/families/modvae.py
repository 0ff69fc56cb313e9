"""ModVAE: DC-IGN training (Kulkarni et al. 2015) on groups where one factor varies; the other factors' dims are
clamped to the group mean (core.models.modvae) and a regulariser pulls their encoder means there."""
from core.models.family import FAMILIES, Family

FAMILIES.register("modvae", Family(
    order=2, name="modvae", title="ModVAE",
    summary="one latent block per factor; groups vary one factor, the other blocks are clamped to the group mean",
    reference="Kulkarni et al. 2015, Deep Convolutional Inverse Graphics Network",
    defaults={"loss.beta": 1.0},
    settings=("modvae.dims_per_factor", "modvae.group_size", "loss.clamp_weight"),
    grouped=True, regularisers=("clamp",)))
