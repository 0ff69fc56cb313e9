"""Training objectives, kept apart from the models: reconstruction terms (likelihoods.py), the KL term (kl.py),
weight schedules (schedules.py), regularisers by name (regulariser.py, one file each: clamp.py, ...), and
`Objective` (objective.py) composing them.

May import: settings, registry, models.
"""
import importlib

# the files that register regularisers; a new regulariser adds its file name here
for _name in ("clamp", "tc", "factor", "dip"):
    importlib.import_module(f"{__name__}.{_name}")
