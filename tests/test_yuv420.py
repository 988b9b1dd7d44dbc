"""RGB → I420 as the encoder's scaler does it: BT.601 limited range, 2×2 chroma."""
from __future__ import annotations

import av
import numpy as np
import pytest
from skimage import data

from wan2gp_structure_video.preprocessors.video.yuv420 import rgb_to_i420


def scaler_i420(rgb: np.ndarray) -> np.ndarray:
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()


@pytest.mark.parametrize("colour, expected", [((255, 255, 255), (235, 128, 128)), ((0, 0, 0), (16, 128, 128)),
                                              ((255, 0, 0), (81, 90, 240)), ((0, 0, 255), (41, 240, 110))])
def test_primaries_land_on_the_bt601_limited_range_values(colour, expected) -> None:
    planes = rgb_to_i420(np.full((4, 6, 3), colour, np.uint8))
    assert planes.shape == (6, 6)
    y, u, v = planes[:4], planes[4:5].reshape(-1)[:6], planes[5:6].reshape(-1)[:6]
    assert np.all(np.abs(y.astype(int) - expected[0]) <= 1)
    assert np.all(np.abs(u.astype(int) - expected[1]) <= 1)
    assert np.all(np.abs(v.astype(int) - expected[2]) <= 1)


def test_a_photograph_matches_the_encoders_scaler() -> None:
    photo = np.ascontiguousarray(data.astronaut()[:400, :510])  # even size
    ours, scaler = rgb_to_i420(photo).astype(int), scaler_i420(photo).astype(int)
    assert ours.shape == scaler.shape
    height = photo.shape[0]
    assert np.abs(ours[:height] - scaler[:height]).max() <= 1      # luma: rounding only
    assert np.abs(ours[height:] - scaler[height:]).mean() < 2.0   # chroma: another 2x2 filter


def test_odd_sizes_and_other_types_are_refused() -> None:
    with pytest.raises(ValueError, match="even-sized"):
        rgb_to_i420(np.zeros((5, 6, 3), np.uint8))
    with pytest.raises(ValueError, match="even-sized"):
        rgb_to_i420(np.zeros((4, 6, 3), np.float32))
