"""Training objectives, kept apart from the models: reconstruction terms (likelihoods.py), the KL term (kl.py),
weight schedules (schedules.py), regularisers by name (regulariser.py, one file each: clamp.py, ...), and
`Objective` (objective.py) composing them.

May import: settings, registry, models.

No torch here (config.json is validated against LIKELIHOOD_NAMES without loading it): regularisers register when
regulariser.py is imported, likelihoods when likelihoods.py is, which checks it registers exactly these names.
"""
# The reconstruction likelihoods `--recon` accepts, in the order lists show them (core/objectives/likelihoods.py).
LIKELIHOOD_NAMES = ("bernoulli", "gaussian", "laplace", "calibrated", "ssim-l1")
