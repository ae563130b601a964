"""Grid layout, normalisation and colour maps on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from convtool import colormaps
from convtool.errors import UsageError
from convtool.grid import BACKGROUND, LINE, grid, is_signed, layout, overview, styles


def lightness(name: str) -> np.ndarray:
    return colormaps.srgb_to_lab(colormaps.lut(name) / 255.0)[:, 0]


# ------------------------------------------------------------------ colour maps


def test_gray_is_the_identity_ramp():
    table = colormaps.lut("gray")
    np.testing.assert_array_equal(table, np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1))


@pytest.mark.parametrize(
    "name,first,last",
    [
        ("viridis", "#440154", "#fde725"),
        ("magma", "#000004", "#fcfdbf"),
        ("diverging", "#08306b", "#67000d"),
    ],
)
def test_endpoints_are_the_anchor_colours(name, first, last):
    table = colormaps.lut(name).astype(int)

    def rgb(code):
        return [int(code[i : i + 2], 16) for i in (1, 3, 5)]

    assert np.abs(table[0] - rgb(first)).max() <= 1
    assert np.abs(table[-1] - rgb(last)).max() <= 1


@pytest.mark.parametrize("name", ["gray", "viridis", "magma"])
def test_sequential_maps_grow_lighter(name):
    light = lightness(name)
    assert np.all(np.diff(light) > -0.5)  # monotonic up to 8-bit rounding
    assert light[-1] - light[0] > 60


def test_diverging_is_lightest_at_zero_and_dark_at_both_ends():
    light = lightness("diverging")
    peak = int(np.argmax(light))
    assert 120 <= peak <= 135
    assert light[peak] > 95
    assert np.all(np.diff(light[: peak + 1]) > -0.5)
    assert np.all(np.diff(light[peak:]) < 0.5)
    assert light[0] < 30 and light[-1] < 30
    table = colormaps.lut("diverging").astype(int)
    assert table[0, 2] > table[0, 0]  # blue end
    assert table[-1, 0] > table[-1, 2]  # red end


def test_lab_round_trip():
    rgb = np.random.default_rng(0).random((50, 3))
    np.testing.assert_allclose(colormaps.lab_to_srgb(colormaps.srgb_to_lab(rgb)), rgb, atol=1e-6)


def test_apply_clips_and_sends_nan_to_the_low_end():
    out = colormaps.apply(np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.nan]), "gray", 0.0, 1.0)
    assert out[:, 0].tolist() == [0, 0, 128, 255, 255, 0]


def test_unknown_cmap_lists_the_choices():
    with pytest.raises(UsageError, match="gray, viridis, magma, diverging"):
        colormaps.lut("jet")


# ---------------------------------------------------------------- normalisation


def test_styles_map_global_and_auto():
    pos = np.array([[0.0, 2.0]])
    signed = np.array([[-1.0, 3.0]])
    per_map = styles([pos, signed])
    assert (per_map[0].cmap, per_map[0].lo, per_map[0].hi) == ("gray", 0.0, 2.0)
    assert (per_map[1].cmap, per_map[1].lo, per_map[1].hi) == ("diverging", -3.0, 3.0)
    shared = styles([pos, signed], normalize="global")
    assert {(s.cmap, s.lo, s.hi) for s in shared} == {("diverging", -3.0, 3.0)}
    forced = styles([pos], cmap="viridis", normalize="global")
    assert (forced[0].cmap, forced[0].lo, forced[0].hi) == ("viridis", 0.0, 2.0)
    with pytest.raises(UsageError, match="map or global"):
        styles([pos], normalize="local")


def test_round_off_is_not_a_sign():
    assert not is_signed(np.array([-1e-7, 0.0, 5.0]))
    assert is_signed(np.array([-0.1, 0.0, 5.0]))
    assert not is_signed(np.zeros(3))


# ----------------------------------------------------------------------- layout


def test_layout_positions():
    lay = layout(7, 40, 60, cols=3, gutter=5, title=True)
    assert (lay.rows, lay.cols) == (3, 3)
    assert lay.width == 3 * 60 + 4 * 5
    cell = LINE + 40
    assert lay.height == (LINE + 4) + 3 * cell + 4 * 5
    assert lay.tiles[0] == (LINE + 4 + 5 + LINE, 5)
    assert lay.tiles[4] == (LINE + 4 + 5 + cell + 5 + LINE, 5 + 65)
    assert layout(4, 10, 10).cols == 2  # near-square by default
    assert layout(3, 10, 10, cols=8).cols == 3  # never wider than needed


def tile(img, lay, i, h, w):
    y, x = lay.tiles[i]
    return img[y : y + h, x : x + w]


def test_grid_map_normalisation_puts_known_values_at_known_pixels():
    ramp = np.tile(np.linspace(0, 1, 100, dtype=np.float32), (100, 1))
    maps = [ramp, 2 * ramp]
    img = grid(maps, ["a", "b"], cols=2, gutter=4, cmap="gray")
    lay = layout(2, 100, 100, cols=2, gutter=4)
    assert img.shape == (lay.height, lay.width, 3)
    a, b = tile(img, lay, 0, 100, 100), tile(img, lay, 1, 100, 100)
    # per-map: both span black..white
    assert a[50, 0].tolist() == [0, 0, 0] and a[50, -1].tolist() == [255, 255, 255]
    assert b[50, -1].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(a, b)
    # global: the first map only reaches half way
    img = grid(maps, ["a", "b"], cols=2, gutter=4, cmap="gray", normalize="global")
    a, b = tile(img, lay, 0, 100, 100), tile(img, lay, 1, 100, 100)
    assert a[50, -1, 0] == 128 and b[50, -1, 0] == 255
    # gutters keep the background
    assert img[lay.tiles[0][0] + 10, 1].tolist() == list(BACKGROUND)


def test_signed_maps_are_drawn_diverging_with_zero_white():
    m = np.zeros((100, 100), dtype=np.float32)
    m[:, :30] = -1.0
    m[:, 70:] = 2.0
    img = grid([m], ["signed"], gutter=0)
    t = tile(img, layout(1, 100, 100, gutter=0), 0, 100, 100).astype(int)
    neg, zero, pos = t[50, 10], t[50, 50], t[50, 90]
    assert zero.min() > 235  # white
    assert neg[2] > neg[0] + 40  # blue
    assert pos.tolist() == colormaps.lut("diverging")[-1].tolist()  # 2 is the top: dark red
    assert pos[0] > pos[2] + 80


def test_input_is_drawn_first_and_small_maps_are_enlarged():
    img_in = np.zeros((40, 40), dtype=np.float32)
    img_in[:, 20:] = 255
    small = np.arange(25, dtype=np.float32).reshape(5, 5)
    out = grid([small], ["s"], input_image=img_in, cols=2, gutter=2, min_tile=100)
    lay = layout(2, 100, 100, cols=2, gutter=2)
    inp = tile(out, lay, 0, 100, 100)
    assert inp[50, 10].tolist() == [0, 0, 0] and inp[50, 90].tolist() == [255, 255, 255]
    sm = tile(out, lay, 1, 100, 100)
    # 5x5 -> 100x100 by 20x repetition: each source pixel is a flat 20x20 block
    assert (sm[:20, :20] == sm[0, 0]).all() and sm[0, 0, 0] == 0 and sm[-1, -1, 0] == 255


def test_labels_are_drawn_and_colour_bars_span_the_range():
    m = np.tile(np.linspace(-2, 2, 120, dtype=np.float32), (60, 1))
    img = grid([m], ["a label"], gutter=0, colorbar=True, cmap="viridis")
    lay = layout(1, 60, 120, gutter=0, colorbar=True)
    y, x = lay.tiles[0]
    label_strip = img[y - LINE : y, x : x + 120]
    assert (label_strip.astype(int).sum(axis=2) > 500).sum() > 20  # light text pixels
    bar = img[y + 60 + 2 : y + 60 + 12, x : x + 120]
    lut = colormaps.lut("viridis")
    assert bar[5, 0].tolist() == lut[0].tolist() and bar[5, -1].tolist() == lut[-1].tolist()
    value_line = img[y + 60 + 13 :, x : x + 120]
    assert (value_line.astype(int).sum(axis=2) > 500).sum() > 10  # the numbers


def test_grid_errors():
    with pytest.raises(UsageError, match="labels"):
        grid([np.zeros((4, 4))], ["a", "b"])
    with pytest.raises(UsageError, match="2-D array or vector"):
        grid([np.zeros((2, 4, 4))])
    with pytest.raises(UsageError, match="2-D array or vector"):
        grid([np.zeros(0)])
    with pytest.raises(UsageError, match="cols"):
        grid([np.zeros((4, 4))], cols=0)


def test_overview_rows():
    rows = [("one", np.random.default_rng(0).random((12, 30, 30))), ("two", np.ones((2, 8, 8)))]
    sheet = overview(rows, max_maps=4, tile=50, gutter=5, input_image=np.zeros((20, 20)))
    assert sheet.shape[1] == 4 * 50 + 5 * 5
    assert sheet.shape[0] == 3 * (LINE + 50 + 5) + 5


def test_clip_keeps_a_few_outliers_from_darkening_the_map():
    rng = np.random.default_rng(1)
    m = rng.random((100, 100)).astype(np.float32)  # 0..1
    m[0, :5] = 1000.0  # five hot pixels
    exact = styles([m])[0]
    robust = styles([m], clip=1.0)[0]
    assert exact.hi == 1000.0
    assert 0.95 < robust.hi < 1.0 and 0.0 <= robust.lo < 0.05
    img = grid([m], cmap="gray", clip=1.0, gutter=0)
    y, x = layout(1, 100, 100, gutter=0).tiles[0]
    body = img[y + 10 : y + 100, x : x + 100, 0]
    assert 100 < body.mean() < 155  # uniform 0..1 spread over the ramp, not crushed to black
    with pytest.raises(UsageError, match="clip"):
        styles([m], clip=60)


def test_a_flat_vector_is_one_block_row_by_row_with_blank_cells_as_background():
    values = np.arange(10, dtype=np.float32)  # 4 columns, 3 rows, 2 blank cells
    img = grid(values, ["ten values"], gutter=0, min_tile=96)
    lay = layout(1, 72, 96, gutter=0)  # 3x4 cells, upscaled 24x
    assert img.shape == (lay.height, lay.width, 3)
    y, x = lay.tiles[0]
    tile = img[y : y + 72, x : x + 96]
    cells = tile[12::24, 12::24, 0].astype(int)  # each cell's centre
    gray = colormaps.lut("gray")[:, 0].astype(int)
    expect = [gray[round(v * 255 / 9)] for v in range(10)]
    assert cells.reshape(-1)[:10].tolist() == expect
    assert (tile[48:, 48:] == BACKGROUND).all()  # the two blank cells
    assert not (tile[48:, :48] == BACKGROUND).all(axis=2).any()
    # a vector among 2-D maps, and in an overview row
    mixed = grid([np.ones((5, 5)), np.linspace(-1, 1, 512)], ["map", "512 values"])
    assert mixed.ndim == 3
    sheet = overview([("fc", np.linspace(-1, 1, 4096))], tile=64, gutter=0)
    assert sheet.shape == (LINE + 64, 64, 3)
    assert not (sheet[LINE:] == BACKGROUND).all(axis=2).any()  # 64x64 values: no blank cell


def test_a_title_wider_than_the_sheet_wraps_onto_a_second_line():
    maps = [np.ones((20, 20))]
    one = grid(maps, title="short", min_tile=96, gutter=4)
    two = grid(maps, title="a rather long title that cannot fit over one tile", min_tile=96,
               gutter=4)  # fmt: skip
    assert one.shape == (layout(1, 100, 100, gutter=4, title=True).height, 108, 3)
    assert two.shape == (layout(1, 100, 100, gutter=4, title=2).height, 108, 3)
    second = two[4 + LINE : 4 + 2 * LINE]
    assert (second.astype(int).sum(axis=2) > 500).sum() > 20  # text on the second line


# ------------------------------------------------------------------ the input's scale


def test_a_known_range_draws_a_dark_16_bit_input_dark():
    # values 0..200 of 65535: near black, not the 8-bit 0..200 a guess would see
    dark = np.tile(np.linspace(0, 200, 100, dtype=np.float32), (100, 1))
    small = np.zeros((100, 100), dtype=np.float32)
    lay = layout(2, 100, 100, cols=2, gutter=2)
    out = grid([small], input_image=dark, input_range=(0, 65535), cols=2, gutter=2)
    assert tile(out, lay, 0, 100, 100).max() <= 1
    guessed = grid([small], input_image=dark, cols=2, gutter=2)
    assert tile(guessed, lay, 0, 100, 100)[:, -1].min() >= 199  # the API still works without it
    sheet = overview([("a", small[None])], input_image=dark, input_range=(0, 65535), tile=100)
    assert sheet[LINE + 6 : LINE + 106, 6:106].max() <= 1
    # a uint8 array given with its range is scaled too: (0, 510) halves it
    half = grid([small], input_image=np.full((100, 100), 200, np.uint8), input_range=(0, 510),
                cols=2, gutter=2)  # fmt: skip
    assert tile(half, lay, 0, 100, 100)[50, 50].tolist() == [100, 100, 100]


def test_a_guessed_range_keeps_the_low_end_of_negative_values():
    # -100..300 does not fit 0..255 or 0..65535: drawn min..max, so 0 is a dark grey, not black
    ramp = np.tile(np.linspace(-100, 300, 5, dtype=np.float32).repeat(20), (100, 1))
    lay = layout(2, 100, 100, cols=2, gutter=2)
    out = grid([np.zeros((100, 100))], input_image=ramp, cols=2, gutter=2)
    inp = tile(out, lay, 0, 100, 100)[50, ::20, 0]
    assert inp.tolist() == [0, 64, 128, 191, 255]
