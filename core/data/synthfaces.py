"""SynthFaces: procedurally rendered cartoon faces with known generative factors.

LatentLab's default data set: nine discrete factors, the full grid of their levels
(86,400 images), every image a deterministic function of its factor levels, so the
ground truth is exact and nothing has to be downloaded.

Rendering is split in two because that makes it fast:

* Geometry (smile, eyewear, bangs, face width, head rotation: 600 combinations) decides
  where each face part is. The parts are anti-aliased signed-distance shapes, stacked back to
  front with "over" compositing - not in RGB but as per-pixel weights of the colours that vary (background,
  hair, skin) plus the RGB of fixed-colour parts. Compositing is linear in the colours, so
  those weights are exact. Each geometry is drawn once, on first use, and cached module-wide.
* Colour (hair colour, skin tone, lighting, background) is then a few multiply-adds per pixel.
"""
from __future__ import annotations

import threading

import numpy as np

from core.data.base import IMAGE_SIZE, Attributes, GroundTruthData, random_split
from core.data.decode import FaceGuide
from core.data.shapes import X, Y, cover, ellipse, rounded_box, stroke

LEVEL_NAMES: dict[str, list[str]] = {
    "smile": ["frown", "slight frown", "neutral", "smile", "broad smile"],
    "eyewear": ["none", "eyeglasses", "sunglasses"],
    "hair_colour": ["black", "brown", "blond", "grey"],
    "bangs": ["no bangs", "bangs"],
    "skin_tone": ["pale", "light", "tan", "dark"],
    "face_width": ["narrow", "slim", "broad", "wide"],
    "head_rotation": ["turned left", "slightly left", "frontal", "slightly right", "turned right"],
    "lighting": ["from left", "front", "from right"],
    "background": ["blue", "green", "purple"],
}
FACTOR_NAMES = list(LEVEL_NAMES)
# A SynthFaces "person": one combination of the factors that do not change with expression (smile), pose
# (head_rotation), lighting and eyewear - 4 x 2 x 4 x 4 x 3 = 384 people of 225 images each. Every person is in
# every split (the split is per image), so identity-disjoint uses (face verification) split the people themselves.
IDENTITY_FACTORS = ("hair_colour", "bangs", "skin_tone", "face_width", "background")
# Head yaw per rotation level; "left" is the image's left (the person's own right).
_YAW_DEGREES = np.array([-30, -15, 0, 15, 30], np.float32)

# Attribute -> (factor, levels for which it is true). CelebA names where CelebA has one.
_ATTRIBUTE_RULES = {
    "Smiling": ("smile", ["smile", "broad smile"]),
    "Mouth_Slightly_Open": ("smile", ["smile", "broad smile"]),  # both smiles show teeth
    "Frowning": ("smile", ["frown", "slight frown"]),
    "Eyeglasses": ("eyewear", ["eyeglasses", "sunglasses"]),  # CelebA counts sunglasses too
    "Sunglasses": ("eyewear", ["sunglasses"]),
    "Black_Hair": ("hair_colour", ["black"]),
    "Brown_Hair": ("hair_colour", ["brown"]),
    "Blond_Hair": ("hair_colour", ["blond"]),
    "Gray_Hair": ("hair_colour", ["grey"]),
    "Bangs": ("bangs", ["bangs"]),
    "Pale_Skin": ("skin_tone", ["pale"]),
    "Dark_Skin": ("skin_tone", ["dark"]),
    "Narrow_Face": ("face_width", ["narrow"]),
    "Wide_Face": ("face_width", ["wide"]),
    "Facing_Left": ("head_rotation", ["turned left", "slightly left"]),
    "Facing_Right": ("head_rotation", ["slightly right", "turned right"]),
}

_HAIR_RGB = np.array([[0.10, 0.08, 0.07], [0.40, 0.24, 0.12], [0.93, 0.79, 0.46], [0.72, 0.72, 0.74]], np.float32)
_SKIN_RGB = np.array([[0.99, 0.88, 0.81], [0.93, 0.75, 0.61], [0.77, 0.55, 0.38], [0.47, 0.31, 0.21]], np.float32)
_BACKGROUND_RGB = np.array([[0.40, 0.58, 0.86], [0.48, 0.74, 0.47], [0.62, 0.46, 0.74]], np.float32)


# Lighting is a horizontal gradient multiplying everything but the background.
_NX = np.clip(X / 0.6, -1, 1).ravel()
_LIGHT = np.stack([1.02 - 0.26 * _NX - 0.08 * _NX**2, 1.08 - 0.2 * _NX**2, 1.02 + 0.26 * _NX - 0.08 * _NX**2])

_GEOMETRY_FACTORS = [FACTOR_NAMES.index(f) for f in ("smile", "eyewear", "bangs", "face_width", "head_rotation")]
_GEOMETRY_SIZES = [len(LEVEL_NAMES[FACTOR_NAMES[i]]) for i in _GEOMETRY_FACTORS]


# --- geometry: the face parts, composited into colour weights ---------------------------

# Weight channels: background, hair, skin (multiples of those colours) and a fixed RGB.
_N_CHANNELS = 6


def _paint(hair=0.0, skin=0.0, rgb=(0.0, 0.0, 0.0)):
    return np.array([0.0, hair, skin, *rgb], np.float32)


_HAIR, _HAIR_SHINE, _BROW = _paint(hair=1), _paint(hair=0.65, rgb=(0.35, 0.35, 0.35)), _paint(hair=0.6)
_SKIN = _paint(skin=1)
_SHADOW, _CREASE = _paint(skin=0.8), _paint(skin=0.55)
_SHIRT = _paint(rgb=(0.22, 0.26, 0.34))
_EYE_WHITE, _IRIS = _paint(rgb=(0.96, 0.96, 0.94)), _paint(rgb=(0.16, 0.10, 0.07))
_LIPS, _MOUTH_INSIDE, _TEETH = _paint(skin=0.3, rgb=(0.45, 0.04, 0.07)), _paint(rgb=(0.30, 0.05, 0.06)), _paint(rgb=(1, 1, 1))
_FRAME, _CLEAR_LENS, _DARK_LENS = _paint(rgb=(0.08, 0.08, 0.10)), _paint(rgb=(0.85, 0.93, 1.0)), _paint(rgb=(0.04, 0.05, 0.07))

_HEAD_RADIUS = np.array([0.35, 0.395, 0.435, 0.48], np.float32)  # per face width
_FEATURE_DEPTH = 0.55  # see across_head
# Mouth per smile level: end lift, half-length, opening. Both smiling levels show teeth and the lips are
# thick: a mouth only a pixel or two different between levels is the first thing a VAE drops.
_MOUTH = np.array([[-0.13, 0.16, 0], [-0.065, 0.165, 0], [0, 0.17, 0], [0.09, 0.19, 0.06], [0.11, 0.21, 0.13]], np.float32)
_LIP = 0.03
# How much of a frown each smile level shows beyond its mouth's bend: knitted, lowered and thicker brows, narrowed
# eyes, two creases between the brows and pouted (thicker) lips. A downturned mouth alone moves a one-pixel line by
# a pixel or two, which no small VAE learned (renderer 1: linear probes read Frowning 0.70-0.77 at any length).
_FROWN = np.array([1.0, 0.8, 0, 0, 0], np.float32)
_BROW_KNIT, _BROW_DROP, _BROW_THICKEN, _POUT, _SQUINT = 0.06, 0.02, 0.5, 1.2, 0.45  # at a full frown
# A shadow under the fringe: bangs differ from a bare forehead only in the hair's colour, which on blond or grey hair
# over pale skin is too close to the skin's for a small VAE to learn (Bangs probes 0.52-0.73 on those hair colours).
_FRINGE_SHADOW, _FRINGE_SHINE = 0.1, 0.8
# Heights (image units) of the eyes and of the mouth's centre line, and how far round the head the eyes sit.
_EYE_Y, _MOUTH_Y, _EYE_ANGLE = -0.03, 0.3, 0.42


def _frontal_guide() -> FaceGuide:
    """Where the renderer puts the eyes and the neutral mouth's corners of a frontal face of average width (the
    positions _draw_geometries computes at zero yaw)."""
    def crop(x: float, y: float) -> tuple[float, float]:  # image units, [-1, 1], to fractions of the side
        return (float(x) + 1) / 2, (float(y) + 1) / 2

    eye_x = _HEAD_RADIUS.mean() * np.sin(_EYE_ANGLE)
    mouth_x = _MOUTH[LEVEL_NAMES["smile"].index("neutral"), 1]
    return FaceGuide((crop(-eye_x, _EYE_Y), crop(eye_x, _EYE_Y)), (crop(-mouth_x, _MOUTH_Y), crop(mouth_x, _MOUTH_Y)))


GUIDE = _frontal_guide()


def _draw_geometries(geometry: np.ndarray) -> np.ndarray:
    """(n, 6, 64*64) float32 colour weights for (n, 5) geometry levels."""
    smile, eyewear, bangs, width, rotation = (g[:, None, None] for g in geometry.T)
    frown = _FROWN[smile]
    yaw = np.deg2rad(_YAW_DEGREES[rotation])
    radius = _HEAD_RADIUS[width]  # seen from above

    def across_head(angle, depth=1.0):
        """Image x of a point `angle` radians round the (cylindrical) head from its front.

        Features sit on the flat front of the face, nearer the axis (depth < 1): on the full
        radius they would slide off the face oval.
        """
        return radius * (np.sin(angle + yaw) - (1 - depth) * np.sin(yaw))

    layers = []  # (coverage, paint), back to front
    hair_back = ellipse(0, -0.1, 1.17 * radius, 0.66)
    layers.append((cover(np.maximum(hair_back, Y - 0.3)), _HAIR))
    layers.append((cover(ellipse(0, 1.2, 0.9, 0.42)), _SHIRT))
    neck_x = 0.3 * across_head(0)  # the neck turns less than the face
    layers.append((cover(rounded_box(neck_x, 0.62, 0.36 * radius, 0.3, 0.08)), _SHADOW))
    for side in (-1, 1):
        angle = side * 1.62
        facing = np.clip(np.cos(angle + yaw), 0, 1)
        layers.append((cover(ellipse(across_head(angle), 0.04, 0.05 + 0.12 * facing, 0.11)), _SHADOW))
    # The visible face spans +-1.35 rad round the head, so it narrows and shifts as the head turns.
    left, right = across_head(-1.35), across_head(1.35)
    face_cx, face_ax = (left + right) / 2, (right - left) / 2
    chin_taper = 1 - 0.3 * (np.clip(Y - 0.02, 0, 0.5) / 0.5) ** 2
    face = ellipse(face_cx, 0.02, face_ax * chin_taper, 0.5)
    layers.append((cover(face), _SKIN))

    front_x = across_head(0, _FEATURE_DEPTH)  # the middle of the face's front: nose, mouth, fringe
    dx = X - front_x
    hairline = np.where(bangs, -0.17 + 0.3 * dx**2 - 0.035 * np.abs(np.sin(dx * 22)), -0.42 + 1.6 * dx**2)
    layers.append((bangs * cover(np.maximum(face, Y - hairline - _FRINGE_SHADOW)), _CREASE))
    layers.append((cover(np.maximum(ellipse(0, -0.1, 1.1 * radius, 0.62), Y - hairline)), _HAIR))
    shine = stroke(X, Y, across_head(-0.5, _FEATURE_DEPTH), -0.6, 0.1, -0.05, 0.02)
    layers.append((0.6 * cover(shine), _HAIR_SHINE))
    fringe_shine = stroke(X, Y, across_head(0.25, _FEATURE_DEPTH), -0.27, 0.14, 0.03, 0.018)
    layers.append((_FRINGE_SHINE * bangs * cover(fringe_shine), _HAIR_SHINE))

    lenses = []
    for side in (-1, 1):
        angle = side * _EYE_ANGLE
        ex, squash = across_head(angle, _FEATURE_DEPTH), np.cos(angle + yaw)
        white = ellipse(ex, _EYE_Y, 0.085 * squash, 0.05 * (1 - _SQUINT * frown))
        layers.append((cover(white), _EYE_WHITE))
        iris = ellipse(ex + 0.03 * np.sin(yaw), _EYE_Y + 0.005, 0.042 * squash, 0.042)
        layers.append((cover(np.maximum(iris, white)), _IRIS))
        knit = -side * _BROW_KNIT * frown  # the inner end (nearer the nose) drops
        brow = stroke(X, Y, ex, -0.155 + _BROW_DROP * frown, 0.1 * squash, -0.03, 0.02 * (1 + _BROW_THICKEN * frown),
                      tilt=knit)
        layers.append((cover(brow), _BROW))
        lenses.append(rounded_box(ex, _EYE_Y, 0.125 * squash, 0.085, 0.05))

    nose_x = front_x + 0.05 * np.sin(yaw)  # the tip sticks out, so it swings further
    layers.append((cover(stroke(X, Y, nose_x, 0.17, 0.045, 0.02, 0.014)), _CREASE))
    for side in (-1, 1):  # bridge shading: faint both sides when frontal, on the far side when turned
        strength = np.clip(0.35 + side * 1.3 * np.sin(yaw), 0, 1)
        layers.append((strength * cover(stroke(Y, X, 0.1, nose_x + side * 0.035, 0.06, 0, 0.009)), _SHADOW))

    for side in (-1, 1):  # the frown's creases between the brows
        crease = stroke(Y, X, -0.11, front_x + side * 0.024, 0.035, 0, 0.007)
        layers.append((frown * cover(crease), _CREASE))

    lift, half_len, gape = (_MOUTH[smile, i] for i in range(3))
    mouth_x, half_len = front_x, half_len * np.cos(yaw)
    lips = stroke(X, Y, mouth_x, _MOUTH_Y, half_len, lift, _LIP * (1 + _POUT * frown), gape)
    layers.append((cover(lips), _LIPS))
    inside = stroke(X, Y, mouth_x, _MOUTH_Y, half_len, lift, 0.0, gape)
    layers.append(((gape > 0) * cover(inside), _MOUTH_INSIDE))
    teeth_edge = _MOUTH_Y - lift * ((X - mouth_x) / half_len) ** 2 + 0.35 * gape
    layers.append(((gape > 0) * cover(np.maximum(inside, Y - teeth_edge)), _TEETH))

    lens = np.minimum(*lenses)
    clear, dark = eyewear == 1, eyewear == 2  # eyeglasses, sunglasses
    layers.append((clear * 0.25 * cover(lens), _CLEAR_LENS))
    layers.append((dark * 0.93 * cover(lens), _DARK_LENS))
    bar = rounded_box(face_cx, _EYE_Y - 0.035, face_ax * 1.02, 0.012, 0.01)
    frame = np.minimum(np.abs(lens) - 0.017, np.maximum(bar, -lens))
    layers.append(((eyewear > 0) * cover(frame), _FRAME))

    # Composited front to back: a layer shows through what is still uncovered in front of it,
    # and only the few channels its paint uses are touched.
    weights = np.zeros((len(geometry), _N_CHANNELS, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    uncovered = np.ones((len(geometry), IMAGE_SIZE, IMAGE_SIZE), np.float32)
    for alpha, paint in reversed(layers):
        shown = alpha * uncovered
        for channel in np.flatnonzero(paint):
            weights[:, channel] += shown * paint[channel]
        uncovered -= shown
    weights[:, 0] = uncovered  # the background
    return weights.reshape(len(geometry), _N_CHANNELS, -1)


_WEIGHT_ONE = 65535  # fixed-point 1.0 of the cached weights


class _GeometryCache:
    """Colour weights of every geometry drawn so far, as uint16 fixed point (30 MB for all 600).

    Not float16: numpy converts float16 to float32 slowly, and that conversion dominated rendering.
    """

    def __init__(self):
        n = int(np.prod(_GEOMETRY_SIZES))
        self._weights = np.zeros((n, _N_CHANNELS, IMAGE_SIZE * IMAGE_SIZE), np.uint16)
        self._drawn = np.zeros(n, bool)
        self._lock = threading.Lock()  # the dashboard renders from several threads

    def weights(self, geometry_index: np.ndarray) -> np.ndarray:
        """(n, 6, 64*64) float32 weights, scaled so that _WEIGHT_ONE means 1."""
        with self._lock:
            missing = np.unique(geometry_index[~self._drawn[geometry_index]])
            for start in range(0, len(missing), 64):  # chunks bound the peak memory
                chunk = missing[start:start + 64]
                weights = _draw_geometries(np.stack(np.unravel_index(chunk, _GEOMETRY_SIZES), axis=1))
                self._weights[chunk] = np.rint(np.clip(weights, 0, 1) * _WEIGHT_ONE)
                self._drawn[chunk] = True
        return self._weights[geometry_index].astype(np.float32)


_CACHE = _GeometryCache()


class SynthFaces(GroundTruthData):
    """Cartoon faces on the full grid of `LEVEL_NAMES` factor levels (see module docstring)."""

    name = "synthfaces"
    factor_names = FACTOR_NAMES
    factor_sizes = [len(levels) for levels in LEVEL_NAMES.values()]
    identity_factors = IDENTITY_FACTORS  # what makes a person (see identities_from_factors)
    # 2 (2026-12-02): frowns knit the brows and thicken the lips; bangs cast a shadow. Runs and scores from
    # before were made on version 1, whose frowns and light fringes no small VAE learned.
    version = "renderer 2"

    def __init__(self, seed: int = 0):
        n = int(np.prod(self.factor_sizes))
        self.split = random_split(n, seed)
        self.attributes = Attributes(list(_ATTRIBUTE_RULES), self.attributes_from_factors(self.index_to_factors(np.arange(n))))
        self.identities = None

    def images_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 3, 64, 64) faces of (n, 9) factor levels; ValueError for a level out of range."""
        f = self._checked(factors)
        hair, skin, light, background = (f[:, FACTOR_NAMES.index(n)] for n in ("hair_colour", "skin_tone", "lighting", "background"))
        w = _CACHE.weights(np.ravel_multi_index(f[:, _GEOMETRY_FACTORS].T, _GEOMETRY_SIZES))
        foreground = w[:, 3:] + w[:, 1:2] * _HAIR_RGB[hair][:, :, None] + w[:, 2:3] * _SKIN_RGB[skin][:, :, None]
        scale = 255 / _WEIGHT_ONE
        rgb = foreground * (scale * _LIGHT[light])[:, None] + w[:, :1] * (scale * _BACKGROUND_RGB[background])[:, :, None]
        rgb += 0.5  # so that the conversion below rounds rather than truncates
        np.clip(rgb, 0, 255, out=rgb)
        return rgb.astype(np.uint8).reshape(len(f), 3, IMAGE_SIZE, IMAGE_SIZE)

    @property
    def has_masks(self) -> bool:
        """True: the renderer knows which pixels are the person (everything but the background)."""
        return True

    def masks(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact soft foreground masks (uint8 (n, 1, 64, 64), 255 = person, anti-aliased edges) of the given rows;
        every image has one."""
        return self.masks_from_factors(self.index_to_factors(index)), np.ones(len(index), bool)

    def masks_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """uint8 (n, 1, 64, 64) foreground masks of (n, 9) factor levels: 255 minus the background's weight."""
        f = self._checked(factors)
        background = _CACHE.weights(np.ravel_multi_index(f[:, _GEOMETRY_FACTORS].T, _GEOMETRY_SIZES))[:, 0]
        person = 255 - background * (255 / _WEIGHT_ONE) + 0.5
        return np.clip(person, 0, 255).astype(np.uint8).reshape(len(f), 1, IMAGE_SIZE, IMAGE_SIZE)

    def identities_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """(n,) int64 person ids of (n, 9) factor levels: the mixed-radix index of the `IDENTITY_FACTORS` levels.

        Not `self.identities` (which stays None): the split is per image, so every person is in every split, and
        code that drops held-out images of training identities (the attribute probes) would drop them all."""
        f = self._checked(factors)
        columns = [FACTOR_NAMES.index(name) for name in IDENTITY_FACTORS]
        return np.ravel_multi_index(f[:, columns].T, [self.factor_sizes[c] for c in columns]).astype(np.int64)

    def attribute_factor(self, name: str) -> str:
        """The factor an attribute is read from: Smiling, Mouth_Slightly_Open and Frowning all from `smile`."""
        return _ATTRIBUTE_RULES[name][0] if name in _ATTRIBUTE_RULES else name

    def attributes_from_factors(self, factors: np.ndarray) -> np.ndarray:
        """(n, A) bool CelebA-named attributes of (n, 9) factor levels, by `_ATTRIBUTE_RULES`."""
        f = self._checked(factors)
        columns = []
        for factor, levels in _ATTRIBUTE_RULES.values():
            level_ids = [LEVEL_NAMES[factor].index(level) for level in levels]
            columns.append(np.isin(f[:, FACTOR_NAMES.index(factor)], level_ids))
        return np.stack(columns, axis=1)

    def _checked(self, factors) -> np.ndarray:
        f = np.asarray(factors, dtype=np.int64).reshape(-1, self.num_factors)
        if ((f < 0) | (f >= self.factor_sizes)).any():
            raise ValueError(f"factor levels out of range; sizes are {dict(zip(self.factor_names, self.factor_sizes))}")
        return f
