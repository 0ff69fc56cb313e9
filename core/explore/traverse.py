"""Latent traversals: which dims carry information, how far to move them, and the decoded grids.

A traversal sets one latent dim of a centre code to evenly spaced values between `lo[d]` and `hi[d]` and keeps
every other dim, so a row of the grid shows what that one dim does to one face. The range comes from the prior
(±k·σ of N(0, 1)) or from the data (min–max or quantiles of the posterior means over encoded images).
"""
from __future__ import annotations

import copy
import io

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from core.data import DataError, Dataset
from core.explore.encode import encode
from core.explore.generate import decode
from core.data.images import grid
from core.models.vae import VAE
from core.runs.folder import Run

# Below this many nats a dim is "collapsed": its posterior is the prior for every image, so moving it changes
# nothing the decoder listens to. 0.05 nats separates the few active dims of a beta-VAE (KL ~0.1-3 nats) from the
# unused majority (~0.01-0.04) on the SynthFaces runs; the page lets the user move it.
COLLAPSED_NATS = 0.05
RANGE_MODES = {"prior": "±k·σ of the prior", "minmax": "data min–max", "quantile": "data quantiles"}
DECODE_BATCH = 576  # images per decoder call (a 64×9 grid in one): bounds peak memory, ~150 MB (small preset)
# The zoomed dim's tiles are 128 px, so its steps wrap: 6 tiles and the labels fit the main column of a laptop screen
# (~940 px at 1400 px wide), where a longer row would be shrunk back to small tiles.
ZOOM_SCALE, ZOOM_PER_ROW = 2, 6


# --- which dims matter ------------------------------------------------------------------------------------------

def kl_from_metrics(run: Run) -> np.ndarray | None:
    """Per-dim KL (nats) of the run's last train record, or None when metrics.jsonl has none for this latent size."""
    latent_dim = run.config.arch.latent_dim
    for record in reversed(run.metrics("train")):
        kl = record.get("kl_dims")
        if isinstance(kl, list) and len(kl) == latent_dim:
            return np.asarray(kl, np.float64)
    return None


def kl_from_encodings(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """Mean over images of KL(q(z_d|x) || N(0, 1)) per dim, (N, D) -> (D,) nats."""
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    return (0.5 * (mu ** 2 + np.exp(logvar) - logvar - 1)).mean(axis=0)


def kl_order(kl_dims: np.ndarray) -> np.ndarray:
    """Dim indices by KL, largest first; ties keep index order so the grid never reshuffles between reruns."""
    return np.argsort(-np.asarray(kl_dims, np.float64), kind="stable")


def collapsed(kl_dims: np.ndarray, threshold: float = COLLAPSED_NATS) -> np.ndarray:
    """(D,) bool: dims whose KL is below `threshold` nats."""
    return np.asarray(kl_dims, np.float64) < threshold


# Titles of the latent groups models declare (VAE.latent_groups; core.models.vitae: appearance and perspective codes).
GROUP_TITLES = {"latent": "Latent code", "appearance": "Appearance code z_A", "perspective": "Perspective code z_P"}


def latent_groups(model) -> dict[str, list[int]]:
    """The model's latent dims by kind, in order: `model.latent_groups()` as lists ({"latent": every dim} for a model
    without the method), so a page can show e.g. a VITAE's appearance and perspective dims apart."""
    groups = model.latent_groups() if hasattr(model, "latent_groups") else {"latent": range(model.latent_dim)}
    return {name: [int(d) for d in dims] for name, dims in groups.items()}


def group_title(name: str) -> str:
    """A group's heading, e.g. 'Perspective code z_P' for 'perspective'; unknown names as they are, capitalised."""
    return GROUP_TITLES.get(name, name.capitalize())


# --- how far to move them ---------------------------------------------------------------------------------------

def dim_ranges(mode: str, latent_dim: int, k: float = 3.0, mu: np.ndarray | None = None,
               quantile: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi), each (D,): 'prior' = ±k (the prior is N(0, 1)); 'minmax' = min and max of the posterior means
    `mu` (N, D); 'quantile' = their `quantile` and 1 - `quantile` quantiles (robust to a few outliers)."""
    if mode not in RANGE_MODES:
        raise ValueError(f"unknown range mode {mode!r}; use one of {', '.join(RANGE_MODES)}")
    if mode == "prior":
        if not k > 0:
            raise ValueError(f"k must be positive, got {k}")
        return np.full(latent_dim, -float(k)), np.full(latent_dim, float(k))
    if mu is None or len(mu) == 0:
        raise ValueError(f"range mode {RANGE_MODES[mode]!r} needs encoded images (posterior means)")
    mu = np.asarray(mu, np.float64)
    if mu.shape[1] != latent_dim:
        raise ValueError(f"posterior means have {mu.shape[1]} dims, the run has {latent_dim}")
    if mode == "minmax":
        return mu.min(axis=0), mu.max(axis=0)
    if not 0 <= quantile < 0.5:
        raise ValueError(f"quantile must be in [0, 0.5), got {quantile}")
    return np.quantile(mu, quantile, axis=0), np.quantile(mu, 1 - quantile, axis=0)


def traversal_values(center: np.ndarray, dims, steps: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Latent codes (..., len(dims), steps, D): `center` (..., D) with dim dims[i] swept from lo to hi in row i.
    A batch of centres (F, D) gives one block of rows per face."""
    if steps < 2:
        raise ValueError(f"a traversal needs at least 2 steps, got {steps}")
    center = np.asarray(center, np.float32)
    dims = np.asarray(dims, np.int64).reshape(-1)
    shape = center.shape[:-1] + (len(dims), steps, center.shape[-1])
    codes = np.broadcast_to(center[..., None, None, :], shape).copy()
    t = np.linspace(0.0, 1.0, steps)
    for row, d in enumerate(dims):
        codes[..., row, :, d] = lo[d] + (hi[d] - lo[d]) * t
    return codes


# --- faces to start from ----------------------------------------------------------------------------------------

def encode_faces(model: VAE, dataset: Dataset, index) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means (n, D) and the images (n, 3, 64, 64) uint8 of data set images `index`."""
    index = np.asarray(index, np.int64).reshape(-1)
    bad = index[(index < 0) | (index >= len(dataset))]
    if len(bad):
        raise DataError(f"face index {int(bad[0])} is outside 0..{len(dataset) - 1} of the {dataset.name} data set "
                        f"({len(dataset):,} images); pick an index in that range")
    mu, _ = encode(model, dataset, index)
    return mu, dataset.images(index)


# --- decoding and pictures --------------------------------------------------------------------------------------

@torch.inference_mode()
def decode_grid(model: VAE, codes: np.ndarray, batch_size: int = DECODE_BATCH) -> np.ndarray:
    """Latent codes (..., D) -> uint8 images (..., 3, 64, 64), all in one inference pass."""
    # Channels-last weights make the transposed convolutions ~1.5-2x faster on CPU (oneDNN); a copy, so the
    # caller's (possibly shared, cached) model is left as it was. Copying ~1 M parameters takes ~20-50 ms.
    return decode(copy.deepcopy(model).to(memory_format=torch.channels_last), codes, batch_size)


def labelled_grid(images: np.ndarray, labels: list[str], dimmed=None, scale: int = 1,
                  label_width: int = 170) -> np.ndarray:
    """Rows of images (R, S, 3, H, W) as one (H', W', 3) picture with a text label left of each row
    ('\\n' splits lines). Rows flagged in `dimmed` (collapsed dims) are faded and their label greyed."""
    images = np.asarray(images)
    rows, steps = images.shape[:2]
    if len(labels) != rows:
        raise ValueError(f"{len(labels)} labels for {rows} rows")
    dimmed = np.zeros(rows, bool) if dimmed is None else np.asarray(dimmed, bool)
    faded = images.copy()
    faded[dimmed] = (images[dimmed].astype(np.uint16) + 2 * 235) // 3  # a third of the contrast, towards light grey
    tiles = Image.fromarray(grid(faded.reshape(-1, *images.shape[2:]), steps))
    if scale > 1:
        tiles = tiles.resize((tiles.width * scale, tiles.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (label_width + tiles.width, tiles.height), (255, 255, 255))
    canvas.paste(tiles, (label_width, 0))
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default(size=13)
    row_height = tiles.height / rows
    for r, text in enumerate(labels):
        colour = (150, 150, 150) if dimmed[r] else (20, 20, 20)
        lines = [_fit(line, draw, font, label_width - 10) for line in text.split("\n")]
        draw.multiline_text((6, r * row_height + row_height / 2), "\n".join(lines), fill=colour, font=font,
                            anchor="lm", spacing=3)
    return np.asarray(canvas)


def _fit(line: str, draw: ImageDraw.ImageDraw, font, width: int) -> str:
    """`line`, cut and ended with '…' where it would run into the images (labels may be 500 characters)."""
    if draw.textlength(line, font=font) <= width:
        return line
    keep, too_many = 0, len(line)  # binary search for the longest prefix that fits with its ellipsis
    while too_many - keep > 1:
        mid = (keep + too_many) // 2
        keep, too_many = (mid, too_many) if draw.textlength(line[:mid] + "…", font=font) <= width else (keep, mid)
    return line[:keep] + "…"


def zoom_grid(images: np.ndarray, names: list[str], lo: float, hi: float, per_row: int = ZOOM_PER_ROW,
              scale: int = ZOOM_SCALE, label_width: int = 110) -> np.ndarray:
    """One dim swept from `lo` to `hi` on F faces, images (F, S, 3, H, W), as one labelled picture of `scale`×
    tiles: each face's steps split evenly over rows of at most `per_row`, each row labelled with the dim's values it
    spans and, on a face's first row, the face's name."""
    images = np.asarray(images)
    faces, steps = images.shape[:2]
    if len(names) != faces:
        raise ValueError(f"{len(names)} names for {faces} faces")
    n_rows = -(-steps // per_row)
    width = -(-steps // n_rows)  # balanced rows: 15 steps are 3 rows of 5, not 6 + 6 + 3
    padded = np.full((faces, n_rows * width, *images.shape[2:]), 255, np.uint8)
    padded[:, :steps] = images
    values = np.linspace(lo, hi, steps)
    spans = [f"{values[r * width]:+.2f} … {values[min(steps, (r + 1) * width) - 1]:+.2f}" for r in range(n_rows)]
    labels = [(f"{name}\n" if r == 0 else "") + span for name in names for r, span in enumerate(spans)]
    return labelled_grid(padded.reshape(faces * n_rows, width, *images.shape[2:]), labels, None, scale, label_width)


def png_bytes(picture: np.ndarray) -> bytes:
    """PNG file content of an (H, W, 3) uint8 picture, e.g. a traversal grid for download."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(picture: np.ndarray) -> bytes:
    """JPEG file content of an (H, W, 3) uint8 picture at quality 100, as Streamlit encodes an array it shows: a
    page that keeps these bytes draws a large picture again without encoding it again. Several times faster to
    encode and smaller than PNG for grids of faces."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="JPEG", quality=100)
    return buffer.getvalue()


def gif_bytes(pictures, ms: int = 120, scale: int = 1) -> bytes:
    """Animated GIF looping forever: the pictures (T, H, W, 3) forward, then back (without repeating the ends),
    enlarged `scale` times (nearest neighbour). PIL merges a frame identical to the one before it (a collapsed dim
    gives a one-frame GIF)."""
    if not len(pictures):
        raise ValueError("no frames for the GIF")
    # Reducing a frame to 256 colours is most of the cost of a GIF: do it once per picture (the way back reuses the
    # frames), before enlarging it (which adds no colour), with the fast octree: ~50x faster than PIL's default
    # median cut on decoded faces, 2.0 instead of 1.8 grey levels of mean error.
    frames = [Image.fromarray(np.asarray(p)).quantize(method=Image.Quantize.FASTOCTREE) for p in pictures]
    if scale > 1:
        frames = [f.resize((f.width * scale, f.height * scale), Image.NEAREST) for f in frames]
    frames = frames + frames[-2:0:-1]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=ms, loop=0)
    return buffer.getvalue()


def traversal_gif(images: np.ndarray, scale: int = ZOOM_SCALE, ms: int = 120, per_row: int = ZOOM_PER_ROW) -> bytes:
    """One dim's traversal of F faces, images (F, S, 3, H, W) -> GIF whose frame t shows every face at step t, at
    most `per_row` faces a row."""
    images = np.asarray(images)
    return gif_bytes([grid(images[:, t], min(images.shape[0], per_row)) for t in range(images.shape[1])], ms, scale)
