"""The conditional VAE (Sohn et al. 2015): encoder and decoder both see the data set's binary attributes y
(core.models.cvae); an attribute is edited by flipping its condition."""
from core.models.family import FAMILIES, Family

FAMILIES.register("cvae", Family(
    order=3, name="cvae", title="CVAE",
    summary="encoder and decoder conditioned on the data set's binary attributes; edit a face by flipping one",
    reference="Sohn et al. 2015, Learning Structured Output Representation using Deep Conditional Generative Models",
    defaults={"loss.beta": 1.0}, network="core.models.cvae:CVAE", conditional=True))
