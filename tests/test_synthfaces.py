"""SynthFaces: grid bookkeeping, attributes, and that each factor draws what its name says."""
import numpy as np
import pytest

from core.data.synthfaces import LEVEL_NAMES, SynthFaces

FACTORS = {name: i for i, name in enumerate(LEVEL_NAMES)}
CORNERS = (slice(None), slice(None), slice(None), [0, 0, -1, -1], [0, -1, 0, -1])  # (..., rows, cols)


@pytest.fixture(scope="module")
def ds():
    return SynthFaces(seed=0)


@pytest.fixture(scope="module")
def bases(ds):
    """Random settings of all factors, to vary one factor at a time from."""
    return ds.sample_factors(24, np.random.default_rng(7))


def vary(ds, bases, factor, **fixed):
    """int16 images (levels, bases, 3, 64, 64): `factor` set to each of its levels in turn."""
    out = []
    for level in range(ds.factor_sizes[FACTORS[factor]]):
        f = bases.copy()
        f[:, FACTORS[factor]] = level
        for name, value in fixed.items():
            f[:, FACTORS[name]] = value
        out.append(ds.images_from_factors(f).astype(np.int16))
    return np.stack(out)


def luminance(images):
    return images.mean(axis=-3)


def test_grid_layout_and_names(ds):
    assert ds.name == "synthfaces" and ds.is_ground_truth and ds.identities is None
    assert ds.factor_names == [
        "smile", "eyewear", "hair_colour", "bangs", "skin_tone", "face_width", "head_rotation", "lighting", "background"]
    assert ds.factor_sizes == [5, 3, 4, 2, 4, 4, 5, 3, 3]
    assert [len(LEVEL_NAMES[name]) for name in ds.factor_names] == ds.factor_sizes
    assert len(ds) == np.prod(ds.factor_sizes) == 86_400
    assert all(len(set(levels)) == len(levels) for levels in LEVEL_NAMES.values())


def test_images_shape_dtype_and_index_agree_with_factors(ds):
    index = np.array([0, 1, 4_321, len(ds) - 1])
    images = ds.images(index)
    assert images.shape == (4, 3, 64, 64) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, ds.images_from_factors(ds.index_to_factors(index)))
    assert ds.images(np.array([], dtype=np.int64)).shape == (0, 3, 64, 64)


def test_index_factor_round_trip(ds):
    index = np.random.default_rng(0).integers(0, len(ds), size=500)
    factors = ds.index_to_factors(index)
    assert (factors >= 0).all() and (factors < ds.factor_sizes).all()
    np.testing.assert_array_equal(ds.factors_to_index(factors), index)
    np.testing.assert_array_equal(ds.index_to_factors(np.array([0, len(ds) - 1])), [[0] * 9, np.subtract(ds.factor_sizes, 1)])
    assert ds.index_to_factors(np.array([1]))[0, -1] == 1  # last factor fastest


def test_rendering_is_deterministic_and_batch_independent(ds, bases):
    batch = ds.images_from_factors(bases)
    np.testing.assert_array_equal(batch, SynthFaces(seed=3).images_from_factors(bases))
    np.testing.assert_array_equal(batch[5], ds.images_from_factors(bases[5:6])[0])
    repeated = ds.images_from_factors(np.repeat(bases[:1], 3, axis=0))
    assert (repeated == repeated[0]).all()


def test_out_of_range_levels_are_rejected(ds):
    bad = np.zeros((1, 9), dtype=np.int64)
    bad[0, FACTORS["skin_tone"]] = 4
    with pytest.raises(ValueError, match="out of range"):
        ds.images_from_factors(bad)


@pytest.mark.parametrize("factor", list(LEVEL_NAMES))
def test_every_level_of_every_factor_looks_different(ds, bases, factor):
    images = vary(ds, bases, factor)
    for a in range(len(images)):
        for b in range(a + 1, len(images)):
            diff = np.abs(images[a] - images[b]).max(axis=1)  # (bases, 64, 64)
            assert (diff.max(axis=(1, 2)) >= 25).all(), (factor, a, b)
            assert ((diff > 10).sum(axis=(1, 2)) >= 8).all(), (factor, a, b)


def test_smile_changes_the_mouth_and_a_frown_the_brows_and_bends_the_mouth_the_right_way(ds, bases):
    images = vary(ds, bases, "smile")
    neutral = LEVEL_NAMES["smile"].index("neutral")
    assert (images[neutral:, :, :, :36] == images[neutral, :, :, :36]).all()  # smiles: only the mouth
    assert (images[:, :, :, :20] == images[neutral, :, :, :20]).all()  # frowns: the brows, not the hair above
    assert (images[:, :, :, 48:] == images[neutral, :, :, 48:]).all()
    # Frontal, front-lit face: the lip line at the mouth corners sits lower for a frown.
    corners = vary(ds, bases, "smile", head_rotation=2, lighting=1)[:4, :, :, 38:48, [28, 35]]
    darkness = np.clip(luminance(corners).max(axis=2, keepdims=True) - luminance(corners), 0, None)
    rows = np.arange(38, 48)[:, None]
    corner_row = (darkness * rows).sum(axis=2) / darkness.sum(axis=2)  # (levels, bases, cols)
    frown, slight_frown, neutral, smile = corner_row.mean(axis=(1, 2))
    assert frown > slight_frown > neutral > smile
    assert frown - smile > 1.0  # pixels (the frown's pouted, thicker lips pull its line's centre up)


def test_a_frown_knits_the_brows_so_it_shows_beyond_the_mouth_line(ds, bases):
    frown, slight_frown, neutral = vary(ds, bases, "smile", eyewear=0, hair_colour=0)[:3, :, :, 20:33]
    changed = [(np.abs(level - neutral).max(axis=1) > 20).sum(axis=(1, 2)) for level in (frown, slight_frown)]
    assert (changed[0] >= 20).all() and (changed[1] >= 10).all()  # pixels per face, above the eyes' lower lids
    assert (changed[0] > changed[1]).mean() > 0.9


def test_eyewear_sits_on_the_eyes_and_sunglasses_are_dark(ds, bases):
    none, clear, dark = vary(ds, bases, "eyewear")
    for glasses in (clear, dark):
        assert (glasses[:, :, :25] == none[:, :, :25]).all() and (glasses[:, :, 37:] == none[:, :, 37:]).all()
    eye_band = (slice(None), slice(None), slice(27, 35), slice(16, 48))
    darkening = luminance(none[eye_band]).mean(axis=(1, 2)) - luminance(dark[eye_band]).mean(axis=(1, 2))
    clear_darkening = luminance(none[eye_band]).mean(axis=(1, 2)) - luminance(clear[eye_band]).mean(axis=(1, 2))
    assert (darkening > 25).all()
    assert (clear_darkening < darkening - 15).all()  # skin shows through clear lenses


def test_hair_colour_changes_the_top_of_the_head_not_the_lower_face(ds, bases):
    images = vary(ds, bases, "hair_colour")
    black, brown, blond, grey = images[:, :, :, 10:15, 28:36].mean(axis=(3, 4))  # (bases, rgb) each
    assert (black.mean(axis=1) + 30 < brown.mean(axis=1)).all()
    assert (brown.mean(axis=1) + 40 < blond.mean(axis=1)).all() and (brown.mean(axis=1) + 40 < grey.mean(axis=1)).all()
    assert (blond[:, 0] - blond[:, 2] > 60).all() and (np.abs(grey[:, 0] - grey[:, 2]) < 15).all()  # yellow, grey
    assert (images[:, :, :, 43:] == images[:1, :, :, 43:]).all()


def test_bangs_cover_the_forehead(ds, bases):
    no_bangs, bangs = vary(ds, bases, "bangs")
    forehead = (slice(None), slice(None), slice(19, 24), slice(29, 35))
    assert (np.abs(no_bangs[forehead] - bangs[forehead]).max(axis=1).mean(axis=(1, 2)) > 10).all()
    # Blond and grey fringes over pale skin are nearly skin-coloured: the shadow under them still shows.
    light = vary(ds, bases, "bangs", hair_colour=2, skin_tone=0, head_rotation=2)
    below = light[:, :, :, 24:29, 26:38].mean(axis=(2, 3, 4))  # (levels, bases): just under the fringe
    assert (below[0] - below[1] > 20).all()
    assert (no_bangs[:, :, 38:] == bangs[:, :, 38:]).all()


def test_skin_tone_darkens_the_face_and_leaves_the_background(ds, bases):
    images = vary(ds, bases, "skin_tone", eyewear=0)
    cheeks = luminance(images[:, :, :, 34:38, 24:40]).mean(axis=(2, 3))
    assert (np.diff(cheeks, axis=0) < -15).all()
    assert (images[CORNERS] == images[:1][CORNERS]).all()


def test_background_changes_the_corners_and_not_the_face(ds, bases):
    images = vary(ds, bases, "background")
    corner_colours = images[CORNERS].transpose(0, 1, 3, 2)  # (levels, bases, corners, rgb)
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        assert (np.abs(corner_colours[a] - corner_colours[b]).max(axis=-1) > 40).all()
    assert (images[:, :, :, 16:44, 28:36] == images[:1, :, :, 16:44, 28:36]).all()


def foreground_area(ds, bases, **fixed):
    """(bases,) number of pixels that the background colour does not reach."""
    blue, green = vary(ds, bases, "background", **fixed)[:2]
    return (blue == green).all(axis=1).sum(axis=(1, 2))


def test_wider_faces_cover_more_of_the_background(ds, bases):
    areas = np.stack([foreground_area(ds, bases, face_width=w) for w in range(4)])
    assert (np.diff(areas, axis=0) > 40).all()


def test_head_rotation_moves_the_features_sideways(ds, bases):
    """The mouth (where frown and broad smile differ) moves right as the head turns right."""
    frown = vary(ds, bases, "head_rotation", smile=0)
    broad_smile = vary(ds, bases, "head_rotation", smile=4)
    mouth = np.abs(frown - broad_smile).sum(axis=(2, 3))  # (levels, bases, cols)
    column = (mouth * np.arange(64)).sum(axis=-1) / mouth.sum(axis=-1)
    assert (np.diff(column, axis=0) > 1).all()
    assert (np.abs(column[2] - 31.5) < 1).all()  # frontal is centred


def test_lighting_brightens_the_lit_side(ds, bases):
    images = vary(ds, bases, "lighting")
    face = luminance(images[:, :, :, 20:44, 16:48])
    # Lighting multiplies, so compare brightness ratios: dark faces change little in absolute terms.
    left_over_right = np.log(face[..., :16].mean(axis=(2, 3)) / face[..., 16:].mean(axis=(2, 3)))
    from_left, front, from_right = left_over_right
    assert (from_left > front + 0.04).all() and (front > from_right + 0.04).all()


def test_attributes_follow_the_factors(ds):
    values, names = ds.attributes.values, ds.attributes.names
    assert values.shape == (len(ds), len(names)) and values.dtype == bool
    factors = ds.index_to_factors(np.arange(len(ds)))
    np.testing.assert_array_equal(values, ds.attributes_from_factors(factors))

    def level(factor, name):
        return factors[:, FACTORS[factor]] == LEVEL_NAMES[factor].index(name)

    col = ds.attributes.column
    np.testing.assert_array_equal(col("Eyeglasses"), level("eyewear", "eyeglasses") | level("eyewear", "sunglasses"))
    np.testing.assert_array_equal(col("Sunglasses"), level("eyewear", "sunglasses"))
    np.testing.assert_array_equal(col("Smiling"), level("smile", "smile") | level("smile", "broad smile"))
    np.testing.assert_array_equal(col("Bangs"), level("bangs", "bangs"))
    np.testing.assert_array_equal(col("Pale_Skin"), level("skin_tone", "pale"))
    np.testing.assert_array_equal(col("Blond_Hair"), level("hair_colour", "blond"))
    hair = np.stack([col(n) for n in ("Black_Hair", "Brown_Hair", "Blond_Hair", "Gray_Hair")], axis=1)
    assert (hair.sum(axis=1) == 1).all()
    assert not (col("Smiling") & col("Frowning")).any()
    assert not (col("Facing_Left") & col("Facing_Right")).any()
    assert col("Narrow_Face").mean() == pytest.approx(0.25)


def test_sample_one_factor_varying_fixes_the_others(ds):
    rng = np.random.default_rng(1)
    for factor in range(ds.num_factors):
        batch = ds.sample_one_factor_varying(factor, 64, rng)
        others = np.delete(batch, factor, axis=1)
        assert (others == others[0]).all()
        assert len(np.unique(batch[:, factor])) > 1


def test_split_is_about_80_10_10_and_seeded(ds):
    fractions = [len(ds.indices(s)) / len(ds) for s in ("train", "val", "test")]
    assert fractions == pytest.approx([0.8, 0.1, 0.1], abs=0.01)
    np.testing.assert_array_equal(ds.split, SynthFaces(seed=0).split)
    assert (ds.split != SynthFaces(seed=1).split).any()


def test_edges_are_anti_aliased(ds, bases):
    """Where the head outline crosses a pixel, that pixel mixes background and face colour."""
    blue, green = vary(ds, bases, "background")[:2]
    change = np.abs(blue - green).max(axis=1)  # (bases, 64, 64)
    full = change[:, :1, :1]  # a corner: pure background
    partial = (change > 0.1 * full) & (change < 0.9 * full)
    assert (partial.sum(axis=(1, 2)) > 40).all()
