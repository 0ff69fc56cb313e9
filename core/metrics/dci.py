"""Disentanglement, Completeness, Informativeness (Eastwood & Williams 2018), as disentanglement_lib's dci.

One gradient-boosted tree classifier per factor predicts its level from the codes; the absolute feature
importances form a (D, F) matrix R. Disentanglement: 1 - H_F(row distribution) per code dim, weighted by
the dim's share of total importance. Completeness: 1 - H_D(column distribution) per factor, weighted the
same way by factor. Informativeness: the classifiers' mean accuracy on their training and test points.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn.ensemble import GradientBoostingClassifier

from core.data import GroundTruthData
from core.metrics.codes import Representation, sample_codes


def importance_matrix(train_codes, train_factors, test_codes, test_factors, num_trees: int = 100,
                      seed: int = 0) -> tuple[np.ndarray, float, float]:
    """(D, F) feature importances, mean train accuracy, mean test accuracy. The factors' classifiers are independent
    and scikit-learn's tree builder releases the GIL, so they are fitted side by side on torch's thread count (which
    `python -m core evaluate` sets to the idle cores), with the same results as one after another."""
    def fit(k: int) -> tuple[np.ndarray, float, float]:
        model = GradientBoostingClassifier(n_estimators=num_trees, random_state=seed)
        model.fit(train_codes, train_factors[:, k])
        return (np.abs(model.feature_importances_), model.score(train_codes, train_factors[:, k]),
                model.score(test_codes, test_factors[:, k]))

    with ThreadPoolExecutor(torch.get_num_threads()) as pool:
        importances, train_acc, test_acc = zip(*pool.map(fit, range(train_factors.shape[1])))
    return np.stack(importances, axis=1), float(np.mean(train_acc)), float(np.mean(test_acc))


def _one_minus_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """1 - entropy of each slice along `axis` (normalised to sum 1), in base = its length (dlib: +1e-11)."""
    p = p + 1e-11
    p = p / p.sum(axis=axis, keepdims=True)
    size = p.shape[axis]
    if size == 1:  # one outcome: no uncertainty
        return np.ones(p.shape[1 - axis])
    return 1.0 - (-(p * np.log(p)).sum(axis=axis) / np.log(size))


def _weights(matrix: np.ndarray, axis: int) -> np.ndarray:
    if matrix.sum() == 0:
        matrix = np.ones_like(matrix)
    return matrix.sum(axis=axis) / matrix.sum()


def disentanglement(matrix: np.ndarray) -> float:
    """D of a (D, F) importance matrix: each code dim's 1 - entropy over factors, weighted by its importance share."""
    return float((_one_minus_entropy(matrix, axis=1) * _weights(matrix, axis=1)).sum())


def completeness(matrix: np.ndarray) -> float:
    """C of a (D, F) importance matrix: each factor's 1 - entropy over code dims, weighted by its importance share."""
    return float((_one_minus_entropy(matrix, axis=0) * _weights(matrix, axis=0)).sum())


def dci_score(data: GroundTruthData, representation: Representation, seed: int = 0,
              num_train: int = 10_000, num_test: int = 5_000, num_trees: int = 100) -> dict:
    """Disentanglement, completeness, train/test informativeness (mean accuracy) and the (D, F) importance matrix."""
    rng = np.random.default_rng(seed)
    train_codes, train_factors = sample_codes(data, representation, num_train, rng)
    test_codes, test_factors = sample_codes(data, representation, num_test, rng)
    matrix, train_acc, test_acc = importance_matrix(train_codes, train_factors, test_codes, test_factors,
                                                    num_trees, seed)
    return {"disentanglement": disentanglement(matrix), "completeness": completeness(matrix),
            "informativeness_train": train_acc, "informativeness_test": test_acc,
            "importance": matrix.tolist()}
