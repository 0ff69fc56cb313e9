"""LFW loader on a fake lfw-deepfunneled/ layout with an lfw_attributes.txt beside it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.data.base import DataError
from core.data.lfw import CROP, LFW, celeba_style, identity_split

LFW_EYES = ((104, 113), (146, 113))  # mean eye centres of deep-funneled LFW images
ATTRIBUTE_NAMES = ["Male", "Black Hair", "5 o' Clock Shadow", "Smiling", "Eyeglasses", "Strong Nose-Mouth Lines"]
PEOPLE = {f"Test Person {chr(65 + k)}": 1 + k % 3 for k in range(10)} | {"Zico": 2}
UNLABELLED = "Zico"  # has images but no rows in the attribute file
TRUNCATED = "Test_Person_B/Test_Person_B_0002.jpg"
GRAYSCALE = "Test_Person_C/Test_Person_C_0001.jpg"


def folder(person: str) -> str:
    return person.replace(" ", "_")


def smiling(person: str, number: int) -> bool:
    return (len(person) + number) % 2 == 0


@pytest.fixture
def fake_lfw(tmp_path, write_fake_image, write_broken_image) -> Path:
    """<tmp>/lfw-deepfunneled/<Name>/<Name>_NNNN.jpg; Smiling images have a bright background."""
    images = tmp_path / "lfw-deepfunneled"
    for person, count in PEOPLE.items():
        for number in range(1, count + 1):
            file = f"{folder(person)}/{folder(person)}_{number:04d}.jpg"
            if file == TRUNCATED:
                write_broken_image(images / file, "truncated")
            else:
                write_fake_image(images / file, size=(250, 250), eyes=LFW_EYES,
                                 brightness=230 if smiling(person, number) else 30,
                                 mode="L" if file == GRAYSCALE else "RGB")
    rows = [f"{person}\t{number}\t" + "\t".join(
                f"{(1.5 if smiling(person, number) else -0.75) if name == 'Smiling' else -0.2 + 0.1 * k:.5f}"
                for k, name in enumerate(ATTRIBUTE_NAMES))
            for person, count in PEOPLE.items() if person != UNLABELLED for number in range(1, count + 1)]
    rows.append("Ghost Person\t1\t" + "\t".join(["1.0"] * len(ATTRIBUTE_NAMES)))  # no such image
    text = ["LFW attribute file. Please see the website for more information.",
            "#\tperson\timagenum\t" + "\t".join(ATTRIBUTE_NAMES), *rows]
    (tmp_path / "lfw_attributes.txt").write_bytes(("\r\n".join(text) + "\r\n").encode())  # Windows line endings
    return images


def test_loads_fake_lfw(fake_lfw, loader_cache_dir):
    ds = LFW(fake_lfw, cache_dir=loader_cache_dir, progress=False)

    assert ds.name == "lfw" and ds.root == fake_lfw
    assert len(ds) == sum(PEOPLE.values()) - 1 and ds.skipped_count == 1 and TRUNCATED not in ds.files
    assert ds.identity_names == sorted(folder(p) for p in PEOPLE)
    people = [f.split("/")[0] for f in ds.files]
    assert [ds.identity_names[i] for i in ds.identities] == people and ds.identities.dtype == np.int64
    for person in set(people):  # a person never straddles two splits
        assert len(set(ds.split[np.array(people) == person])) == 1
    assert ds.split.dtype == np.int8

    assert ds.attributes.names == ["Male", "Black_Hair", "5_o_Clock_Shadow", "Smiling", "Eyeglasses",
                                   "Strong_Nose_Mouth_Lines"]
    unlabelled = np.array(people) == UNLABELLED
    np.testing.assert_array_equal(ds.has_attributes, ~unlabelled)
    assert ds.unlabelled_count == PEOPLE[UNLABELLED] and not ds.attributes.values[unlabelled].any()
    assert "have no row" in ds.summary
    # Binarised at 0, and rows line up with pixels: the bright images are the smiling ones.
    np.testing.assert_array_equal(ds.attributes.column("Eyeglasses"), ~unlabelled)  # score +0.2
    np.testing.assert_array_equal(ds.attributes.column("Male"), False)  # score -0.2
    bright = ds.images(np.arange(len(ds))).mean(axis=(1, 2, 3)) > 128
    np.testing.assert_array_equal(bright[~unlabelled], ds.attributes.column("Smiling")[~unlabelled])

    gray = ds.images(np.array([ds.files.index(GRAYSCALE)]))[0]
    assert (gray[0] == gray[1]).all() and (gray[1] == gray[2]).all()


def test_parent_folder_picks_the_image_folder(fake_lfw, loader_cache_dir, write_fake_image):
    write_fake_image(fake_lfw.parent / "lfw" / "Other" / "Other_0001.jpg")  # deep-funneled is preferred
    ds = LFW(fake_lfw.parent, cache_dir=loader_cache_dir, progress=False)
    assert ds.root == fake_lfw and f"using the images in {fake_lfw}" in ds.summary


def test_person_folder_is_one_level_too_low(fake_lfw, loader_cache_dir):
    with pytest.raises(DataError, match=f"pass the LFW folder above it, {fake_lfw}"):
        LFW(fake_lfw / "Zico", cache_dir=loader_cache_dir, progress=False)


def test_folder_without_lfw_layout(tmp_path, loader_cache_dir, write_fake_image):
    with pytest.raises(DataError, match="does not exist"):
        LFW(tmp_path / "missing", cache_dir=loader_cache_dir)
    write_fake_image(tmp_path / "photos" / "holiday.jpg")
    with pytest.raises(DataError, match=f"{tmp_path / 'photos'} holds no LFW person folders"):
        LFW(tmp_path / "photos", cache_dir=loader_cache_dir)


def test_no_attribute_file(fake_lfw, loader_cache_dir):
    (fake_lfw.parent / "lfw_attributes.txt").unlink()
    ds = LFW(fake_lfw, cache_dir=loader_cache_dir, progress=False)
    assert ds.attributes.names == [] and ds.attributes.values.shape == (len(ds), 0)
    assert ds.unlabelled_count == len(ds)


@pytest.mark.parametrize("damage, message", [
    (lambda row: row.rsplit("\t", 1)[0], r"line 4: 7 tab-separated fields, expected 8"),
    (lambda row: row.replace("-0.20000", "n/a"), r"line 4, column Male: 'n/a' is not a number"),
])
def test_bad_attribute_row_names_the_line(fake_lfw, loader_cache_dir, damage, message):
    path = fake_lfw.parent / "lfw_attributes.txt"
    lines = path.read_text().splitlines()
    lines[3] = damage(lines[3])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        LFW(fake_lfw, cache_dir=loader_cache_dir, progress=False)


def test_attribute_names_become_celeba_style():
    assert celeba_style("Black Hair") == "Black_Hair"
    assert celeba_style("5 o' Clock Shadow") == "5_o_Clock_Shadow"
    assert celeba_style("Smiling") == "Smiling"


def test_identity_split_is_stable_and_balanced():
    names = [f"Person_{i}" for i in range(3000)]
    split = identity_split(names)
    np.testing.assert_array_equal(split, identity_split(names))
    np.testing.assert_array_equal(identity_split(names[::-1]), split[::-1])  # per name, not per position
    assert np.allclose(np.bincount(split) / len(names), [0.8, 0.1, 0.1], atol=0.03)


def test_crop_box():
    assert CROP.box(250, 250) == (43, 34, 207, 198)
