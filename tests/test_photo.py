"""Your photo: untrusted uploads are checked by content, decoded upright, refused before decoding when they claim
too many pixels; the crop takes the right pixels; the guide sits where each data set has its eyes and mouth; the
download is one PNG of three faces; and the page edits an upload, refuses a bad one with a message and writes
nothing into the run folder."""
from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.data.decode import FaceGuide
from core.data.photo import (MAX_PIXELS, Photo, PhotoCrop, PhotoError, crop_face, face_guide, framing_preview,
                             load_photo, sniff_format)
from core.data.synthfaces import LEVEL_NAMES, SynthFaces
from core.explore.arithmetic import VectorError
from core.explore.encode import load_or_encode
from core.explore.photo import dim_direction, encode_photo, photo_condition, triptych_png
from core.runs.folder import Run, list_runs
from core.training.loop import train
from tests.test_pages_edit import open_page as open_any_page, pictures
from tests.tiny import tiny_config

RED, BLUE, GREEN = (230, 20, 20), (20, 20, 230), (20, 200, 20)


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header that claims width x height RGB pixels and holds none of them (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IEND", b""))


def two_halves(width: int, height: int) -> Image.Image:
    """Red on top, blue below: which way up it is can be read off any decoding."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width, height // 2))
    return image


# --- checking and decoding ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation, stored", [(6, lambda im: im.rotate(90, expand=True)),
                                                 (8, lambda im: im.rotate(-90, expand=True)),
                                                 (3, lambda im: im.rotate(180))])
def test_an_exif_rotated_jpeg_comes_out_upright(orientation, stored):
    upright = two_halves(40, 60)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation: how the stored pixels must be turned to be seen upright
    photo = load_photo(encoded(stored(upright), "JPEG", quality=95, exif=exif.tobytes()))
    assert photo.pixels.shape == (60, 40, 3) and photo.format == "JPEG"
    assert np.abs(photo.pixels[5, 20].astype(int) - RED).max() < 12
    assert np.abs(photo.pixels[55, 20].astype(int) - BLUE).max() < 12


@pytest.mark.parametrize("kind", ["PNG", "WebP"])
def test_png_and_webp_are_read_whatever_the_mode(kind):
    image = Image.new("RGBA", (30, 20), (*GREEN, 255))
    photo = load_photo(encoded(image, "WEBP" if kind == "WebP" else kind, **({"lossless": True} if kind == "WebP"
                                                                             else {})))
    assert photo.format == kind and photo.pixels.shape == (20, 30, 3) and photo.original_size == (30, 20)
    assert (photo.pixels == GREEN).all()


def test_a_bomb_is_refused_without_decoding(monkeypatch):
    def never(self):
        raise AssertionError("decoded a bomb")

    monkeypatch.setattr(Image.Image, "load", never)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", never)
    bomb = png_claiming(100_000, 100_000)
    assert len(bomb) < 100  # 45 bytes that would unpack to 30 GB
    with pytest.raises(PhotoError, match="decompression bomb"):
        load_photo(bomb)
    # Under PIL's own limit, over ours: refused by the size the header claims, named in the message
    with pytest.raises(PhotoError, match=r"10,000 x 10,000 = 100,000,000 pixels, over the limit of 50 megapixels"):
        load_photo(png_claiming(10_000, 10_000))
    assert 10_000 * 10_000 > MAX_PIXELS


def test_the_pixel_and_byte_limits_apply_to_real_images():
    data = encoded(Image.new("RGB", (100, 100)), "PNG")
    assert load_photo(data).pixels.shape == (100, 100, 3)
    with pytest.raises(PhotoError, match="100 x 100 = 10,000 pixels"):
        load_photo(data, max_pixels=5000)
    with pytest.raises(PhotoError, match="MB limit: upload a smaller copy"):
        load_photo(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"name,smile\nme,1\n", "not a JPEG, PNG or WebP image (by its content, whatever its name)"),
    (b"GIF89a\x01\x00\x01\x00", "the file is a GIF, not a JPEG, PNG or WebP photo"),
    (b"%PDF-1.7\n", "a PDF document"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC/AVIF photo"),
])
def test_a_file_that_is_not_a_photo_is_refused_by_its_content(data, message):
    with pytest.raises(PhotoError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_photo(data)
    assert "JPEG or PNG" in str(error.value)  # the fix


def test_a_damaged_photo_is_refused_with_the_fix():
    data = encoded(Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)), "JPEG")
    for broken in (data[: len(data) // 2], data[:3] + b"\0" * 200):
        with pytest.raises(PhotoError, match="damaged or cut short. Open it in a photo app and save it again"):
            load_photo(broken)
    assert sniff_format(data) == "JPEG"  # what a name cannot fake: the bytes


VALID = {kind: encoded(Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)),
                       kind) for kind in ("JPEG", "PNG", "WEBP")}


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(VALID)), cut=st.integers(0, 10_000),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=6), tail=st.binary(max_size=64))
def test_damaged_photos_give_a_photo_or_a_photo_error_never_anything_else(kind, cut, flips, tail):
    data = bytearray(VALID[kind])
    for at, mask in flips:
        data[at % len(data)] ^= mask
    data = bytes(data[:max(cut, 12)]) + tail
    try:
        photo = load_photo(data)
    except PhotoError:
        return
    assert isinstance(photo, Photo) and photo.pixels.dtype == np.uint8 and photo.pixels.ndim == 3


def test_a_big_photo_is_shrunk_to_the_working_size():
    photo = load_photo(encoded(two_halves(5000, 2500), "JPEG"))
    assert photo.pixels.shape == (1024, 2048, 3) and photo.original_size == (5000, 2500)


# --- framing -----------------------------------------------------------------------------------------------------

def test_the_crop_maps_to_the_right_pixels():
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:] = GREEN
    pixels[30:80, 120:170] = RED  # a 50 px square at left 120, top 30
    crop = PhotoCrop(x=145 / 200, y=55 / 100, size=0.5)
    assert crop.box(200, 100) == (120, 30, 170, 80)
    face = crop_face(pixels, crop)
    assert face.shape == (3, 64, 64) and face.dtype == np.uint8
    assert np.abs(face.transpose(1, 2, 0).astype(int) - RED).max() <= 1
    assert PhotoCrop().box(200, 100) == (50, 0, 150, 100)  # the largest centred square
    assert PhotoCrop(x=1.0, y=0.0, size=0.5).box(200, 100) == (150, 0, 200, 50)  # moved inside, size kept
    with pytest.raises(PhotoError, match="size be above 0"):
        PhotoCrop(size=0).box(200, 100)


def test_the_preview_darkens_outside_the_crop_and_marks_the_guide():
    pixels = np.full((100, 200, 3), 200, np.uint8)
    crop = PhotoCrop(x=0.5, y=0.5, size=0.8)  # box (60, 10, 140, 90)
    plain = framing_preview(pixels, crop, None, max_side=400)
    assert plain.shape == (100, 200, 3)
    assert plain[50, 20].max() < 100 and (plain[50, 100] == 200).all()  # darkened outside, untouched inside
    guided = framing_preview(pixels, crop, face_guide("celeba"), max_side=400)
    changed = np.argwhere((guided != plain).any(axis=2))
    assert changed[:, 0].min() >= 10 + 0.4 * 80 and changed[:, 0].max() <= 10 + 0.8 * 80  # eyes to mouth
    assert framing_preview(pixels, crop, None, max_side=50).shape == (25, 50, 3)


def test_the_guide_is_where_each_data_set_has_its_eyes_and_mouth():
    celeba = face_guide("celeba")
    assert all(abs(y - 0.48) < 0.01 for _, y in celeba.eyes) and all(abs(y - 0.757) < 0.01 for _, y in celeba.mouth)
    assert face_guide("lfw") == celeba  # LFW's crop is framed to match CelebA's
    assert face_guide("folder") is None and face_guide("dsprites") is None
    # SynthFaces: the irises of a rendered frontal, neutral face with pale skin and blond hair are its darkest pixels
    levels = {"smile": "neutral", "eyewear": "none", "hair_colour": "blond", "bangs": "no bangs", "skin_tone": "pale",
              "face_width": "slim", "head_rotation": "frontal", "lighting": "front", "background": "blue"}
    face = SynthFaces().images_from_factors(np.array([[LEVEL_NAMES[f].index(v) for f, v in levels.items()]]))[0]
    guide = face_guide("synthfaces")
    brightness = face.astype(int).sum(0)
    for x, y in guide.eyes:
        row, col = round(y * 64 - 0.5), round(x * 64 - 0.5)
        window = brightness[row - 3:row + 4, col - 3:col + 4]
        dark = np.unravel_index(window.argmin(), window.shape)
        assert abs(dark[0] - 3) <= 2 and abs(dark[1] - 3) <= 2, (x, y, dark)
    (left, mouth_y), (right, _) = guide.mouth
    lips = face[0].astype(int) - face[2].astype(int)  # red lips on pale skin
    row = round(mouth_y * 64 - 0.5)
    assert lips[row - 1:row + 2, round(left * 64):round(right * 64)].mean() > lips[row - 6:row - 3].mean() + 30
    assert FaceGuide.from_pixels((10, 20, 110, 120), ((30, 60), (90, 60)), ((40, 95), (80, 95))) == FaceGuide(
        ((0.2, 0.4), (0.8, 0.4)), ((0.3, 0.75), (0.7, 0.75)))


# --- editing -----------------------------------------------------------------------------------------------------

def test_the_triptych_is_one_png_of_three_faces_blown_up():
    faces = [np.full((3, 64, 64), value, np.uint8) for value in (10, 120, 240)]
    picture = Image.open(io.BytesIO(triptych_png(*faces, scale=4)))
    assert picture.format == "PNG" and picture.size == ((3 * 64 + 4 * 2) * 4, (64 + 2 * 2) * 4)  # 2 px gaps
    pixels = np.asarray(picture.convert("RGB"))
    for k, value in enumerate((10, 120, 240)):
        left = (2 + k * 66) * 4
        assert (pixels[8:8 + 256, left:left + 256] == value).all()
    assert (pixels[:8] == 255).all()


def test_a_photo_is_encoded_and_a_dim_moved(tiny_runs_dir):
    model = Run(tiny_runs_dir / "tiny-bvae").load_model("cpu")
    mu = encode_photo(model, np.full((3, 64, 64), 128, np.uint8))
    assert mu.shape == (1, model.latent_dim) and mu.dtype == np.float32
    delta = dim_direction(model.latent_dim, 3)
    assert delta[3] == 1 and np.count_nonzero(delta) == 1
    with pytest.raises(VectorError, match="dim 8 is outside 0..7"):
        dim_direction(model.latent_dim, 8)
    assert photo_condition(model, ["Smiling"]) is None  # an unconditional model takes no condition


# --- the page ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs_dir(tiny_runs_dir, tmp_path_factory):
    """The tiny runs with their train split encoded (as the Arithmetic page leaves them), plus 'tiny-cvae'."""
    root = tmp_path_factory.mktemp("photo") / "runs"
    shutil.copytree(tiny_runs_dir, root)
    train(tiny_config("tiny-cvae", model="cvae", dataset="synthfaces", steps=10), root, progress=False)
    masked = tiny_config("tiny-masked", model="vae", dataset="synthfaces", steps=10)
    train(replace(masked, arch=replace(masked.arch, mask_head=True)).validate(), root, progress=False)
    for run in list_runs(root):
        load_or_encode(run, "train", 5000)
    return root


def face_photo(kind: str = "PNG") -> bytes:
    """A SynthFaces face blown up to 256 px on a wider canvas, as a photo file."""
    face = SynthFaces().images(np.array([123]))[0].transpose(1, 2, 0).repeat(4, 0).repeat(4, 1)
    canvas = Image.new("RGB", (400, 256), (90, 90, 90))
    canvas.paste(Image.fromarray(face), (72, 0))
    return encoded(canvas, kind)


def open_page(runs_dir: Path, monkeypatch, run: str = "tiny-bvae") -> AppTest:
    return open_any_page("photo.py", runs_dir, monkeypatch, run, timeout=120)


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_the_page_edits_an_upload_and_offers_the_download(runs_dir, monkeypatch):
    before = files_of(runs_dir / "tiny-bvae")
    at = open_page(runs_dir, monkeypatch)
    assert "Upload a photo" in at.info[0].value and not pictures(at)
    at.file_uploader(key="photo_upload").set_value(("face.png", face_photo(), "image/png")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(pictures(at)) == 4  # the framing preview, original, reconstruction, edit
    assert "PNG, 400 × 256 pixels" in at.get("image")[0].captions[0]
    assert at.selectbox(key="photo_attribute").value == "Smiling"
    assert len(at.get("download_button")) == 1
    first = pictures(at)
    at.slider(key="photo_alpha").set_value(-3.0).run()
    assert pictures(at)[:3] == first[:3] and pictures(at)[3] != first[3]  # α moves only the edit
    at.slider(key="photo_size").set_value(0.6).run()
    assert pictures(at)[0] != first[0] and pictures(at)[1] != first[1]  # a new frame: a new preview and crop
    assert not at.exception and not at.error
    assert files_of(runs_dir / "tiny-bvae") == before  # nothing written into the run folder


def test_a_run_with_a_mask_head_keeps_the_photos_background(runs_dir, monkeypatch):
    at = open_page(runs_dir, monkeypatch, run="tiny-masked")
    at.file_uploader(key="photo_upload").set_value(("face.png", face_photo(), "image/png")).run()
    assert at.toggle(key="photo_keep_background").value is True and not at.exception
    kept = pictures(at)
    at.toggle(key="photo_keep_background").set_value(False).run()
    assert pictures(at)[:3] == kept[:3] and pictures(at)[3] != kept[3]  # only the edit is drawn otherwise
    at.radio(key="photo_how").set_value("Labelled dim").run()
    assert at.toggle(key="photo_keep_background") and not at.exception


@pytest.mark.parametrize("name, data, message", [
    ("face.jpg", b"this is not an image\n", "not a JPEG, PNG or WebP image"),
    ("bomb.png", png_claiming(100_000, 100_000), "decompression bomb"),
    ("cut.png", face_photo()[:300], "damaged or cut short"),
])
def test_a_bad_upload_shows_a_message_not_a_traceback(runs_dir, monkeypatch, name, data, message):
    at = open_page(runs_dir, monkeypatch)
    at.file_uploader(key="photo_upload").set_value((name, data, "image/png")).run()
    assert not at.exception
    assert message in at.error[0].value and not pictures(at) and not at.get("download_button")
    at.file_uploader(key="photo_upload").set_value(("face.png", face_photo(), "image/png")).run()
    assert not at.error and len(pictures(at)) == 4  # a good photo after a bad one


def test_a_labelled_dim_and_the_camera(runs_dir, monkeypatch, tmp_path):
    root = shutil.copytree(runs_dir, tmp_path / "runs")
    at = open_page(root, monkeypatch)
    at.radio(key="photo_source").set_value("Take a photo").run()
    at.camera_input(key="photo_camera").set_value(("shot.jpg", face_photo("JPEG"), "image/jpeg")).run()
    assert not at.error and len(pictures(at)) == 4
    at.radio(key="photo_how").set_value("Labelled dim").run()
    assert "No dim of run tiny-bvae has a label yet" in at.info[0].value and len(pictures(at)) == 3
    assert not at.get("download_button")
    labels = {"dims": {"2": {"label": "hair colour", "meaningful": True, "note": ""}}}
    (root / "tiny-bvae" / "labels.json").write_text(json.dumps(labels))
    at.run()
    assert at.selectbox(key="photo_dim").value == 2 and len(pictures(at)) == 4
    assert any("z2 · hair colour +1.0" in m.value for m in at.markdown)
    assert not at.exception and not at.error


def test_a_conditional_run_edits_the_photo_by_condition(runs_dir, monkeypatch):
    at = open_page(runs_dir, monkeypatch, run="tiny-cvae")
    at.file_uploader(key="photo_upload").set_value(("face.png", face_photo(), "image/png")).run()
    at.radio(key="photo_how").set_value("Condition").run()
    assert not at.exception and not at.error and len(pictures(at)) == 4
    assert any("Smiling = +1.0" in m.value for m in at.markdown)
    first = pictures(at)
    at.slider(key="photo_condition").set_value(0.0).run()
    assert pictures(at)[3] != first[3] and pictures(at)[:3] == first[:3]
    assert len(at.get("download_button")) == 1
