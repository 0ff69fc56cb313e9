"""Training objectives, kept apart from the models: reconstruction likelihoods, the KL term, each regulariser
in its own file, weight schedules, and `Objective` composing them.

May import: config, registry, models.
"""
