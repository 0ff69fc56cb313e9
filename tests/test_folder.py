"""ImageFolder, attribute CSVs, and the shared decoder / cache behaviour behind every loader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.config import DataConfig
from core.data import decode, load_dataset
from core.data.base import DataError, random_split
from core.data.decode import SquareCrop, decode_image
from core.data.cache import load_or_build
from core.data.folder import ImageFolder

# Bright images are the "Smiling" ones in every CSV below.
IMAGES = {"a.jpg": 220, "b.png": 30, "sub/c.JPEG": 220, "sub/deeper/d.bmp": 30, "e.webp": 220, "f.jpg": 30}


@pytest.fixture
def photos(tmp_path, write_fake_image, write_broken_image) -> Path:
    root = tmp_path / "photos"
    for name, brightness in IMAGES.items():
        write_fake_image(root / name, size=(80, 60), brightness=brightness)
    write_broken_image(root / "broken.jpg", "truncated")
    write_broken_image(root / "sub" / "notes.png", "text")
    write_fake_image(root / ".ipynb_checkpoints" / "a-checkpoint.jpg")  # hidden: not data
    write_fake_image(root / "._a.jpg")  # macOS resource fork: hidden, not data
    (root / "readme.txt").write_text("not an image suffix")
    return root


def write_csv(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.write_bytes(newline.join(lines).encode() + newline.encode())
    return path


def test_folder_recursive_with_broken_files(photos, loader_cache_dir):
    before = sorted(photos.rglob("*"))
    ds = ImageFolder(photos, cache_dir=loader_cache_dir, progress=False)
    assert ds.name == "folder" and ds.identities is None
    assert ds.files == sorted(IMAGES) and ds.skipped_count == 2
    assert {f for f, _ in ds.cache.failed} == {"broken.jpg", "sub/notes.png"}
    assert ds.attributes.names == [] and ds.attributes.values.shape == (len(IMAGES), 0)
    np.testing.assert_array_equal(ds.split, random_split(len(IMAGES), seed=0))
    assert ds.images(np.arange(len(ds))).shape == (len(IMAGES), 3, 64, 64)
    assert sorted(photos.rglob("*")) == before, "wrote into the data folder"


def test_data_seed_picks_the_split(photos, loader_cache_dir):
    """--data-seed (DataConfig.seed) reaches the folder's random split: same seed, same split; another, another."""
    def split(seed: int) -> np.ndarray:
        return load_dataset(DataConfig("folder", root=str(photos), seed=seed), progress=False,
                            cache_dir=loader_cache_dir).split

    assert np.array_equal(split(1), split(1)) and np.array_equal(split(1), random_split(len(IMAGES), seed=1))
    assert not np.array_equal(split(0), split(1))


def test_csv_attributes_in_every_spelling(photos, tmp_path, loader_cache_dir):
    csv = write_csv(tmp_path / "attrs.csv", [
        "\ufefffile, Smiling ,Hat",  # Excel's byte-order mark, padded names
        "a.jpg,1,0", "b.png,0,1", r"sub\c.JPEG,true,false", "./sub/deeper/d.bmp,-1,1",
        "e.webp,yes,no", "", "missing.jpg,1,1",  # a blank line; a row for an image not on disk
    ], newline="\r\n")
    ds = ImageFolder(photos, attributes_csv=csv, cache_dir=loader_cache_dir, progress=False)
    assert ds.attributes.names == ["Smiling", "Hat"]
    labelled = np.array([f != "f.jpg" for f in ds.files])
    np.testing.assert_array_equal(ds.has_attributes, labelled)
    bright = ds.images(np.arange(len(ds))).mean(axis=(1, 2, 3)) > 128
    np.testing.assert_array_equal(ds.attributes.column("Smiling"), bright & labelled)
    hat = {"b.png", "sub/deeper/d.bmp"}
    np.testing.assert_array_equal(ds.attributes.column("Hat"), [f in hat for f in ds.files])
    assert "1 of the 6 rows" in ds.summary and "missing.jpg" in ds.summary
    assert "1 of the 6 images have no row" in ds.summary


@pytest.mark.parametrize("lines, message", [
    (["file,Smiling", "x.jpg,1", "y.jpg,0"],
     r"none of the 2 rows of .* names one of the 8 images .* e.g. \['x.jpg', 'y.jpg'\].* e.g. \['a.jpg', 'b.png', "
     r"'broken.jpg'\]; the `file` column must hold paths relative to"),
    (["file,Smiling,Hat", "a.jpg,1,0", "b.png,maybe,0"], r"line 3, column Smiling: 'maybe' is not a binary value"),
    (["file,Smiling", "a.jpg,1", "b.png,0", "a.jpg,0"], r"line 4: a.jpg is already listed on line 2"),
    (["file,Smiling,Hat", "a.jpg,1,0", "b.png,1"], r"line 3: 2 values, expected 3"),
    (["name;Smiling", "a.jpg;1"], r"line 1: the header must be 'file' followed by attribute names"),
    (["file,Smiling,Smiling", "a.jpg,1,0"], r"line 1: attribute names repeat"),
])
def test_bad_csv_names_the_problem(photos, tmp_path, loader_cache_dir, lines, message):
    csv = write_csv(tmp_path / "attrs.csv", lines)
    with pytest.raises(DataError, match=message) as error:
        ImageFolder(photos, attributes_csv=csv, cache_dir=loader_cache_dir, progress=False)
    assert str(csv) in str(error.value)


def test_missing_root_csv_or_images(tmp_path, loader_cache_dir, write_fake_image):
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'} does not exist"):
        ImageFolder(tmp_path / "nope", cache_dir=loader_cache_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=f"no images .* in {tmp_path / 'empty'}"):
        ImageFolder(tmp_path / "empty", cache_dir=loader_cache_dir)
    write_fake_image(tmp_path / "one" / "x.png")
    with pytest.raises(DataError, match=f"attribute file {tmp_path / 'no.csv'} does not exist"):
        ImageFolder(tmp_path / "one", attributes_csv=tmp_path / "no.csv", cache_dir=loader_cache_dir)


def solid(mode: str, value, size=(40, 30)) -> Image.Image:
    return Image.new(mode, size, value)


@pytest.mark.parametrize("name, image, rgb", [
    ("gray.jpg", solid("L", 100), (100, 100, 100)),
    ("palette.png", solid("RGB", (200, 20, 20)).convert("P"), (200, 20, 20)),
    ("transparent.png", solid("RGBA", (200, 200, 200, 0)), (0, 0, 0)),  # composited on black
    ("half.png", solid("RGBA", (200, 100, 50, 128)), (100, 50, 25)),
    ("cmyk.jpg", solid("CMYK", (0, 255, 255, 0)), (255, 0, 0)),
    ("deep.png", Image.fromarray(np.full((30, 40), 32896, np.uint16)), (128, 128, 128)),  # 16-bit gray
    ("big.jpg", solid("RGB", (20, 120, 220), size=(1600, 1200)), (20, 120, 220)),  # decoded at reduced scale
])
def test_decoder_accepts_every_mode(tmp_path, name, image, rgb):
    image.save(tmp_path / name)
    pixels = decode_image(tmp_path / name, SquareCrop()).astype(int)
    assert pixels.shape == (3, 64, 64)
    np.testing.assert_allclose(pixels.mean(axis=(1, 2)), rgb, atol=4)


def test_process_pool_matches_in_process_decoding(photos, loader_cache_dir, monkeypatch):
    files = list(IMAGES) + ["broken.jpg"]
    serial = load_or_build(photos, files, SquareCrop(), tag="serial", cache_dir=loader_cache_dir,
                           progress=False, workers=1)
    monkeypatch.setattr(decode, "CHUNK", 2)  # several chunks, so two worker processes share them
    pooled = load_or_build(photos, files, SquareCrop(), tag="pooled", cache_dir=loader_cache_dir,
                           progress=False, workers=2)
    assert pooled.files == serial.files and pooled.failed == serial.failed
    np.testing.assert_array_equal(pooled.open(), serial.open())


def test_cache_is_rebuilt_when_damaged_or_when_files_change(photos, loader_cache_dir, write_fake_image):
    first = ImageFolder(photos, cache_dir=loader_cache_dir, progress=False)
    first.cache.path.write_bytes(first.cache.path.read_bytes()[:1000])  # e.g. a disk filled up mid-copy
    rebuilt = ImageFolder(photos, cache_dir=loader_cache_dir, progress=False)
    assert rebuilt.cache.build_seconds is not None and rebuilt.cache.path == first.cache.path
    np.testing.assert_array_equal(rebuilt.images(np.arange(len(rebuilt))).shape, (len(IMAGES), 3, 64, 64))

    write_fake_image(photos / "new.jpg")
    grown = ImageFolder(photos, cache_dir=loader_cache_dir, progress=False)
    assert grown.cache.path != first.cache.path and len(grown) == len(IMAGES) + 1


def test_cache_dir_defaults_to_environment(photos, tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTLAB_CACHE", str(tmp_path / "from-env"))
    ds = ImageFolder(photos, progress=False)
    assert ds.cache.path.parent == tmp_path / "from-env"
    assert {p.suffix for p in ds.cache.path.parent.iterdir()} == {".npy", ".json"}


def test_dataset_pickles_without_its_pixels(photos, loader_cache_dir):
    import pickle

    ds = ImageFolder(photos, cache_dir=loader_cache_dir, progress=False)
    ds.images(np.arange(2))  # opens the memory map
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 20_000  # pixels are reopened, not copied
    np.testing.assert_array_equal(clone.images(np.arange(len(ds))), ds.images(np.arange(len(ds))))
