"""Anti-aliased shapes on the 64 x 64 image grid, as approximate signed distances (negative inside) in image units.

Image units: pixel-centre coordinates in [-1, 1], y pointing down, so one pixel is 2 / IMAGE_SIZE wide.
"""
import numpy as np

from core.data.base import IMAGE_SIZE

_AXIS = (np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5) * (2 / IMAGE_SIZE) - 1
Y, X = np.meshgrid(_AXIS, _AXIS, indexing="ij")


def cover(d):
    """Coverage with a one-pixel-wide linear edge: this is the anti-aliasing."""
    return np.clip(0.5 - d * (IMAGE_SIZE / 2), 0, 1)


def ellipse(cx, cy, ax, ay):
    """Axis-aligned ellipse centred at (cx, cy) with semi-axes ax, ay.

    Inigo Quilez's cheap ellipse distance: accurate near the edge, which is all the anti-aliasing needs."""
    px, py = (X - cx) / ax, (Y - cy) / ay
    k0 = np.sqrt(px * px + py * py)
    k1 = np.sqrt((px / ax) ** 2 + (py / ay) ** 2)
    return k0 * (k0 - 1) / np.maximum(k1, 1e-6)


def rounded_box(cx, cy, hx, hy, r):
    """Box centred at (cx, cy) with half-sizes hx, hy and corners rounded with radius r."""
    qx, qy = np.abs(X - cx) - hx + r, np.abs(Y - cy) - hy + r
    outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return outside + np.minimum(np.maximum(qx, qy), 0) - r


def stroke(u, v, cu, cv, half_len, bend, thick, gape=0.0, tilt=0.0):
    """Tapered curved stroke along axis u: centre line v = cv - bend * t^2 + tilt * t, t = (u - cu) / half_len.

    bend > 0 lifts the ends (a smile), bend < 0 drops them; tilt > 0 drops the end at larger u. `gape` widens
    it downwards into a lens shape (an open mouth; with thick=0 the stroke is just the opening).
    """
    t = (u - cu) / half_len
    inside = np.clip(1 - t * t, 0, 1)
    centre = cv - bend * t * t + tilt * t + 0.5 * gape * inside
    slope = (tilt - 2 * bend * t) / half_len
    across = np.abs(v - centre) / np.sqrt(1 + slope * slope) - thick * np.sqrt(inside) - 0.5 * gape * inside
    return np.maximum(across, np.abs(u - cu) - half_len)
