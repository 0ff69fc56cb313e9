"""Attribute probes: how well the latent means predict each binary attribute.

Per attribute: ROC-AUC on held-out images of a logistic regression on all (standardised) latent means, and
of the single most predictive dim. The dim is chosen on the training images by its sign-agnostic AUC
(max(AUC, 1 - AUC)), then scored on the held-out ones with that sign, so the choice is not fitted to the
test set.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.explore.arithmetic import auc_from_ranks


def identity_disjoint(train_identities: np.ndarray | None, test_identities: np.ndarray | None) -> np.ndarray | None:
    """Mask of held-out rows whose person is not among the training rows (None when identities are unknown)."""
    if train_identities is None or test_identities is None:
        return None
    return ~np.isin(test_identities, train_identities)


def column_aucs(ranks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(D,) ROC-AUC of every code dim for binary labels, from the codes' per-column average ranks (n, D)
    (scipy.stats.rankdata(codes, axis=0)): the Mann-Whitney U statistic, which counts ties as half as
    roc_auc_score does. The ranks do not depend on the labels, so they are computed once for every attribute."""
    return auc_from_ranks(ranks, labels)


def best_single_dim(ranks: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """(dim, sign) maximising the sign-agnostic AUC of one code dim for binary labels, from the codes' ranks."""
    aucs = column_aucs(ranks, labels)
    dim = int(np.argmax(np.abs(aucs - 0.5)))
    return dim, (1 if aucs[dim] >= 0.5 else -1)


def attribute_probes(train_codes: np.ndarray, train_attributes: np.ndarray, test_codes: np.ndarray,
                     test_attributes: np.ndarray, names: list[str], seed: int = 0) -> dict:
    """One entry per attribute: {name, auc, best_dim, best_dim_sign, best_dim_auc, positives_train/test},
    or {name, skipped} when a split holds only one class; plus the mean AUC over the probed ones."""
    rows = []
    ranks = rankdata(train_codes, axis=0)
    for a, name in enumerate(names):
        y_train, y_test = train_attributes[:, a].astype(bool), test_attributes[:, a].astype(bool)
        counts = {"positives_train": int(y_train.sum()), "positives_test": int(y_test.sum())}
        if len(np.unique(y_train)) < 2 or len(np.unique(y_test)) < 2:
            rows.append({"name": name, **counts, "skipped": "only one class in the training or held-out images"})
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
        probe.fit(train_codes, y_train)
        dim, sign = best_single_dim(ranks, y_train)
        rows.append({"name": name, **counts,
                     "auc": float(roc_auc_score(y_test, probe.decision_function(test_codes))),
                     "best_dim": dim, "best_dim_sign": sign,
                     "best_dim_auc": float(roc_auc_score(y_test, sign * test_codes[:, dim]))})
    aucs = [r["auc"] for r in rows if "auc" in r]
    return {"attributes": rows, "mean_auc": float(np.mean(aucs)) if aucs else None,
            "train_images": len(train_codes), "test_images": len(test_codes)}
