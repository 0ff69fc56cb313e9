"""Evaluation of trained runs: disentanglement metrics on ground-truth data sets (definitions and defaults of
disentanglement_lib), likelihood bounds, reconstruction error and attribute probes. Entry point:
`evaluate_run` (evaluate.py), or `python -m core evaluate RUN`."""
from core.metrics.beta_vae import beta_vae_score
from core.metrics.codes import CachedRepresentation, Representation, encoder_means
from core.metrics.dci import dci_score
from core.metrics.factor_vae import factor_vae_score
from core.metrics.mig import mig_score
from core.metrics.sap import sap_score

__all__ = ["CachedRepresentation", "Representation", "beta_vae_score", "dci_score", "encoder_means",
           "factor_vae_score", "mig_score", "sap_score"]
