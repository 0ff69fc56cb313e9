"""Separated Attribute Predictability (Kumar et al. 2018), disentanglement_lib's discrete-factor path.

For every (code dim, factor) pair a linear SVM (C = 0.01, balanced class weights) predicts the factor
level from that one dim; its test accuracy fills a (D, F) score matrix. SAP is the mean over factors of
the gap between the best and second-best dim.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from core.data import GroundTruthData
from core.metrics.codes import Representation, sample_codes


def score_matrix(train_codes, train_factors, test_codes, test_factors) -> np.ndarray:
    """(D, F) test accuracy of a linear SVM predicting each factor from each single code dim."""
    matrix = np.zeros((train_codes.shape[1], train_factors.shape[1]))
    with warnings.catch_warnings():
        # A dim that carries nothing about a factor makes liblinear stall; its accuracy is still the answer.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for d in range(train_codes.shape[1]):
            for k in range(train_factors.shape[1]):
                svm = LinearSVC(C=0.01, class_weight="balanced").fit(train_codes[:, d:d + 1], train_factors[:, k])
                matrix[d, k] = svm.score(test_codes[:, d:d + 1], test_factors[:, k])
    return matrix


def top_two_gap(matrix: np.ndarray) -> float:
    """SAP from a (D, F) score matrix: the mean over factors of best minus second-best dim's accuracy."""
    ordered = np.sort(matrix, axis=0)
    second = ordered[-2] if len(ordered) > 1 else np.zeros(matrix.shape[1])
    return float(np.mean(ordered[-1] - second))


def sap_score(data: GroundTruthData, representation: Representation, seed: int = 0,
              num_train: int = 10_000, num_test: int = 5_000) -> dict:
    """SAP over freshly sampled train/test images, with the (D, F) score matrix it came from."""
    rng = np.random.default_rng(seed)
    train_codes, train_factors = sample_codes(data, representation, num_train, rng)
    test_codes, test_factors = sample_codes(data, representation, num_test, rng)
    matrix = score_matrix(train_codes, train_factors, test_codes, test_factors)
    return {"sap": top_two_gap(matrix), "score_matrix": matrix.tolist()}
