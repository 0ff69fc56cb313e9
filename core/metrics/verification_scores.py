"""Scores for "same person or not?" from two codes, and what they achieve over cross-validation folds.

Every score is a similarity (higher = more likely the same person):

  cosine, euclidean                    cos(z1, z2) and -|z1 - z2| of the raw codes
  cosine_whitened, euclidean_whitened  the same after whitening with the mean and (Ledoit-Wolf shrunk) covariance
                                       of the training people's codes
  learned                              a logistic regression on [|z1 - z2|, z1 * z2] (standardised), trained on
                                       pairs of training people only

Per fold: ROC-AUC; accuracy at the threshold that maximises accuracy on the other folds; TAR at FAR = 1 % read
off the fold's own ROC (the largest true-accept rate whose false-accept rate is at most 1 %). Reported as mean and
standard deviation over the folds, with the folds' mean ROC curve on a fixed FAR grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.metrics.verification_pairs import sample_pairs

SCORES = ("cosine", "euclidean", "cosine_whitened", "euclidean_whitened", "learned")
FAR = 0.01
# FAR grid of the stored mean ROC curves: log-spaced at the low end, where verification is judged, then linear.
ROC_GRID = np.unique(np.round(np.r_[0.0, np.logspace(-3, -1, 21), np.linspace(0.1, 1, 19)], 6))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (0 for a zero vector)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.maximum(norms, 1e-12)


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise negative Euclidean distance (a similarity)."""
    return -np.linalg.norm(a - b, axis=1)


@dataclass(frozen=True)
class Whitening:
    """z -> (z - mean) W with W = C^(-1/2), C the Ledoit-Wolf covariance of the fitting codes: shrinkage keeps
    collapsed dims (variance ~0) from being blown up into noise."""

    mean: np.ndarray
    matrix: np.ndarray

    @classmethod
    def fit(cls, codes: np.ndarray) -> Whitening:
        """Whitening from training people's codes (Ledoit-Wolf shrunk covariance, so few people still work)."""
        estimate = LedoitWolf().fit(np.asarray(codes, np.float64))
        values, vectors = np.linalg.eigh(estimate.covariance_)
        values = np.maximum(values, 1e-12 * max(values.max(), 1e-12))
        return cls(estimate.location_, (vectors / np.sqrt(values)) @ vectors.T)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        return (np.asarray(codes, np.float64) - self.mean) @ self.matrix


def pair_features(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[|a - b|, a * b]: symmetric in the two images."""
    return np.concatenate([np.abs(a - b), a * b], axis=1)


@dataclass
class LearnedComparison:
    """Logistic regression on pair_features, fitted on pairs drawn from the given codes' people only."""

    seed: int = 0
    people_seen: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # every person of its pairs

    def fit(self, codes: np.ndarray, persons: np.ndarray, pairs: int) -> LearnedComparison:
        """Train the logistic regression on `pairs` pairs drawn from these (training) people only."""
        i, j, same = sample_pairs(persons, pairs, np.random.default_rng([self.seed, 13]))
        self.people_seen = np.unique(np.r_[persons[i], persons[j]])
        self.model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=self.seed))
        self.model.fit(pair_features(codes[i], codes[j]), same)
        return self

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self.model.decision_function(pair_features(a, b))


def pair_scores(a: np.ndarray, b: np.ndarray, train_codes: np.ndarray, train_persons: np.ndarray,
                learned_pairs: int, seed: int = 0) -> tuple[dict[str, np.ndarray], LearnedComparison]:
    """Every score of SCORES for the pairs (a[i], b[i]); the comparisons are fitted on `train_codes` (of
    `train_persons`) only. Returns the scores and the fitted learned comparison (its `people_seen`)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    white = Whitening.fit(train_codes)
    learned = LearnedComparison(seed).fit(np.asarray(train_codes, np.float64), np.asarray(train_persons), learned_pairs)
    wa, wb = white(a), white(b)
    scores = {"cosine": cosine(a, b), "euclidean": euclidean(a, b), "cosine_whitened": cosine(wa, wb),
              "euclidean_whitened": euclidean(wa, wb), "learned": learned(a, b)}
    return scores, learned


def fold_metrics(scores: np.ndarray, same: np.ndarray, fold: np.ndarray, folds: int) -> dict:
    """ROC-AUC, accuracy (threshold from the other folds) and TAR at FAR = 1 % per fold, their means and standard
    deviations, each fold's threshold, and the mean ROC curve over the folds (tpr at the FAR grid ROC_GRID)."""
    rows, curves = [], []
    for k in range(folds):
        test, other = fold == k, fold != k
        threshold = best_threshold(scores[other], same[other]) if other.any() else 0.0
        y, s = same[test], scores[test]
        fpr, tpr, _ = roc_curve(y, s)
        curves.append(np.interp(ROC_GRID, fpr, tpr))
        rows.append({"auc": float(roc_auc_score(y, s)), "accuracy": float(np.mean((s >= threshold) == y)),
                     "tar_at_far": float(tpr[fpr <= FAR].max()), "threshold": float(threshold),
                     "pairs": int(test.sum())})
    out = {}
    for key in ("auc", "accuracy", "tar_at_far"):
        values = np.array([r[key] for r in rows])
        out[key], out[f"{key}_std"] = float(values.mean()), float(values.std())
    out["folds"] = rows
    out["roc"] = {"far": ROC_GRID.tolist(), "tar": np.round(np.mean(curves, axis=0), 5).tolist()}
    return out


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold t maximising the accuracy of "same when score >= t" (a midpoint between two scores)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    # accepting the top k pairs: k = 0 .. n; correct = true accepts + true rejects
    correct = np.r_[0, np.cumsum(y)] + np.r_[(~y).sum(), (~y).sum() - np.cumsum(~y)]
    distinct = np.r_[True, s[1:] != s[:-1], True]  # a threshold can fall only between different scores
    k = int(np.argmax(np.where(distinct, correct, -1)))
    if k == 0:
        return float(s[0] + 1.0)
    if k == len(s):
        return float(s[-1] - 1.0)
    return float((s[k - 1] + s[k]) / 2)
