"""Latent arithmetic: attribute vectors ΔZ = mean z(with) − mean z(without), and edits z + α·ΔZ.

Three ways to build ΔZ from encoder means `mu` (N, D) and a boolean attribute column:

- **mean**: the plain difference of class means (White 2016, "Sampling generative networks").
- **balanced**: the same difference taken *within* each stratum of chosen confounder attributes (every
  combination of their values, e.g. Male × Young), then averaged over the strata with equal weights. An
  attribute that co-occurs with a confounder (on CelebA, Smiling is more common among women) then no
  longer drags the confounder's direction into its vector: inside a stratum the confounder is constant.
  Strata without at least `min_count` faces on each side are skipped (too noisy to use).
- **conditional** (applied on top of either): Gram–Schmidt ΔZ against the vectors of other chosen
  attributes, so moving along it leaves their projections unchanged (InterFaceGAN's conditional
  manipulation, Shen et al. 2020). The vector keeps its length along the remaining direction, no rescaling.

Separation is measured as the ROC-AUC of the score z·ΔZ on held-out faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.data.base import DataError

METHODS = ("mean", "balanced")

# Below this held-out ROC-AUC of z·ΔZ a vector barely separates faces with the attribute from those without: the run
# has not learned the attribute, and adding the vector changes little that a person would call that attribute.
LEARNED_AUC = 0.75


def unlearned_warning(attribute: str, auc: float | None) -> str | None:
    """What to tell a user before they edit along `attribute`'s vector whose held-out AUC is `auc`, or None."""
    if auc is None or auc >= LEARNED_AUC:
        return None
    return (f"This run hasn't learned {attribute} (held-out AUC {auc:.2f}, below {LEARNED_AUC}): the edit won't "
            "show. Train longer, or with a sharper reconstruction term (--recon calibrated).")


class VectorError(DataError):
    """An attribute vector cannot be built from these labels (no positives, no usable strata, ...)."""


@dataclass(frozen=True)
class Stratum:
    """One combination of confounder values and how many faces with / without the attribute it holds."""

    values: tuple[bool, ...]
    n_with: int
    n_without: int
    used: bool


def _check_labels(labels: np.ndarray, n: int, name: str) -> np.ndarray:
    labels = np.asarray(labels, dtype=bool)
    if labels.shape != (n,):
        raise VectorError(f"attribute {name!r}: {labels.shape[0] if labels.ndim else 0} labels for {n} codes")
    positives = int(labels.sum())
    if positives == 0 or positives == n:
        side = "has" if positives == n else "lacks"
        raise VectorError(f"attribute {name!r}: every one of the {n} faces {side} it, so there is nothing to "
                          "contrast; pick another attribute or encode more faces")
    return labels


def _groups(confounders: np.ndarray, n: int) -> list[tuple[tuple[bool, ...], np.ndarray]]:
    """(values, member mask) for each distinct row of the confounder table (N, K)."""
    keys, inverse = np.unique(np.asarray(confounders, dtype=bool).reshape(n, -1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return [(tuple(bool(v) for v in key), inverse == k) for k, key in enumerate(keys)]


def strata(labels: np.ndarray, confounders: np.ndarray, min_count: int = 5) -> list[Stratum]:
    """The confounder strata with their class counts, most populous first (for showing what was balanced)."""
    labels = np.asarray(labels, dtype=bool)
    out = []
    for values, inside in _groups(confounders, len(labels)):
        n_with, n_without = int((inside & labels).sum()), int((inside & ~labels).sum())
        out.append(Stratum(values, n_with, n_without, min(n_with, n_without) >= min_count))
    return sorted(out, key=lambda s: -(s.n_with + s.n_without))


def attribute_vector(mu: np.ndarray, labels: np.ndarray, method: str = "mean",
                     confounders: np.ndarray | None = None, min_count: int = 5, name: str = "attribute") -> np.ndarray:
    """ΔZ (D,) float32 for boolean `labels` (N,) over codes `mu` (N, D); see the module docstring."""
    mu = np.asarray(mu, dtype=np.float64)
    labels = _check_labels(labels, len(mu), name)
    if method == "mean":
        return (mu[labels].mean(0) - mu[~labels].mean(0)).astype(np.float32)
    if method != "balanced":
        raise VectorError(f"method {method!r}: use one of {', '.join(METHODS)}")
    if confounders is None or np.asarray(confounders).size == 0:
        raise VectorError(f"balanced vector for {name!r}: choose at least one confounder attribute")
    diffs = [mu[inside & labels].mean(0) - mu[inside & ~labels].mean(0)
             for _, inside in _groups(confounders, len(mu))
             if min((inside & labels).sum(), (inside & ~labels).sum()) >= min_count]
    if not diffs:
        raise VectorError(f"balanced vector for {name!r}: no confounder stratum has {min_count} faces both with "
                          "and without it; use fewer confounders or encode more faces")
    return np.mean(diffs, axis=0).astype(np.float32)


def conditional_vector(delta: np.ndarray, others: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """`delta` with its components along the span of `others` removed (Gram–Schmidt), float32 (D,)."""
    delta = np.asarray(delta, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64).reshape(-1, delta.shape[0])
    if len(others) == 0:
        return delta.astype(np.float32)
    # An orthonormal basis of the others' span; near-duplicate directions add nothing and are dropped.
    basis = []
    for v in others:
        for b in basis:
            v = v - (v @ b) * b
        if np.linalg.norm(v) > 1e-8 * max(1.0, np.abs(others).max()):
            basis.append(v / np.linalg.norm(v))
    out = delta.copy()
    for b in basis:
        out -= (out @ b) * b
    if np.linalg.norm(out) <= 1e-6 * np.linalg.norm(delta):
        raise VectorError("the attribute's direction lies inside the span of the attributes conditioned on; "
                          "condition on fewer attributes")
    return out.astype(np.float32)


def separation_auc(mu: np.ndarray, labels: np.ndarray, delta: np.ndarray, name: str = "attribute") -> float:
    """ROC-AUC of the score z·ΔZ for telling faces with the attribute from those without (0.5 = chance)."""
    labels = _check_labels(labels, len(mu), name)
    return rank_auc(np.asarray(mu, dtype=np.float64) @ np.asarray(delta, dtype=np.float64), labels)


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney statistic, ties counted half: what sklearn's roc_auc_score returns. Written
    here because importing scikit-learn (with SciPy) took 1.7 of the Arithmetic page's 2.6 s first render."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based average rank of each distinct score
    return float(auc_from_ranks(mean_rank[inverse], labels))


def auc_from_ranks(ranks: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC-AUC per column of average ranks (n,) or (n, D) for binary labels (n,): the Mann-Whitney U statistic."""
    positive = np.asarray(labels, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return (ranks[positive].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def edit(z: np.ndarray, delta: np.ndarray, alphas) -> np.ndarray:
    """Codes z + α·ΔZ for every face and every α: (N, len(alphas), D) float32."""
    z = np.asarray(z, dtype=np.float32).reshape(-1, len(delta))
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float32))
    return z[:, None, :] + alphas[None, :, None] * np.asarray(delta, dtype=np.float32)[None, None, :]


def column(names, values: np.ndarray, name: str) -> np.ndarray:
    """One attribute column by name from an encodings table, with the known names in the error."""
    names = [str(n) for n in names]
    if name not in names:
        raise VectorError(f"unknown attribute {name!r}; this data set has: {', '.join(names) or 'none'}")
    return np.asarray(values, dtype=bool)[:, names.index(name)]


@dataclass(frozen=True)
class VectorSpec:
    """What to build: the attribute, the method, the confounders to balance and the attributes to condition on."""

    attribute: str
    method: str = "mean"
    confounders: tuple[str, ...] = ()
    condition_on: tuple[str, ...] = ()
    min_count: int = 5


def build_vector(encodings: dict[str, np.ndarray], spec: VectorSpec) -> np.ndarray:
    """ΔZ from an encodings table (core.encode.load_or_encode) following `spec`."""
    names, values, mu = encodings["attribute_names"], encodings["attributes"], encodings["mu"]
    for other in spec.confounders + spec.condition_on:
        if other == spec.attribute:
            raise VectorError(f"{spec.attribute!r} cannot be its own confounder or condition")
    labels = column(names, values, spec.attribute)
    confounders = (np.stack([column(names, values, c) for c in spec.confounders], axis=1)
                   if spec.confounders else None)
    delta = attribute_vector(mu, labels, spec.method, confounders, spec.min_count, spec.attribute)
    others = [attribute_vector(mu, column(names, values, c), name=c) for c in spec.condition_on]
    return conditional_vector(delta, others) if others else delta


def preset_attribute(names, kind: str) -> str | None:
    """The attribute behind a one-click edit: 'smile' -> Smiling; 'glasses' -> Sunglasses, else Eyeglasses."""
    wanted = {"smile": ("Smiling",), "glasses": ("Sunglasses", "Eyeglasses")}[kind]
    names = [str(n) for n in names]
    return next((w for w in wanted if w in names), None)


def strongest_dims(delta: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    """The `k` dims along which ΔZ moves a face most, as (dim, component), largest |component| first."""
    delta = np.asarray(delta)
    order = np.argsort(-np.abs(delta), kind="stable")[:k]
    return [(int(d), float(delta[d])) for d in order]
