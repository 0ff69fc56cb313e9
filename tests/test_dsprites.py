import numpy as np
import pytest

from core.data.dsprites import SHAPES, DSprites

SQUARE, ELLIPSE, HEART = range(3)
FULL_SCALE, HALF_SCALE = 5, 0
NOMINAL = {SQUARE: (20, 20), ELLIPSE: (26, 14), HEART: (20, 17)}  # (width, height) px at scale 1


@pytest.fixture(scope="module")
def ds():
    return DSprites(seed=0)


def render(ds, shape, scale=FULL_SCALE, orientation=0, pos_x=0, pos_y=0):
    """One image as a (64, 64) bool mask."""
    return ds.images_from_factors(np.array([[shape, scale, orientation, pos_x, pos_y]]))[0, 0] > 0


def extent(mask):
    """(width, height) in pixels of the lit pixels' bounding box."""
    cols, rows = np.flatnonzero(mask.any(0)), np.flatnonzero(mask.any(1))
    return cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1


def centroid(mask):
    """(x, y) centroid in continuous pixel coordinates, y down."""
    rows, cols = np.nonzero(mask)
    return cols.mean() + 0.5, rows.mean() + 0.5


def expected_centre(ds, pos_x, pos_y):
    return 16 + 32 * ds.factor_values[3][pos_x], 16 + 32 * ds.factor_values[4][pos_y]


def runs(row):
    """Number of separate runs of lit pixels in a 1-D mask."""
    return int(row[0]) + int(np.count_nonzero(row[1:] & ~row[:-1]))


def test_factor_grid_matches_published_dsprites(ds):
    assert len(ds) == 737_280
    assert ds.factor_names == ["shape", "scale", "orientation", "posX", "posY"]
    assert ds.factor_sizes == [3, 6, 40, 32, 32]
    assert [len(v) for v in ds.factor_values] == ds.factor_sizes
    np.testing.assert_allclose(ds.factor_values[1], [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert ds.factor_values[2][0] == 0 and ds.factor_values[2][-1] == pytest.approx(2 * np.pi)
    assert len(SHAPES) == 3 and ds.is_ground_truth and ds.identities is None
    # Last factor fastest, as in the published .npz.
    np.testing.assert_array_equal(ds.index_to_factors(np.array([1, 32, 737_279])),
                                  [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [2, 5, 39, 31, 31]])


def test_images_are_binary_rgb_uint8(ds):
    images = ds.images(np.array([0, 12_345, 400_000, 737_279]))
    assert images.dtype == np.uint8 and images.shape == (4, 3, 64, 64)
    assert set(np.unique(images)) == {0, 255}
    assert (images == images[:, :1]).all()
    assert (images.reshape(4, -1) > 0).any(axis=1).all()


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE])
def test_symmetric_shape_extent_at_scale_1(ds, shape):
    # posX = posY = 0 puts the centre on a pixel corner, so the extents are unambiguous.
    assert extent(render(ds, shape)) == NOMINAL[shape]


def test_heart_extent_and_lobes_up(ds):
    # The grid centre puts the tip's column centre 0.02 px off the axis, so the
    # single-pixel point at the bottom is sampled.
    mask = render(ds, HEART, pos_x=15, pos_y=15)
    assert extent(mask) == NOMINAL[HEART]
    rows = mask[mask.any(1)]
    assert runs(rows[0]) == runs(rows[1]) == 2
    assert rows[-1].sum() == 1 and rows[-2].sum() <= 4
    assert rows[:4].sum() > rows[-4:].sum()


def test_extent_everywhere_within_a_pixel_of_nominal(ds):
    # A thin tip or a rounded edge can fall between pixel centres: at most one pixel lost.
    for shape, (width, height) in NOMINAL.items():
        grid = np.array([[shape, FULL_SCALE, 0, x, y] for x in range(0, 32, 3) for y in range(0, 32, 3)])
        for mask in ds.images_from_factors(grid)[:, 0] > 0:
            w, h = extent(mask)
            assert width - 1 <= w <= width and height - 1 <= h <= height


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_half_scale_halves_extent(ds, shape):
    for pos in [(0, 0), (15, 15), (31, 7)]:
        w, h = extent(render(ds, shape, scale=HALF_SCALE, pos_x=pos[0], pos_y=pos[1]))
        assert abs(w - NOMINAL[shape][0] / 2) <= 1 and abs(h - NOMINAL[shape][1] / 2) <= 1


@pytest.mark.parametrize("shape, scale, area", [
    (SQUARE, FULL_SCALE, 400), (ELLIPSE, FULL_SCALE, np.pi * 13 * 7), (ELLIPSE, HALF_SCALE, np.pi * 6.5 * 3.5),
])
def test_mean_pixel_count_matches_area(ds, shape, scale, area):
    # Averaged over all sub-pixel offsets the centre takes, the pixel count is an
    # unbiased area estimate: this checks sizes more finely than a bounding box can.
    grid = np.array([[shape, scale, 0, x, y] for x in range(32) for y in range(32)])
    counts = (ds.images_from_factors(grid)[:, 0] > 0).sum(axis=(1, 2))
    assert counts.mean() == pytest.approx(area, rel=0.01)


@pytest.mark.parametrize("pos", [(0, 0), (31, 31), (7, 24), (20, 3)])
def test_position_sets_centre(ds, pos):
    want_x, want_y = expected_centre(ds, *pos)
    for shape in (SQUARE, ELLIPSE):
        got_x, got_y = centroid(render(ds, shape, pos_x=pos[0], pos_y=pos[1]))
        assert abs(got_x - want_x) <= 0.5 and abs(got_y - want_y) <= 0.5
    # The heart is only left-right symmetric.
    assert abs(centroid(render(ds, HEART, pos_x=pos[0], pos_y=pos[1]))[0] - want_x) <= 0.5


def test_larger_pos_y_is_lower_in_image(ds):
    assert centroid(render(ds, SQUARE, pos_y=25))[1] > centroid(render(ds, SQUARE, pos_y=5))[1] + 10


def nearest_orientation(ds, angle):
    return int(np.argmin(np.abs(ds.factor_values[2] - angle)))


def test_rotation_is_counter_clockwise_on_screen(ds):
    level = nearest_orientation(ds, np.pi / 4)
    mask = render(ds, ELLIPSE, orientation=level, pos_x=15, pos_y=15)
    cx, cy = expected_centre(ds, 15, 15)
    rows, cols = np.nonzero(mask)
    x, up = cols + 0.5 - cx, cy - (rows + 0.5)
    assert up[x > 2].mean() > 2 and up[x < -2].mean() < -2
    # Long axis angle from second moments, y up.
    axis = 0.5 * np.arctan2(2 * (x * up).mean(), (x * x).mean() - (up * up).mean())
    assert axis == pytest.approx(ds.factor_values[2][level], abs=np.radians(3))


def test_heart_quarter_turn_points_lobes_left(ds):
    mask = render(ds, HEART, orientation=nearest_orientation(ds, np.pi / 2), pos_x=15, pos_y=15)
    cols = np.flatnonzero(mask.any(0))
    assert runs(mask[:, cols[0]]) == 2 and mask[:, cols[-1]].sum() <= 2


def test_orientation_2pi_equals_0(ds):
    positions = [(0, 0), (13, 29)]
    base = np.array([[s, sc, 0, x, y] for s in range(3) for sc in (HALF_SCALE, FULL_SCALE) for x, y in positions])
    full_turn = base.copy()
    full_turn[:, 2] = 39
    np.testing.assert_array_equal(ds.images_from_factors(base), ds.images_from_factors(full_turn))


def test_index_factor_round_trip(ds):
    index = np.random.default_rng(1).integers(0, len(ds), size=1000)
    factors = ds.index_to_factors(index)
    np.testing.assert_array_equal(ds.factors_to_index(factors), index)
    np.testing.assert_array_equal(ds.images(index[:8]), ds.images_from_factors(factors[:8]))


def test_sample_one_factor_varying_keeps_others_fixed(ds):
    factors = ds.sample_one_factor_varying(2, 64, np.random.default_rng(2))
    others = np.delete(factors, 2, axis=1)
    assert (others == others[0]).all()
    assert len(np.unique(factors[:, 2])) > 1
    assert (factors < np.array(ds.factor_sizes)).all()


def test_attributes_follow_factors(ds):
    assert ds.attributes.names == ["Square", "Ellipse", "Heart", "Large", "Left", "Top"]
    assert ds.attributes.values.shape == (len(ds), 6) and ds.attributes.values.dtype == bool
    index = np.random.default_rng(3).integers(0, len(ds), size=2000)
    f = ds.index_to_factors(index)
    shape, scale, pos_x, pos_y = f[:, 0], f[:, 1], f[:, 3], f[:, 4]
    expected = np.stack([shape == 0, shape == 1, shape == 2, scale >= 3, pos_x < 16, pos_y < 16], axis=1)
    np.testing.assert_array_equal(ds.attributes.values[index], expected)
    np.testing.assert_array_equal(ds.attributes_from_factors(f), expected)
    top = ds.attributes.column("Top")
    assert centroid(ds.images(np.flatnonzero(top)[:1])[0, 0] > 0)[1] < 32


def test_deterministic(ds):
    index = np.arange(0, len(ds), 73_728)
    np.testing.assert_array_equal(DSprites(seed=0).images(index), ds.images(index))
    np.testing.assert_array_equal(DSprites(seed=0).split, ds.split)
    assert (DSprites(seed=1).split != ds.split).any()
    assert set(np.unique(ds.split)) == {0, 1, 2}
