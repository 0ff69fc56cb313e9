"""Label suggestions for latent dims, two ways.

By correlation: each dim's posterior mean against every binary attribute. For a binary attribute, Pearson's r with
a continuous variable is the point-biserial correlation, so one formula covers both. A dim (or attribute) that never
varies over the encoded images has no correlation: r = 0, not NaN.

By effect: move one dim from -k to +k in the codes of a few faces, decode, and let an attribute judge say what
changed. A dim that merely correlates with an attribute (an echo of the dim that draws it) changes nothing the
judge sees, so it is not suggested.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

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


MIN_CHANGE = 0.3  # the least change of a judged probability, -k to +k averaged over the faces, worth a suggestion


@dataclass(frozen=True)
class Effect:
    """What moving latent dim `dim` from -k to +k does to the judged probability of `attribute`, averaged over
    `faces` faces: `low` at -k, `high` at +k."""

    dim: int
    attribute: str
    low: float
    high: float
    faces: int

    @property
    def change(self) -> float:
        """How far the judged probability moves from -k to +k: negative when raising the dim removes it."""
        return self.high - self.low

    def describe(self, labels: dict[int, DimLabel]) -> str:
        """'z12 → Sunglasses: judged on 3% → 97% of 16 faces' (the dim shown with its current label)."""
        return (f"{dim_name(self.dim, labels)} → {self.attribute}: judged on {self.low:.0%} → {self.high:.0%} of "
                f"{self.faces} faces")

    def as_label(self) -> DimLabel:
        """What accepting the suggestion saves: the attribute as label, the evidence and direction as note."""
        direction = "more" if self.change > 0 else "less"
        return DimLabel(self.attribute, True, f"suggested from its effect: the judge's P({self.attribute}) "
                                              f"{self.low:.2f} → {self.high:.2f} as z{self.dim} goes from low to "
                                              f"high over {self.faces} faces; higher z{self.dim} → {direction} "
                                              f"{self.attribute}")


def dim_effects(decode: Callable[[np.ndarray], np.ndarray], judge: Callable[[np.ndarray], np.ndarray],
                codes: np.ndarray, dims: Sequence[int], k: float = 2.0) -> np.ndarray:
    """(len(dims), 2, A): the judged probability of each attribute, averaged over the faces of `codes` (N, D), with
    one dim set to -k (index 0) and to +k (index 1) and the rest of each code kept. `decode`: codes -> images;
    `judge`: images -> (M, A) probabilities. One batch of 2·len(dims)·N decodes."""
    codes = np.asarray(codes, np.float32)
    dims = list(dims)
    moved = np.repeat(codes[None, None], 2, axis=1).repeat(len(dims), axis=0)  # (dims, 2, N, D)
    for i, d in enumerate(dims):
        moved[i, 0, :, d], moved[i, 1, :, d] = -k, k
    probabilities = np.asarray(judge(decode(moved.reshape(-1, codes.shape[1]))), np.float64)
    return probabilities.reshape(len(dims), 2, len(codes), -1).mean(axis=2)


def effect_suggestions(effects: np.ndarray, dims: Sequence[int], names: Sequence[str], faces: int,
                       min_change: float = MIN_CHANGE) -> list[Effect]:
    """For each dim, the attribute whose judged probability it changes most, when that change reaches `min_change`
    and is within NEAR_BEST of the largest change any dim makes to that attribute; largest change first."""
    change = effects[:, 1] - effects[:, 0]
    return [Effect(int(dims[i]), str(names[a]), float(effects[i, 0, a]), float(effects[i, 1, a]), faces)
            for i, a in _strongest(change, min_change)]


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
    return r, [Suggestion(dim, str(names[a]), float(r[dim, a]), len(mu)) for dim, a in _strongest(r, min_abs_r)]


def _strongest(score: np.ndarray, minimum: float) -> list[tuple[int, int]]:
    """(dim, attribute) for every dim (row of `score`, dims × attributes) whose largest |score| reaches `minimum`
    and is within NEAR_BEST of the largest |score| any dim has for that attribute; strongest first."""
    if not score.size:
        return []
    best = np.abs(score).argmax(axis=1)
    strength = np.abs(score[np.arange(len(score)), best])
    candidates = np.flatnonzero(strength >= minimum)
    top = {}
    for dim in candidates:
        top[best[dim]] = max(top.get(best[dim], 0.0), strength[dim])
    kept = [int(d) for d in candidates if strength[d] >= NEAR_BEST * top[best[d]]]
    return [(d, int(best[d])) for d in sorted(kept, key=lambda d: -strength[d])]
