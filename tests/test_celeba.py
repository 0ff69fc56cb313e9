"""CelebA loader on a fake official layout, plus the real 5,000-image sample when present."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.config import DataConfig
from core.data import decode, load_dataset
from core.data.base import DataError, random_split
from core.data.celeba import CROP, CelebA

OFFICIAL_NAMES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
SMILING = OFFICIAL_NAMES.index("Smiling")
REAL_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba"

LISTED, ON_DISK = 30, 24  # a partial download: the last 6 listed images are absent
TRUNCATED, NOT_AN_IMAGE, GRAYSCALE = "000005.jpg", "000007.jpg", "000002.jpg"


def file_name(i: int) -> str:
    return f"{i:06d}.jpg"


def smiling(i: int) -> bool:
    return i % 3 == 0


@pytest.fixture
def fake_celeba(tmp_path, write_fake_image, write_broken_image) -> Path:
    """<tmp>/celeba in the official layout; Smiling images are bright, the others dark."""
    root = tmp_path / "celeba"
    images = root / "img_align_celeba"
    for i in range(1, ON_DISK + 1):
        name = file_name(i)
        if name in (TRUNCATED, NOT_AN_IMAGE):
            write_broken_image(images / name, "truncated" if name == TRUNCATED else "text")
        else:
            write_fake_image(images / name, size=(178, 218), brightness=210 if smiling(i) else 40,
                             mode="L" if name == GRAYSCALE else "RGB")
    write_fake_image(images / "999999.jpg", size=(178, 218))  # on disk but not listed
    rows = []
    for i in range(1, LISTED + 1):
        values = [-1] * len(OFFICIAL_NAMES)
        values[SMILING] = 1 if smiling(i) else -1
        values[0] = 1 if i % 2 else -1
        rows.append(file_name(i) + " " + " ".join(f"{v:2d}" for v in values))  # official padding: "-1  1"
    (root / "list_attr_celeba.txt").write_text(f"{LISTED}\n{' '.join(OFFICIAL_NAMES)} \n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{file_name(i)} {i % 3}\n" for i in range(1, LISTED + 1)))
    (root / "identity_CelebA.txt").write_text("".join(f"{file_name(i)} {100 + i // 4}\n" for i in range(1, LISTED + 1)))
    return root


def numbers(ds: CelebA) -> np.ndarray:
    return np.array([int(f[:6]) for f in ds.files])


def test_partial_download_with_broken_files(fake_celeba, loader_cache_dir):
    before = sorted(p.relative_to(fake_celeba) for p in fake_celeba.rglob("*"))
    ds = CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)

    assert ds.name == "celeba"
    assert len(ds) == ON_DISK - 2 and ds.skipped_count == 2
    assert ds.missing_count == LISTED - ON_DISK
    assert {f for f, _ in ds.cache.failed} == {TRUNCATED, NOT_AN_IMAGE}
    assert "6 of the 30 images" in ds.summary and "could not be decoded" in ds.summary
    assert ds.attributes.names == OFFICIAL_NAMES and ds.attributes.values.dtype == bool
    i = numbers(ds)
    # Metadata rows line up with pixel rows: brightness encodes Smiling.
    pixels = ds.images(np.arange(len(ds)))
    assert pixels.shape == (len(ds), 3, 64, 64) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels.mean(axis=(1, 2, 3)) > 128, ds.attributes.column("Smiling"))
    np.testing.assert_array_equal(ds.attributes.column("Smiling"), smiling(i))
    np.testing.assert_array_equal(ds.attributes.column("5_o_Clock_Shadow"), i % 2 == 1)
    assert ds.split.dtype == np.int8 and list(ds.split) == list(i % 3)
    assert ds.identities.dtype == np.int64 and list(ds.identities) == list(100 + i // 4)
    gray = pixels[ds.files.index(GRAYSCALE)]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()
    assert sorted(p.relative_to(fake_celeba) for p in fake_celeba.rglob("*")) == before, "wrote into the data folder"


def test_second_load_reuses_the_cache(fake_celeba, loader_cache_dir, monkeypatch):
    first = CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)
    assert first.cache.build_seconds is not None
    monkeypatch.setattr(decode, "decode_image", lambda *a: pytest.fail("decoded again"))
    second = CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)
    assert second.cache.build_seconds is None and second.cache.path == first.cache.path
    assert second.files == first.files and second.skipped_count == 2
    np.testing.assert_array_equal(second.images(np.arange(len(second))), first.images(np.arange(len(first))))
    assert isinstance(second.cache.open(), np.memmap)


def test_interrupted_build_leaves_no_cache(fake_celeba, loader_cache_dir, monkeypatch):
    calls = []

    def interrupted(path, crop):
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return np.zeros((3, 64, 64), np.uint8)

    monkeypatch.setattr(decode, "decode_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)
    assert list(loader_cache_dir.iterdir()) == []  # neither a partial .npy nor a leftover temp file
    monkeypatch.undo()
    assert len(CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)) == ON_DISK - 2


def test_standard_crop_box(tmp_path):
    assert CROP.box(178, 218) == (15, 40, 163, 188)
    # Red inside the standard box, blue outside: the 64x64 result must be red only.
    image = np.zeros((218, 178, 3), np.uint8)
    image[..., 2] = 255
    image[40:188, 15:163] = (255, 0, 0)
    path = tmp_path / "box.png"
    Image.fromarray(image).save(path)
    out = decode.decode_image(path, CROP).astype(int)
    assert out[0].min() >= 250 and out[2].max() <= 5


def test_missing_partition_and_identity_files(fake_celeba, loader_cache_dir, caplog):
    (fake_celeba / "list_eval_partition.txt").unlink()
    (fake_celeba / "identity_CelebA.txt").unlink()
    with caplog.at_level(logging.WARNING):
        ds = CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)
    np.testing.assert_array_equal(ds.split, random_split(len(ds), seed=0))
    assert "random 80/10/10 split" in caplog.text and "random" in ds.summary
    assert ds.identities is None


def test_data_seed_picks_the_random_split_without_a_partition_file(fake_celeba, loader_cache_dir):
    (fake_celeba / "list_eval_partition.txt").unlink()

    def split(seed: int) -> np.ndarray:
        return load_dataset(DataConfig("celeba", root=str(fake_celeba), seed=seed), progress=False,
                            cache_dir=loader_cache_dir).split

    assert np.array_equal(split(1), split(1)) and np.array_equal(split(1), random_split(ON_DISK - 2, seed=1))
    assert not np.array_equal(split(0), split(1))


@pytest.mark.parametrize("where", ["parent", "image folder", "missing"])
def test_wrong_root_names_the_right_folder(fake_celeba, loader_cache_dir, where):
    root = {"parent": fake_celeba.parent, "image folder": fake_celeba / "img_align_celeba",
            "missing": fake_celeba / "nope"}[where]
    with pytest.raises(DataError) as error:
        CelebA(root, cache_dir=loader_cache_dir, progress=False)
    expected = fake_celeba / "nope" if where == "missing" else fake_celeba
    assert str(expected) in str(error.value)


def test_bad_attribute_row_names_the_line(fake_celeba, loader_cache_dir):
    path = fake_celeba / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].rsplit(" ", 1)[0]  # file 3 of the table loses its last value
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 5: 39 values for 40 attributes"):
        CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)


def test_bad_partition_value_names_the_line(fake_celeba, loader_cache_dir):
    path = fake_celeba / "list_eval_partition.txt"
    path.write_text(path.read_text().replace(f"{file_name(3)} 0", f"{file_name(3)} 7"))
    with pytest.raises(DataError, match=r"list_eval_partition.txt, line 3: expected 'file value' with value one of"):
        CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)
    assert not loader_cache_dir.exists()  # failed before decoding anything


def test_no_listed_image_on_disk(fake_celeba, loader_cache_dir):
    (fake_celeba / "list_attr_celeba.txt").write_text(f"1\n{' '.join(OFFICIAL_NAMES)}\nabsent.jpg " + " 1" * 40 + "\n")
    with pytest.raises(DataError, match="none of the .* has a row in"):
        CelebA(fake_celeba, cache_dir=loader_cache_dir, progress=False)


@pytest.mark.skipif(not REAL_SAMPLE.is_dir(), reason=f"real CelebA sample not found at {REAL_SAMPLE}")
def test_real_celeba_sample(loader_cache_dir):
    start = time.perf_counter()
    ds = CelebA(REAL_SAMPLE, cache_dir=loader_cache_dir, progress=False)
    built = time.perf_counter() - start
    start = time.perf_counter()
    again = CelebA(REAL_SAMPLE, cache_dir=loader_cache_dir, progress=False)
    reloaded = time.perf_counter() - start
    print(f"CelebA 5k sample: cache built in {built:.1f} s, reloaded in {reloaded:.2f} s")

    assert len(ds) == 5000 and ds.missing_count == 0 and ds.skipped_count == 0
    assert ds.attributes.names == OFFICIAL_NAMES and ds.attributes.values.shape == (5000, 40)
    assert 0.3 < ds.attributes.column("Male").mean() < 0.6  # CelebA is ~42% male
    assert set(np.unique(ds.split)) == {0, 1, 2}
    assert ds.identities is not None and len(np.unique(ds.identities)) > 100
    assert again.cache.build_seconds is None and reloaded < built
    pixels = again.images(np.arange(0, 5000, 25)).astype(np.float64)
    assert 60 < pixels.mean() < 180
    assert pixels.std(axis=(1, 2, 3)).min() > 10  # no blank images
    # Faces are centred: the middle is on average more alike across images than the corners.
    assert pixels[:, :, 24:40, 24:40].std(axis=0).mean() < pixels[:, :, :8, :8].std(axis=0).mean()
