"""The beta-VAE disentanglement metric (Higgins et al. 2017), as disentanglement_lib's beta_vae_sklearn.

One point: pick a factor k at random, draw two batches of factor vectors that agree on factor k only,
and take the mean absolute difference of their codes over the batch. A linear classifier (logistic
regression) predicts k from that feature vector; the score is its accuracy on fresh points
(chance: 1 / number of factors).
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from core.data import GroundTruthData
from core.metrics.codes import Representation, represent

# Points built per representation call; a constant, so the random draws never depend on memory.
POINTS_PER_CALL = 256


def beta_vae_score(data: GroundTruthData, representation: Representation, seed: int = 0,
                   batch_size: int = 64, num_train: int = 10_000, num_eval: int = 5_000) -> dict:
    """{'train_accuracy', 'eval_accuracy'} of the classifier on num_train / num_eval points of batch_size pairs each."""
    rng = np.random.default_rng(seed)
    train_x, train_y = _points(data, representation, batch_size, num_train, rng)
    # dlib uses scikit-learn's defaults; more iterations only let lbfgs converge on unscaled codes.
    model = LogisticRegression(max_iter=1000, random_state=seed).fit(train_x, train_y)
    eval_x, eval_y = _points(data, representation, batch_size, num_eval, rng)
    return {"train_accuracy": float(model.score(train_x, train_y)),
            "eval_accuracy": float(model.score(eval_x, eval_y))}


def _points(data, representation, batch_size, num_points, rng) -> tuple[np.ndarray, np.ndarray]:
    features, labels = [], []
    for start in range(0, num_points, POINTS_PER_CALL):
        m = min(POINTS_PER_CALL, num_points - start)
        k = rng.integers(data.num_factors, size=m)
        first = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, -1)
        second = data.sample_factors(m * batch_size, rng).reshape(m, batch_size, -1)
        rows = np.arange(m)
        second[rows, :, k] = first[rows, :, k]
        codes = represent(data, representation, np.concatenate([first, second]).reshape(2 * m * batch_size, -1))
        codes = codes.reshape(2, m, batch_size, -1).astype(np.float64)
        features.append(np.abs(codes[0] - codes[1]).mean(axis=1))
        labels.append(k)
    return np.concatenate(features), np.concatenate(labels)
