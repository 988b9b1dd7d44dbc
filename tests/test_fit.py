"""Fitting: crop boxes keep the target aspect, pad keeps the whole frame, sizes snap to 16."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wan2gp_structure_video.errors import OptionError, TargetError
from wan2gp_structure_video.preprocessors.video.fit import (
    FrameFitter, crop_box, pad_box, parse_resolution, snap_resolution)

sides = st.integers(min_value=16, max_value=4096)


@given(sides, sides, sides, sides)
def test_crop_box_inside_centred_and_aspect(sw, sh, dw, dh):
    box = crop_box(sw, sh, dw, dh)
    assert 0 <= box.x and 0 <= box.y
    assert box.x + box.width <= sw and box.y + box.height <= sh
    assert box.width == sw or box.height == sh  # the largest such box touches two sides
    # centred within one pixel
    assert abs((sw - box.width) - 2 * box.x) <= 1 and abs((sh - box.height) - 2 * box.y) <= 1
    # aspect matches the target to rounding of one pixel
    assert abs(box.width * dh - box.height * dw) <= max(dw, dh)


@given(sides, sides, sides, sides)
def test_pad_box_keeps_whole_frame_aspect(sw, sh, dw, dh):
    box = pad_box(sw, sh, dw, dh)
    assert box.x + box.width <= dw and box.y + box.height <= dh
    assert box.width == dw or box.height == dh
    assert abs(box.width * sh - box.height * sw) <= max(sw, sh)


def test_square_source_for_landscape_target_is_cropped_not_stretched():
    assert crop_box(1920, 1920, 1280, 720) == crop_box(1920, 1920, 16, 9)
    box = crop_box(1920, 1920, 1280, 720)
    assert (box.width, box.height, box.x, box.y) == (1920, 1080, 0, 420)


def test_snap_and_parse():
    assert parse_resolution("832x480") == (832, 480)
    assert parse_resolution(" 1280 * 720 ") == (1280, 720)
    assert snap_resolution(833, 481) == (832, 480)
    assert snap_resolution(100, 70) == (96, 64)
    with pytest.raises(TargetError, match="WIDTHxHEIGHT"):
        parse_resolution("big")
    with pytest.raises(TargetError, match="between 64 and 4096"):
        snap_resolution(32, 480)
    with pytest.raises(TargetError, match="between 64 and 4096"):
        snap_resolution(832, 5000)


def _moving_square(w, h, x):
    img = np.zeros((h, w, 3), np.uint8)
    img[h // 2 - 10:h // 2 + 10, x:x + 20] = 255
    return img


@pytest.mark.parametrize("mode", ["crop", "pad", "stretch"])
@pytest.mark.parametrize("src", [(333, 201), (201, 333), (400, 400), (1000, 100)])
def test_fitter_output_shape_and_fresh_array(mode, src):
    fitter = FrameFitter(src[0], src[1], 160, 96, mode)
    frame = np.random.default_rng(0).integers(0, 255, (src[1], src[0], 3), dtype=np.uint8)
    out = fitter(frame)
    assert out.shape == (96, 160, 3) and out.dtype == np.uint8
    assert out.base is None or out.base is not frame  # never a view that keeps the source alive
    assert not np.shares_memory(out, frame)


def test_crop_keeps_circles_round():
    # A circle in a square source stays a circle after crop, but becomes an ellipse when stretched.
    img = np.zeros((400, 400, 3), np.uint8)
    yy, xx = np.mgrid[:400, :400]
    img[(xx - 200) ** 2 + (yy - 200) ** 2 < 60 ** 2] = 255
    for mode, round_expected in (("crop", True), ("stretch", False)):
        out = FrameFitter(400, 400, 320, 160, mode)(img)[..., 0] > 127
        ys, xs = np.nonzero(out)
        ratio = (xs.max() - xs.min() + 1) / (ys.max() - ys.min() + 1)
        assert (abs(ratio - 1) < 0.1) == round_expected, (mode, ratio)


def test_pad_is_black_outside_the_frame():
    img = np.full((100, 100, 3), 200, np.uint8)
    out = FrameFitter(100, 100, 160, 80, "pad")(img)
    assert (out[:, :40] == 0).all() and (out[:, 120:] == 0).all()
    assert (out[:, 45:115] == 200).all()


def test_fitter_rejects_bad_mode_and_size_change():
    with pytest.raises(OptionError, match="fit"):
        FrameFitter(100, 100, 64, 64, "zoom")
    fitter = FrameFitter(100, 100, 64, 64)
    with pytest.raises(TargetError, match="changed mid-video"):
        fitter(np.zeros((90, 100, 3), np.uint8))
