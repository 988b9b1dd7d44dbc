"""Half-float rows: the fast conversion is bit for bit NumPy's, and never hands out a view."""
from __future__ import annotations

import numpy as np

from wan2gp_structure_video.preprocessors.cache.half_float import load_float32, store_half


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
