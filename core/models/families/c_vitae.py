"""C-VITAE (Detlefsen & Hauberg 2019): a perspective encoder infers z_P; the appearance encoder sees the input
un-warped by it, so appearance is encoded in a canonical pose (core.models.vitae.CVITAE)."""
from core.models.family import FAMILIES, Family

FAMILIES.register("c-vitae", Family(
    order=21, name="c-vitae", title="C-VITAE",
    summary="a perspective encoder infers z_P (the last --perspective-dim dims); the appearance encoder sees x "
            "un-warped by expm(−γ(z_P)), so z_A codes a canonical pose. The paper tabulates on dSprites: ELBO "
            "−68.26, DCI D 0.38",
    reference="Detlefsen & Hauberg 2019, Explicit Disentanglement of Appearance and Perspective in Generative Models",
    defaults={"loss.beta": 1.0, "arch.perspective_dim": 6},
    settings=("arch.perspective_dim",),
    network="core.models.vitae:CVITAE"))
