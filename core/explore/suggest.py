"""Label suggestions for latent dims: correlate each dim's posterior mean with every binary attribute.

For a binary attribute, Pearson's r with a continuous variable is the point-biserial correlation, so one formula
covers both. A dim (or attribute) that never varies over the encoded images has no correlation: r = 0, not NaN.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.runs.labels import DimLabel, dim_name

MIN_ABS_R = 0.3  # weaker than this, the top attribute of a dim is as likely noise or a side effect as its meaning
# A dim is suggested for an attribute only when its |r| is at least this share of the strongest dim's for that
# attribute: on a demo eight dims all had Sunglasses as their top attribute, most of them only echoing it.
NEAR_BEST = 0.8


@dataclass(frozen=True)
class Suggestion:
    """A proposed label for latent dim `dim`: the attribute it correlates with most, with Pearson r over n images."""

    dim: int
    attribute: str
    r: float
    n: int  # images the correlation was computed over

    def describe(self, labels: dict[int, DimLabel]) -> str:
        """'z16 ↔ Black_Hair, r = +0.71' (the dim shown with its current label)."""
        return f"{dim_name(self.dim, labels)} ↔ {self.attribute}, r = {self.r:+.2f}"

    def as_label(self) -> DimLabel:
        """What accepting the suggestion saves: the attribute as label, the evidence and direction as note."""
        direction = "more" if self.r > 0 else "less"
        return DimLabel(self.attribute, True, f"suggested: r = {self.r:+.2f} over {self.n:,} encoded images; "
                                              f"higher z{self.dim} → {direction} {self.attribute}")


def correlations(mu: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """Pearson r (D, A) between every column of `mu` (N, D) and of `attributes` (N, A); 0 where either is constant."""
    x = _standardised(mu)
    y = _standardised(attributes)
    return np.clip(x.T @ y / max(len(x), 1), -1.0, 1.0)


def _standardised(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    a = a - a.mean(axis=0)
    std = a.std(axis=0)
    # A constant column stays all zeros (its correlation with anything is 0) instead of dividing by zero.
    return np.divide(a, std, out=np.zeros_like(a), where=std > 1e-12)


def attribute_correlations(mu: np.ndarray, attributes: np.ndarray, names: list[str],
                           min_abs_r: float = MIN_ABS_R) -> tuple[np.ndarray, list[Suggestion]]:
    """The r matrix (D, A) and, for each dim whose strongest |r| reaches `min_abs_r` and is within NEAR_BEST of the
    strongest dim's for that attribute, a Suggestion naming that attribute; sorted by |r|, strongest first."""
    mu, attributes = np.asarray(mu), np.asarray(attributes)
    if len(mu) != len(attributes):
        raise ValueError(f"{len(mu)} posterior means but {len(attributes)} attribute rows")
    if attributes.ndim != 2 or attributes.shape[1] != len(names):
        raise ValueError(f"{len(names)} attribute names for attributes of shape {attributes.shape}")
    r = correlations(mu, attributes)
    suggestions = []
    if r.size:
        best = np.abs(r).argmax(axis=1)
        for dim, a in enumerate(best):
            if abs(r[dim, a]) >= min_abs_r:
                suggestions.append(Suggestion(dim, str(names[a]), float(r[dim, a]), len(mu)))
    strongest = {}
    for s in suggestions:
        strongest[s.attribute] = max(strongest.get(s.attribute, 0.0), abs(s.r))
    kept = [s for s in suggestions if abs(s.r) >= NEAR_BEST * strongest[s.attribute]]
    return r, sorted(kept, key=lambda s: -abs(s.r))
