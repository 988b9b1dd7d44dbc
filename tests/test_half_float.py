"""Half-float rows: the fast conversion is bit for bit NumPy's, and never hands out a view."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from wan2gp_structure_video.preprocessors.cache.half_float import load_float32, load_planes, store_half


def awkward_values(shape: tuple[int, ...]) -> np.ndarray:
    """Normal, tiny (subnormal in float16), huge (overflow), exact-tie and non-finite values."""
    rng = np.random.default_rng(3)
    values = (rng.standard_normal(shape) * 10.0 ** rng.integers(-9, 6, shape)).astype(np.float32)
    flat = values.reshape(-1)
    flat[:8] = [np.nan, np.inf, -np.inf, 65504.0, 65520.0, 7e4, 2.0 ** -25, 1.0 + 2.0 ** -11]
    return values


def test_store_half_rounds_exactly_as_numpy() -> None:
    values = awkward_values((37, 101, 2))  # more elements than one conversion chunk
    destination = np.empty(values.shape, np.float16)
    store_half(destination, values)
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16)
    assert np.array_equal(destination.view(np.uint16), expected.view(np.uint16))


def test_store_half_into_a_non_contiguous_destination_falls_back() -> None:
    values = awkward_values((8, 9))
    destination = np.zeros((8, 18), np.float16)[:, ::2]
    store_half(destination, values)
    with np.errstate(over="ignore"):
        assert np.array_equal(destination, values.astype(np.float16), equal_nan=True)


def test_load_float32_is_exact_and_a_fresh_array() -> None:
    with np.errstate(over="ignore"):
        half = awkward_values((37, 101, 2)).astype(np.float16)
    half.flags.writeable = False  # as a read-only mapping is
    loaded = load_float32(half)
    assert loaded.dtype == np.float32 and loaded.flags.writeable
    assert np.array_equal(loaded, half.astype(np.float32), equal_nan=True)
    assert not np.shares_memory(loaded, half)


def _converters() -> list:
    from wan2gp_structure_video.preprocessors.cache import half_float
    return [pytest.param(make, id=make.__name__) for make in (half_float._by_arithmetic, half_float._by_convert_fp16)]


@pytest.mark.parametrize("make", _converters())
def test_each_opencv_conversion_is_numpy_bit_for_bit_where_this_opencv_has_it(make, monkeypatch) -> None:
    """OpenCV 5 converts by arithmetic, 4.x by ``convertFp16``; whichever this OpenCV has gives NumPy's
    bits on awkward values both ways, through the public functions."""
    from wan2gp_structure_video.preprocessors.cache import half_float
    converter = make()
    if not half_float._agrees_with_numpy(converter):
        pytest.skip(f"this OpenCV ({cv2.__version__}) converts the other way")
    monkeypatch.setattr(half_float, "half_converter", lambda: converter)
    assert_round_trip_is_numpys(awkward_values((37, 101, 2)))


def assert_round_trip_is_numpys(values: np.ndarray) -> None:
    """Stored, loaded and loaded as planes: NumPy's half-float bits and values each way."""
    destination = np.empty(values.shape, np.float16)
    store_half(destination, values)
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16)
    assert np.array_equal(destination.view(np.uint16), expected.view(np.uint16))
    assert np.array_equal(load_float32(expected), expected.astype(np.float32), equal_nan=True)
    assert np.array_equal(load_planes(expected), np.moveaxis(expected.astype(np.float32), -1, 0), equal_nan=True)


def test_this_opencv_has_one_of_the_fast_conversions() -> None:
    """OpenCV 4.8 and later have one of the two (4.x ``convertFp16``, 5 arithmetic on half floats)."""
    from wan2gp_structure_video.preprocessors.cache.half_float import half_converter
    assert half_converter() is not None, cv2.__version__


def test_numpy_converts_where_opencv_cannot(monkeypatch) -> None:
    from wan2gp_structure_video.preprocessors.cache import half_float
    monkeypatch.setattr(half_float, "half_converter", lambda: None)
    assert_round_trip_is_numpys(awkward_values((5, 7, 2)))


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_load_planes_splits_channels_into_fresh_float32_planes(channels: int) -> None:
    with np.errstate(over="ignore"):
        half = awkward_values((9, 11, channels)).astype(np.float16)
    half.flags.writeable = False
    planes = load_planes(half)
    assert planes.shape == (channels, 9, 11) and planes.dtype == np.float32 and planes.flags.c_contiguous
    assert np.array_equal(planes, np.moveaxis(half.astype(np.float32), -1, 0), equal_nan=True)
    assert not np.shares_memory(planes, half)
    with pytest.raises(ValueError, match="at most 4 channels"):
        load_planes(np.zeros((4, 4), np.float16))
