"""Masked edits (issue 15 §4): person masks from SynthFaces and from a CelebAMask-HQ-style folder, the mask head,
its loss, the reconstruction restricted to the person, and edits composited over the original background."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from core.config import LossConfig, RunConfig
from core.data import DataError
from core.data.folder import ImageFolder
from core.data.masks import MASK_DIR
from core.data.synthfaces import FACTOR_NAMES, SynthFaces, _BACKGROUND_RGB
from core.explore.composite import change_outside, composite, masked_edit
from core.explore.generate import decode
from core.models.family import FAMILIES
from core.objectives.masks import mask_loss, person_target
from core.objectives.objective import Objective
from core.training.batches import ShuffledBatches
from core.training.feed import Feed
from core.training.loop import train
from tests.tiny import TINY_ARCH, Subset, tiny_config

SYNTH = SynthFaces()


def test_synthfaces_masks_are_the_person_and_nothing_else():
    factors = SYNTH.sample_factors(32, np.random.default_rng(0))
    factors[:, FACTOR_NAMES.index("lighting")] = 1  # front light: the background keeps its exact colour
    images, masks = SYNTH.images_from_factors(factors), SYNTH.masks_from_factors(factors)
    background = np.round(_BACKGROUND_RGB[factors[:, FACTOR_NAMES.index("background")]] * 255)
    outside = masks[:, 0] == 0
    assert outside.mean() > 0.5 and (masks[:, 0, 32, 32] == 255).all()  # corners are background, the nose person
    for image, colour, where in zip(images, background, outside):
        assert np.abs(image[:, where].T - colour).max() <= 1  # every unmasked pixel is the background colour
    changed = factors.copy()
    for name in ("background", "hair_colour", "skin_tone"):  # colours do not move the outline
        changed[:, FACTOR_NAMES.index(name)] = 0
    assert (SYNTH.masks_from_factors(changed) == masks).all()
    wide = factors.copy()
    wide[:, FACTOR_NAMES.index("face_width")] = 3
    wide[:, FACTOR_NAMES.index("bangs")] = 0
    narrow = wide.copy()
    narrow[:, FACTOR_NAMES.index("face_width")] = 0
    assert (SYNTH.masks_from_factors(wide) > 127).sum() > (SYNTH.masks_from_factors(narrow) > 127).sum()
    rows, known = SYNTH.masks(np.arange(3))
    assert rows.shape == (3, 1, 64, 64) and known.all()


def _part(path, box, size=(40, 80)):
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.new("L", size, 0)
    picture.paste(255, box)
    picture.save(path)


def test_a_mask_folder_in_celebamask_hq_layout_gives_cropped_unions(tmp_path, write_fake_image, loader_cache_dir):
    for name in ("a", "b", "c"):
        write_fake_image(tmp_path / f"{name}.jpg", size=(100, 200))
    anno = tmp_path / MASK_DIR / "0"
    _part(anno / "a_skin.png", (0, 0, 20, 80))  # the left half, 40x80: the image's aspect ratio at 2/5 scale
    _part(anno / "a_neck_l.png", (20, 60, 40, 80))  # a part name with "_", bottom right
    _part(anno / "b_hair.png", (0, 0, 40, 80))
    data = ImageFolder(tmp_path, cache_dir=loader_cache_dir, progress=False)
    assert data.files == ["a.jpg", "b.jpg", "c.jpg"]  # the mask PNGs are not taken for faces
    masks, known = data.masks(np.arange(3))
    assert data.has_masks and known.tolist() == [True, True, False] and masks.shape == (3, 1, 64, 64)
    a = masks[0, 0] > 127
    # the square centre crop of 40x80 is rows 20..60: left half on, bottom right only below row 60 (outside the crop)
    assert a[:, :30].all() and not a[:, 34:].any()
    assert (masks[1] == 255).all() and (masks[2] == 0).all()
    _part(anno / "a_skin.png", (20, 0, 40, 80))  # changed on disk: the cache is rebuilt
    again = ImageFolder(tmp_path, cache_dir=loader_cache_dir, progress=False).masks(np.arange(1))[0][0, 0] > 127
    assert again[:, 34:].all() and not again[:, :30].any()


def test_broken_or_unmatched_mask_files_name_the_file(tmp_path, write_fake_image, loader_cache_dir):
    write_fake_image(tmp_path / "a.jpg")
    anno = tmp_path / MASK_DIR / "0"
    anno.mkdir(parents=True)
    (anno / "zzz_skin.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="names none of the 1 images"):
        ImageFolder(tmp_path, cache_dir=loader_cache_dir, progress=False)
    (anno / "a_skin.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="a_skin.png: not a readable PNG mask"):
        ImageFolder(tmp_path, cache_dir=loader_cache_dir, progress=False)


@pytest.mark.parametrize("family", ["vae", "u-vitae", "cvae"])
def test_the_mask_head_is_a_fourth_channel_and_old_configs_have_none(family):
    arch = replace(TINY_ARCH, mask_head=True, cond_dim=4 if family == "cvae" else 0)
    model = FAMILIES[family].build(arch).eval()
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    assert out.logits.shape == (2, 3, 64, 64) and out.mask_logits.shape == (2, 1, 64, 64)
    z = model.encode(x)[0]
    assert torch.allclose(model.decode_mask(z), torch.sigmoid(out.mask_logits), atol=1e-5)
    assert torch.allclose(model.decode_logits(z), out.logits, atol=1e-5)
    plain = FAMILIES[family].build(replace(arch, mask_head=False)).eval()
    assert plain(x).mask_logits is None
    with pytest.raises(ValueError, match="no mask head"):
        plain.decode_mask(z)
    saved = json.loads(tiny_config("old").to_json())
    del saved["arch"]["mask_head"]
    assert RunConfig.from_dict(saved).arch.mask_head is False


def test_person_only_reconstruction_gives_no_gradient_outside_the_mask():
    torch.manual_seed(0)
    x, logits = torch.rand(2, 3, 24, 24), torch.randn(2, 3, 24, 24, requires_grad=True)
    mask = torch.zeros(2, 1, 24, 24)
    mask[:, :, 10:14, 10:14] = 1
    known = torch.tensor([True, False])
    far = torch.ones(24, 24, dtype=torch.bool)  # beyond a window (7 px) that holds a pixel of the person
    far[4:20, 4:20] = False
    for kind in ("bernoulli", "gaussian", "ssim-l1", "calibrated"):
        logits.grad = None
        loss = Objective(LossConfig(reconstruction=kind, beta=1.0, warmup_steps=0, recon_region="person"))
        out = type("Out", (), {"logits": logits, "mu": torch.zeros(2, 4), "logvar": torch.zeros(2, 4),
                               "mask_logits": None})
        loss(out, x, 0, masks=(mask, known))["loss"].backward()
        # row 0: the background carries no gradient (through SSIM's 7x7 windows, pixels up to 6 px away do)
        outside = (far if kind == "ssim-l1" else mask[0, 0] == 0).expand(3, 24, 24)
        assert logits.grad[0][outside].abs().max() < 1e-6 < logits.grad[0][~outside].abs().max(), kind
        assert logits.grad[1].abs().min() > 0 or kind == "ssim-l1", kind  # row 1 has no mask: all pixels count
    target = person_target(logits, x, mask, known)
    assert torch.equal(target[1], x[1]) and torch.equal(target[0][:, 11, 11], x[0][:, 11, 11])


def test_mask_loss_rewards_the_right_mask_and_skips_rows_without_one():
    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    right, wrong = (target * 20 - 10), (10 - target * 20)
    known = torch.tensor([True, True])
    assert mask_loss(right, target, known) < 0.01 * mask_loss(wrong, target, known)
    assert mask_loss(wrong, target, torch.tensor([False, False])) == 0


def test_the_feed_gives_the_same_masks_resident_or_streamed():
    small = Subset(SYNTH, 500)
    batches = ShuffledBatches(small, 8, seed=0)
    resident = Feed(small, batches, torch.device("cpu"), resident=True, masks=True)
    streamed = Feed(small, batches, torch.device("cpu"), resident=False, masks=True)
    try:
        for step in (0, 1, 2):
            (b1, _, _, (m1, k1)), (_, _, _, (m2, k2)) = resident.fetch(step), streamed.fetch(step)
            assert torch.equal(m1, m2) and torch.equal(k1, k2) and k1.all()
            assert torch.equal(m1, torch.from_numpy(small.masks(b1.index)[0]).float() / 255)
    finally:
        streamed.close()


def test_training_with_a_mask_head_learns_the_outline_and_edits_keep_the_background(tmp_path):
    config = tiny_config("masked", model="vae", dataset="synthfaces", steps=60, lr=3e-3)
    config = replace(config, arch=replace(config.arch, mask_head=True),
                     loss=replace(config.loss, recon_region="person")).validate()
    run = train(config, tmp_path, progress=False)
    logged = [r["mask"] for r in run.metrics("train")]
    assert all(np.isfinite(logged)) and logged[-1] < 0.7 * logged[0]
    model = run.load_model("cpu").eval()
    index = SYNTH.indices("test")[:6]
    faces, (person, _) = SYNTH.images(index), SYNTH.masks(index)
    z = model.encode(torch.from_numpy(faces).float() / 255)[0].detach().numpy()
    edits = np.stack([z + 2.0, z - 2.0], axis=1)  # (faces, 2 edits, D)
    kept = masked_edit(model, faces, z, edits)
    predicted = np.maximum(*(decode(model, c, part="mask") for c in (z, edits[:, 0])))
    background = predicted[:, 0] == 0
    assert kept.shape == (6, 2, 3, 64, 64)
    assert (kept[:, 0].transpose(0, 2, 3, 1)[background] == faces.transpose(0, 2, 3, 1)[background]).all()
    plain = decode(model, edits)
    assert change_outside(faces, kept[:, 0], person) < change_outside(faces, plain[:, 0], person)


def test_composite_blends_by_the_mask():
    original, edited = np.zeros((1, 3, 2, 2), np.uint8), np.full((1, 3, 2, 2), 200, np.uint8)
    mask = np.array([[[[0, 255], [128, 255]]]], np.uint8)
    out = composite(original, edited, mask)
    assert out[0, 0].tolist() == [[0, 200], [100, 200]]


def test_training_asks_for_masks_the_data_set_does_not_have(tmp_path):
    config = tiny_config("nomasks", model="vae", dataset="dsprites", steps=2)
    config = replace(config, arch=replace(config.arch, mask_head=True)).validate()
    with pytest.raises(DataError, match="--mask-head needs person masks and the dsprites data set has none"):
        train(config, tmp_path, progress=False)
