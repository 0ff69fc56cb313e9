"""Procedural dSprites: DeepMind's 2D-shapes data set, rendered on demand.

Same factor grid and index order as the published dsprites_ndarray_*.npz (minus its
constant 'color' factor), so index i here addresses the same factor combination as
index i there; images are re-rendered from the geometry below because the .npz is
not shipped.

Geometry (pixel i covers [i, i+1), so a pixel is lit when its centre i + 0.5 lies
inside the shape): at scale 1 the square is 20 px, the ellipse 26 x 14 px (long axis
horizontal), the heart 20 x 17 px with its lobes up; all sizes scale linearly. The
centre is (16 + 32 posX, 16 + 32 posY) with y growing downwards, and a larger
orientation turns the shape counter-clockwise on screen. Every shape rotates about
the centre of its orientation-0 bounding box (for the heart that box is not
symmetric vertically, so this is a choice, not a given).
"""
from __future__ import annotations

import numpy as np

from .base import IMAGE_SIZE, Attributes, GroundTruthData, random_split

SHAPES = ("square", "ellipse", "heart")

# (width, height) in pixels at scale 1 and orientation 0.
_SHAPE_SIZE = np.array([(20.0, 20.0), (26.0, 14.0), (20.0, 17.0)], dtype=np.float32)

# Bounded peak memory: a chunk needs a handful of float32 (chunk, 64, 64) arrays.
_CHUNK = 1024


def _heart_box() -> tuple[float, float, float]:
    """Half-width, centre y and half-height of the box around (x²+y²-1)³ ≤ x²y³.

    The lowest point is the tip (0, -1). Lagrange conditions on the curve give the
    rest in closed form: the lobe tops solve 27(y²-1)² = 4y³ (root > 1) and the
    widest points have x² = 8y³ with 8y³ - y² - 1 = 0.
    """
    def real_root_above(coeffs, floor):
        roots = np.roots(coeffs)
        return max(r.real for r in roots if abs(r.imag) < 1e-12 and r.real > floor)

    y_top = real_root_above([27.0, -4.0, -54.0, 0.0, 27.0], 1.0)
    y_wide = real_root_above([8.0, -1.0, 0.0, -1.0], 0.0)
    return float(np.sqrt(8.0 * y_wide**3)), (y_top - 1.0) / 2.0, (y_top + 1.0) / 2.0


_HEART_HALF_W, _HEART_CY, _HEART_HALF_H = _heart_box()


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Membership test in box coordinates: u, v span [-1, 1] over the bounding box, v up."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == 1:
        return u * u + v * v <= 1.0
    x2 = np.square(u * _HEART_HALF_W)
    y = v * _HEART_HALF_H + _HEART_CY
    r = x2 + y * y - 1.0
    # Cubes as products: numpy's ** 3 on arrays is ~7x slower and dominated render time.
    return r * r * r <= x2 * y * y * y


class DSprites(GroundTruthData):
    """dSprites' 737,280 images (3 shapes x 6 scales x 40 orientations x 32 x 32 positions), white on black."""

    name = "dsprites"
    factor_names = ["shape", "scale", "orientation", "posX", "posY"]
    # Published latents_values: shapes are coded 1, 2, 3.
    factor_values = [
        np.array([1.0, 2.0, 3.0]),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2.0 * np.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    ]
    factor_sizes = [len(v) for v in factor_values]
    identities = None

    # (attribute name, factor, which factor values have it)
    _ATTRIBUTE_RULES = [
        ("Square", 0, lambda v: v == 1.0),
        ("Ellipse", 0, lambda v: v == 2.0),
        ("Heart", 0, lambda v: v == 3.0),
        ("Large", 1, lambda v: v >= 0.8),
        ("Left", 3, lambda v: v < 0.5),
        ("Top", 4, lambda v: v < 0.5),  # posY grows downwards
    ]

    def __init__(self, seed: int = 0):
        self.split = random_split(int(np.prod(self.factor_sizes)), seed)
        self._level_attributes = [
            (f, rule(self.factor_values[f])) for _, f, rule in self._ATTRIBUTE_RULES
        ]
        columns = [self._broadcast_to_grid(f, levels) for f, levels in self._level_attributes]
        self.attributes = Attributes(
            names=[name for name, _, _ in self._ATTRIBUTE_RULES], values=np.stack(columns, axis=1)
        )

    def _broadcast_to_grid(self, factor: int, per_level: np.ndarray) -> np.ndarray:
        """A per-level column of one factor, spread over the whole grid in index order."""
        shape = [1] * self.num_factors
        shape[factor] = -1
        return np.broadcast_to(per_level.reshape(shape), self.factor_sizes).reshape(-1)

    def attributes_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """(n, 6) bool Square, Ellipse, Heart, Large, Left, Top of (n, 5) factor levels."""
        factors = np.asarray(factors, dtype=np.int64)
        return np.stack([levels[factors[:, f]] for f, levels in self._level_attributes], axis=1)

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 3, 64, 64) white shapes on black (0 or 255, equal in all channels) of (n, 5) factor levels."""
        factors = np.asarray(factors, dtype=np.int64).reshape(-1, self.num_factors)
        out = np.empty((len(factors), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        for start in range(0, len(factors), _CHUNK):
            mask = self._render_masks(factors[start:start + _CHUNK])
            out[start:start + _CHUNK] = (mask * np.uint8(255))[:, None]
        return out

    def _render_masks(self, factors: np.ndarray) -> np.ndarray:
        """(n, 64, 64) bool: pixel centres inside each shape."""
        shape = factors[:, 0]
        scale, theta, pos_x, pos_y = (
            self.factor_values[f][factors[:, f]][:, None, None].astype(np.float32) for f in range(1, 5)
        )
        # The last orientation level is exactly 2π: wrapping it makes it identical to
        # level 0 by construction (as in the published set), not by luck of rounding.
        theta = np.mod(theta, np.float32(2.0 * np.pi))
        centre = np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5
        dx = centre[None, None, :] - (16.0 + 32.0 * pos_x)
        dy = (16.0 + 32.0 * pos_y) - centre[None, :, None]  # flip so dy points up, like maths axes
        cos, sin = np.cos(theta), np.sin(theta)
        half = _SHAPE_SIZE[shape][:, :, None, None] * scale[:, None] / 2.0
        # Undo a counter-clockwise rotation by θ, then normalise by the half box size.
        u = (cos * dx + sin * dy) / half[:, 0]
        v = (cos * dy - sin * dx) / half[:, 1]
        mask = np.empty(u.shape, dtype=bool)
        for s in range(len(SHAPES)):
            rows = shape == s
            if rows.any():
                mask[rows] = _inside(s, u[rows], v[rows])
        return mask
