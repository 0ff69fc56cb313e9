"""U-VITAE (Detlefsen & Hauberg 2019): one encoder gives an appearance code and a perspective code; the decoder's
image is warped by the affine transformation the perspective code decodes to (core.models.vitae.UVITAE)."""
from core.models.family import FAMILIES, Family

FAMILIES.register("u-vitae", Family(
    order=20, name="u-vitae", title="U-VITAE",
    summary="one encoder gives appearance z_A and perspective z_P (the last --perspective-dim dims); the decoded "
            "appearance is warped by the affine map expm(γ(z_P)). The paper tabulates on dSprites: ELBO −55.25, "
            "DCI D 0.22",
    reference="Detlefsen & Hauberg 2019, Explicit Disentanglement of Appearance and Perspective in Generative Models",
    defaults={"loss.beta": 1.0, "arch.perspective_dim": 6},
    settings=("arch.perspective_dim",),
    network="core.models.vitae:UVITAE"))
