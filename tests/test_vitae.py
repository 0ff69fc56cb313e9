"""VITAE (core/models/vitae.py, families u-vitae and c-vitae): the affine warp and its exact inverse, the identity at
a zero generator, translations carried by the perspective, the VAE interface, training, exact reload and resume, one
compile graph, the config rule and the Traversals page's two code grids."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch._dynamo
import torch.nn.functional as F
from safetensors.torch import load_file
from streamlit.testing.v1 import AppTest

from core.config import PRESETS, RunConfig
from core.data.dsprites import DSprites
from core.device import to_float
from core.explore.traverse import latent_groups
from core.models.family import FAMILIES
from core.models.vae import VAE
from core.models.vitae import CVITAE, UVITAE, affine_matrix, split_dims, warp
from core.runs.folder import create_run
from core.settings import ConfigError
from core.training.loop import Trainer, resume, train
from tests.tiny import TINY_ARCH, tiny_config

ROOT = Path(__file__).resolve().parents[1]
DSPRITES = DSprites()
FAMILY_NAMES = ["u-vitae", "c-vitae"]
PIXEL = 2 / 64  # one pixel in F.affine_grid's normalised coordinates (align_corners=False)


def full(theta: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) affine matrices as (B, 3, 3) homogeneous ones."""
    bottom = torch.tensor([0.0, 0.0, 1.0]).expand(theta.shape[0], 1, 3)
    return torch.cat([theta, bottom], dim=1)


def set_translation(model, dx_px: float, dy_px: float) -> None:
    """Make the perspective MLP output the generator of a pure translation whatever z_P: output pixel (i, j) then
    shows the appearance at (i + dy_px, j + dx_px)."""
    last = model.perspective.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, dx_px * PIXEL, 0.0, 0.0, dy_px * PIXEL]))


def shifted(image: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """`image` with its content moved dx pixels right and dy down, the background (its corner value) filling in."""
    out = torch.empty_like(image).copy_(image[..., :1, :1].expand_as(image))
    h, w = image.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


# --- the transformation ------------------------------------------------------------------------------------------

def test_the_transform_composed_with_its_inverse_is_the_identity():
    gamma = 0.5 * torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
    forward, backward = full(affine_matrix(gamma)), full(affine_matrix(-gamma))
    eye = torch.eye(3).expand(16, 3, 3)
    torch.testing.assert_close(forward @ backward, eye, rtol=0, atol=1e-5)
    torch.testing.assert_close(backward @ forward, eye, rtol=0, atol=1e-5)
    # on the sampling grid: the points T(-γ) samples, mapped through T(γ), are the identity grid again
    size = [16, 3, 64, 64]
    identity = F.affine_grid(affine_matrix(torch.zeros(16, 6)), size, align_corners=False)
    inverse_grid = F.affine_grid(affine_matrix(-gamma), size, align_corners=False)
    points = torch.cat([inverse_grid, torch.ones_like(inverse_grid[..., :1])], dim=-1)  # (B, H, W, 3)
    composed = torch.einsum("bij,bhwj->bhwi", affine_matrix(gamma), points)
    torch.testing.assert_close(composed, identity, rtol=0, atol=1e-5)
    # a pure generator of translations is its own first-order exponential: expm is exactly [[1, 0, c], [0, 1, f]]
    theta = affine_matrix(torch.tensor([[0.0, 0.0, 0.25, 0.0, 0.0, -0.5]]))
    torch.testing.assert_close(theta, torch.tensor([[[1.0, 0.0, 0.25], [0.0, 1.0, -0.5]]]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("cls", [UVITAE, CVITAE])
def test_a_zero_generator_is_the_identity_warp(cls):
    torch.manual_seed(0)
    # an image in [0, 1]: the grid's float rounding (~1e-7 of a pixel's width) times the step to the next pixel
    # stays below 1e-5 (measured 3.7e-6 at most; values of N(0, 1) reach 1.9e-5)
    image = torch.rand(4, 3, 64, 64)
    torch.testing.assert_close(warp(image, torch.zeros(4, 6)), image, rtol=0, atol=1e-5)
    torch.testing.assert_close(warp(image, torch.zeros(4, 6), inverse=True), image, rtol=0, atol=1e-5)
    model = cls(TINY_ARCH).eval()  # a new model's perspective MLP ends in zeros: it starts at the identity
    z = torch.randn(5, TINY_ARCH.latent_dim)
    assert torch.equal(model.generator(z), torch.zeros(5, 6))
    torch.testing.assert_close(model.decode_logits(z), model.appearance_logits(z), rtol=0, atol=1e-5)
    torch.testing.assert_close(model.decode(z), torch.sigmoid(model.appearance_logits(z)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dx, dy", [(5, 0), (0, -3), (-7, 4)])
def test_a_translation_from_the_perspective_code_moves_the_appearance_exactly(dx, dy):
    """With the perspective MLP set to a known translation of whole pixels, the output is the appearance translated
    (bilinear sampling at exact pixel centres), the border repeated where the warp looks outside the image."""
    model = UVITAE(TINY_ARCH).eval()
    set_translation(model, dx, dy)
    z = torch.randn(3, TINY_ARCH.latent_dim, generator=torch.Generator().manual_seed(1))
    out, appearance = model.decode_logits(z), model.appearance_logits(z)
    index_y = (torch.arange(64) + dy).clamp(0, 63)  # border padding: coordinates clamp to the edge
    index_x = (torch.arange(64) + dx).clamp(0, 63)
    expected = appearance[:, :, index_y][:, :, :, index_x]
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dx, dy", [(0, 0), (6, -2), (-5, 7)])
def test_c_vitae_encodes_a_translated_image_in_its_canonical_pose(dx, dy):
    """A translation of the input is absorbed by z_P: when the perspective says "moved by (dx, dy)", the appearance
    encoder sees the un-moved image, so the appearance code is that of the original, whatever the shift."""
    model = CVITAE(TINY_ARCH).eval()
    canvas = torch.zeros(2, 3, 64, 64)
    canvas[:, :, 24:40, 20:44] = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    moved = shifted(canvas, dx, dy)  # a sprite on a black background, moved by whole pixels
    set_translation(model, -dx, -dy)  # T(γ) maps the canonical image to the moved one
    torch.testing.assert_close(warp(canvas, model.perspective(torch.zeros(2, 6))), moved, rtol=0, atol=1e-5)
    torch.testing.assert_close(model.canonical(moved, torch.zeros(2, 6)), canvas, rtol=0, atol=1e-5)
    mu, logvar = model.encode(moved)
    a = model.appearance_dim
    want_mu, want_logvar = model.appearance_encoder(canvas)
    torch.testing.assert_close(mu[:, :a], want_mu, rtol=0, atol=1e-5)
    torch.testing.assert_close(logvar[:, :a], want_logvar, rtol=0, atol=1e-5)
    torch.testing.assert_close(mu[:, a:], model.perspective_encoder(moved)[0], rtol=0, atol=0)
    # and the reconstruction of the canonical appearance is put back where the sprite was
    torch.testing.assert_close(model.decode_logits(mu), warp(model.appearance_logits(mu), model.generator(mu)),
                               rtol=0, atol=0)


# --- the VAE interface -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_the_models_present_the_vae_interface_with_two_labelled_groups(name):
    arch = PRESETS["small"]
    model = FAMILIES[name].build(arch)
    assert isinstance(model, VAE) and model.latent_dim == 64
    assert model.latent_groups() == {"appearance": range(58), "perspective": range(58, 64)}
    assert latent_groups(model) == {"appearance": list(range(58)), "perspective": list(range(58, 64))}
    assert latent_groups(VAE(arch)) == {"latent": list(range(64))}
    x = torch.rand(2, 3, 64, 64)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (2, 64)
    images = model.decode(mu)
    assert images.shape == (2, 3, 64, 64) and 0 <= images.min() and images.max() <= 1
    assert model.sample(3).shape == (3, 3, 64, 64)
    model.eval()
    out = model(x)
    assert torch.equal(out.z, out.mu) and torch.equal(out.mu, mu) and out.logits.shape == (2, 3, 64, 64)
    torch.testing.assert_close(out.logits, model.decode_logits(mu), rtol=0, atol=0)
    model.train()
    noise = torch.randn(2, 64, generator=torch.Generator().manual_seed(0))
    out = model(x, noise)
    torch.testing.assert_close(out.z, out.mu + noise * torch.exp(0.5 * out.logvar), rtol=0, atol=0)
    assert torch.equal(model(x, noise.clone()).logits, out.logits)  # the noise is the only randomness
    out.logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the fast path: warps and matrix exponentials in fp32
        fast = model(x, noise)
    assert fast.logits.dtype == torch.float32 and fast.z.dtype == torch.float32


def test_perspective_dims_must_leave_an_appearance_dim():
    with pytest.raises(ConfigError, match=r"arch.perspective_dim = 8: must be below arch.latent_dim = 8"):
        RunConfig.from_options({"model": "c-vitae", "arch.latent_dim": 8, "arch.perspective_dim": 8}, "x")
    RunConfig.from_options({"model": "vae", "arch.latent_dim": 4}, "x")  # other families ignore the setting
    config = RunConfig.from_options({"model": "u-vitae", "arch.perspective_dim": 3}, "x")
    assert "--perspective-dim 3" in config.command and config.arch.perspective_dim == 3
    assert split_dims(config.arch) == (61, 3)
    with pytest.raises(ValueError, match="appearance dim"):
        UVITAE(dataclasses.replace(TINY_ARCH, perspective_dim=8))


# --- training, reloading, resuming, compiling --------------------------------------------------------------------

def config_for(name: str, model: str, steps: int, **train_options) -> RunConfig:
    config = tiny_config(name, model=model, steps=steps, **train_options)
    if model == "c-vitae":
        config.arch.perspective_dim = 3  # a non-default split travels through config.json
    return config.validate()


@pytest.mark.parametrize("model", FAMILY_NAMES)
def test_trains_with_finite_losses_and_reloads_to_identical_outputs(tmp_path, model):
    trainer = Trainer(create_run(config_for("t", model, 20), tmp_path), DSPRITES, progress=False)
    run = trainer.fit()
    records = run.metrics("train")
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert all(torch.isfinite(torch.tensor([r["loss"], r["recon"], r["kl"]])).all() for r in records)
    assert len(records[-1]["kl_dims"]) == 8 and run.status()["state"] == "finished"
    loaded = run.load_model()
    assert type(loaded) is type(trainer.model) and loaded.latent_groups() == trainer.model.latent_groups()
    trainer.model.eval()
    x = to_float(DSPRITES.images(np.arange(6)), "cpu")
    z = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    for a, b in [(loaded.encode(x), trainer.model.encode(x)), (loaded(x).logits, trainer.model(x).logits),
                 (loaded.decode(z), trainer.model.decode(z))]:
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # the perspective MLP has left the identity: the warp is trained, not a no-op
    assert loaded.perspective.net[-1].weight.abs().sum() > 0


@pytest.mark.parametrize("model", FAMILY_NAMES)
def test_resume_continues_exactly(tmp_path, model):
    straight = train(config_for("straight", model, 20), tmp_path, progress=False, dataset=DSPRITES)
    half = train(config_for("half", model, 10), tmp_path, progress=False, dataset=DSPRITES)
    resumed = resume(half, steps=20, progress=False, dataset=DSPRITES)
    a, b = load_file(straight.checkpoint_path), load_file(resumed.checkpoint_path)
    assert a.keys() == b.keys() and any(k.startswith("optim.") for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert [(r["step"], r["loss"]) for r in straight.metrics("train")] == \
        [(r["step"], r["loss"]) for r in resumed.metrics("train")]


@pytest.mark.parametrize("mode", ["plain", "fast"])
@pytest.mark.parametrize("model", FAMILY_NAMES)
def test_the_training_forward_is_one_graph_without_breaks(tmp_path, model, mode):
    """As tests/test_compile_graphs.py: matrix_exp, affine_grid and grid_sample trace into the one graph."""
    trainer = Trainer(create_run(config_for(f"{model}-{mode}", model, 1, mode=mode), tmp_path), DSPRITES,
                      progress=False)
    try:
        _, x = trainer.feed(0)
        x, noise = trainer.speed.images(x), trainer._noise(0)
    finally:
        trainer.feed.close()
    trainer.model.train()
    with trainer.speed.autocast(trainer.device):
        explained = torch._dynamo.explain(trainer.train_model)(x, noise, None)
    reasons = [r.reason for r in explained.break_reasons]
    assert explained.graph_count == 1 and explained.graph_break_count == 0 and not reasons, reasons


# --- the pages ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vitae_runs(tmp_path_factory):
    """A runs folder with one tiny C-VITAE run (5 appearance + 3 perspective dims). Read-only."""
    root = tmp_path_factory.mktemp("vitae-runs")
    train(config_for("tiny-cvitae", "c-vitae", 10), root, progress=False, dataset=DSPRITES)
    return root


def page(runs: Path, name: str, monkeypatch) -> AppTest:
    monkeypatch.setenv("LATENTLAB_CHECKPOINTS", str(runs))
    at = AppTest.from_file(str(ROOT / "dashboard" / "Home.py"), default_timeout=120)
    at.query_params["run"] = "tiny-cvitae"
    return at.switch_page(str(ROOT / "pages" / f"{name}.py")).run()


def test_the_traversals_page_shows_appearance_and_perspective_apart(vitae_runs, tmp_path, monkeypatch):
    at = page(shutil.copytree(vitae_runs, tmp_path / "runs"), "traversals", monkeypatch)
    assert not at.exception, at.exception
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs if " dims × " in img.caption]
    assert len(captions) == 2, captions
    assert "Appearance code z_A: 5 dims × 9 steps" in captions[0]
    assert "Perspective code z_P: 3 dims × 9 steps" in captions[1]
    assert [h.value for h in at.subheader][:2] == ["Appearance code z_A (dims 0–4)", "Perspective code z_P (dims 5–7)"]
    zoom = at.selectbox(key="trav_zoom_dim")
    assert all(o.endswith(("· appearance", "· perspective")) for o in zoom.options)


@pytest.mark.parametrize("name", ["generate", "embeddings", "arithmetic", "compare", "metrics"])
def test_every_page_explores_a_vitae_run(vitae_runs, tmp_path, monkeypatch, name):
    at = page(shutil.copytree(vitae_runs, tmp_path / "runs"), name, monkeypatch)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_the_train_page_offers_the_perspective_dims(tmp_path, monkeypatch):
    at = page(tmp_path, "train", monkeypatch)
    at.radio(key="tr_model").set_value("C-VITAE").run()
    assert not at.exception, at.exception
    assert at.number_input(key="tr_arch.perspective_dim_c-vitae").value == 6
