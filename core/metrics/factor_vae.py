"""The FactorVAE disentanglement metric (Kim & Mnih 2018), as disentanglement_lib's factor_vae_score.

Codes are scaled by their global standard deviation (estimated on random images); dims whose global std
is below `prune_threshold` count as collapsed and are ignored. One point: fix factor k to one random level
over a batch, and take the code dim with the smallest scaled variance in that batch. The classifier is a
majority vote (each dim predicts the factor it was most often the argmin for); the score is its accuracy
on fresh points (chance: 1 / number of factors).
"""
from __future__ import annotations

import numpy as np

from core.data import GroundTruthData
from core.metrics.codes import Representation, represent, sample_codes

POINTS_PER_CALL = 256


def factor_vae_score(data: GroundTruthData, representation: Representation, seed: int = 0,
                     batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000,
                     num_variance_estimate: int = 10_000, prune_threshold: float = 0.05) -> dict:
    """{'train_accuracy', 'eval_accuracy', 'num_active_dims'} of the majority-vote classifier (all 0: all collapsed)."""
    rng = np.random.default_rng(seed)
    codes, _ = sample_codes(data, representation, num_variance_estimate, rng)
    global_var = codes.astype(np.float64).var(axis=0, ddof=1)
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train_votes = _votes(data, representation, batch_size, num_train, rng, global_var, active)
    # Column d of the vote table predicts the factor that most often had active dim d as its argmin.
    classifier = train_votes.argmax(axis=0)
    eval_votes = _votes(data, representation, batch_size, num_eval, rng, global_var, active)
    columns = np.arange(train_votes.shape[1])
    return {"train_accuracy": float(train_votes[classifier, columns].sum() / train_votes.sum()),
            "eval_accuracy": float(eval_votes[classifier, columns].sum() / eval_votes.sum()),
            "num_active_dims": int(active.sum())}


def _votes(data, representation, batch_size, num_points, rng, global_var, active) -> np.ndarray:
    """(num_factors, num_active_dims) counts of (fixed factor, argmin dim) pairs."""
    votes = np.zeros((data.num_factors, int(active.sum())), np.int64)
    for start in range(0, num_points, POINTS_PER_CALL):
        m = min(POINTS_PER_CALL, num_points - start)
        k = rng.integers(data.num_factors, size=m)
        factors = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, -1)
        rows = np.arange(m)
        factors[rows, :, k] = factors[rows, 0, k][:, None]
        codes = represent(data, representation, factors.reshape(m * batch_size, -1))
        local_var = codes.reshape(m, batch_size, -1).astype(np.float64).var(axis=1, ddof=1)
        argmin = np.argmin(local_var[:, active] / global_var[active], axis=1)
        np.add.at(votes, (k, argmin), 1)
    return votes
