"""Shared pytest fixtures."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# A dashboard started by a test (AppTest or `streamlit run`) would start UMAP's compile warm-up, a minute of CPU in
# the background, into whatever $LATENTLAB_CACHE the test set; tests/test_umap_warm.py turns it on where it is tested.
os.environ.setdefault("LATENTLAB_UMAP_WARM_UP", "0")
# `python -m core train` encodes the dashboard's default splits when a run finishes (seconds of CPU per run); tests
# that train through the CLI do not need them, and tests/test_encode.py turns it on where it is tested.
os.environ.setdefault("LATENTLAB_ENCODE_AFTER_TRAINING", "0")


# --- real-data loaders: tests/test_celeba.py, tests/test_lfw.py, tests/test_folder.py ---

def write_fake_image_file(path: Path, size: tuple[int, int] = (64, 64), brightness: int = 128,
                          mode: str = "RGB", eyes: tuple[tuple[int, int], tuple[int, int]] | None = None) -> Path:
    """Write a test image: a flat background of `brightness` (so tests can tell images apart
    after decoding) and, if `eyes` is given, a cartoon face built around those eye centres
    (so crops can be checked by eye). Format from the suffix; `mode` as in PIL."""
    image = Image.new("RGB", size, (brightness,) * 3)
    if eyes:
        (lx, ly), (rx, ry) = eyes
        d = rx - lx  # eye distance sets the face scale
        cx, cy = (lx + rx) / 2, (ly + ry) / 2
        draw = ImageDraw.Draw(image)
        draw.ellipse([cx - 1.25 * d, cy - 1.6 * d, cx + 1.25 * d, cy + 0.6 * d], fill=(60, 40, 20))  # hair
        draw.ellipse([cx - 1.1 * d, cy - 1.2 * d, cx + 1.1 * d, cy + 1.7 * d], fill=(225, 180, 150))  # head
        for x, y in eyes:
            draw.ellipse([x - 0.15 * d, y - 0.1 * d, x + 0.15 * d, y + 0.1 * d], fill=(30, 30, 90))
        draw.line([cx, cy + 0.2 * d, cx, cy + 0.65 * d], fill=(160, 110, 90), width=max(1, d // 15))  # nose
        draw.arc([cx - 0.5 * d, cy + 0.6 * d, cx + 0.5 * d, cy + 1.2 * d], 20, 160, fill=(170, 30, 40),
                 width=max(1, d // 12))  # mouth
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path)
    return path


@pytest.fixture
def write_fake_image():
    """write_fake_image(path, size=(64, 64), brightness=128, mode='RGB', eyes=None) -> path."""
    return write_fake_image_file


@pytest.fixture
def write_broken_image():
    """write_broken_image(path, kind): a 'truncated' JPEG (first half of a real one) or a
    'text' file with an image suffix; both must be skipped, not crash a loader."""
    def write(path: Path, kind: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "truncated":
            noisy = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
            Image.fromarray(noisy).save(path, format="JPEG")
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        else:
            path.write_text("this is not an image\n")
        return path
    return write


@pytest.fixture
def loader_cache_dir(tmp_path: Path) -> Path:
    """A private decode cache, so loader tests never write to ~/.cache/latentlab."""
    return tmp_path / "latentlab-cache"


# --- trained tiny runs for dashboard and evaluation tests ---

@pytest.fixture(scope="session")
def tiny_runs_dir(tmp_path_factory):
    """A runs folder with two tiny finished SynthFaces runs (8 latent dims, seconds to train):
    'tiny-bvae' (beta-VAE) and 'tiny-modvae' (ModVAE). Treat it as read-only; copy it to modify."""
    from core.training.loop import train
    from tests.tiny import tiny_config

    root = tmp_path_factory.mktemp("runs")
    train(tiny_config("tiny-bvae", dataset="synthfaces", steps=30), root, progress=False)
    modvae = tiny_config("tiny-modvae", model="modvae", dataset="synthfaces", steps=20)
    modvae.modvae.dims_per_factor = 1
    modvae.arch.latent_dim = 12  # 9 factor blocks + 3 free dims: pages must cope with any latent size
    train(modvae, root, progress=False)
    return root


@pytest.fixture
def sleeper():
    """A live process that is none of ours to stop: a forged record may name it."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()
