"""Fast float32 ↔ float16 conversion of whole rows (flows, depth maps) for the on-disk stores.

NumPy converts half floats element by element (about 2 ms to store one 832×480 flow, 1.3 ms to
load it); OpenCV's vectorised conversion takes 0.1–0.2 ms and gives the same bits as NumPy (round
to nearest even, overflow to infinity) — ``bench/end_to_end.py`` measures both. OpenCV is loaded
on every guide path already, so no path needs torch for this (cache hits and re-targets never
import it).

OpenCV has two ways, one per major version (:func:`half_converter` picks the one this OpenCV has,
checked against NumPy once):

* OpenCV 5: arithmetic with a ``CV_16F`` result or operand (``cv2.multiply(x, 1.0, dtype=…)``;
  multiplying by one is exact); 4.x rejects it;
* OpenCV 4.x: ``cv2.convertFp16``, which holds half floats as 16-bit integers; 5 removed it.

Without either (or where one gives other bits than NumPy), NumPy converts.
Half floats are moved (split into planes) as 16-bit integers: a bitwise copy either way.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional

import cv2
import numpy as np

__all__ = ["store_half", "load_float32", "load_planes", "half_converter"]

#: (to half, to float32): ``to_half(float32 matrix, int16 destination or None)`` returns the half
#: floats' bits as int16; ``to_float(int16 bits matrix)`` a new float32 matrix.
Converter = tuple[Callable[[np.ndarray, Optional[np.ndarray]], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def _by_arithmetic() -> Converter:
    def to_half(values: np.ndarray, bits: Optional[np.ndarray]) -> np.ndarray:
        target = None if bits is None else bits.view(np.float16)
        return cv2.multiply(values, 1.0, dst=target, dtype=cv2.CV_16F).view(np.int16)

    def to_float(bits: np.ndarray) -> np.ndarray:
        return cv2.multiply(bits.view(np.float16), 1.0, dtype=cv2.CV_32F)
    return to_half, to_float


def _by_convert_fp16() -> Converter:
    def to_half(values: np.ndarray, bits: Optional[np.ndarray]) -> np.ndarray:
        return cv2.convertFp16(values, dst=bits)

    def to_float(bits: np.ndarray) -> np.ndarray:
        return cv2.convertFp16(bits)
    return to_half, to_float


def _agrees_with_numpy(converter: Converter) -> bool:
    """Whether ``converter`` gives NumPy's bits both ways (ties, overflow, subnormals, signed zero)."""
    probe = np.array([[0.0, -0.0, 1.0 + 2.0 ** -11, 65504.0, 65520.0, 7e4, -7e4, 2.0 ** -25, 3e-6, -123.4375]],
                     dtype=np.float32)
    to_half, to_float = converter
    try:
        with np.errstate(over="ignore"):
            expected = probe.astype(np.float16)
        bits = to_half(probe, None)
        back = to_float(np.ascontiguousarray(expected.view(np.int16)))
    except (cv2.error, AttributeError, TypeError):
        return False
    return (bits.dtype == np.int16 and np.array_equal(bits.view(np.uint16), expected.view(np.uint16))
            and back.dtype == np.float32 and np.array_equal(back, expected.astype(np.float32)))


@functools.lru_cache(maxsize=1)
def half_converter() -> Optional[Converter]:
    """OpenCV's conversion on this OpenCV (see the module docstring), or ``None``: NumPy converts."""
    for make in (_by_arithmetic, _by_convert_fp16):
        converter = make()
        if _agrees_with_numpy(converter):
            return converter
    return None


def _as_matrix(array: np.ndarray) -> np.ndarray:
    """A 2-D view of the contiguous ``array`` (OpenCV takes at most a few channels per element)."""
    return array.reshape(array.shape[0] if array.ndim > 1 else 1, -1)


def store_half(destination: np.ndarray, source: np.ndarray) -> None:
    """Write float32 ``source`` into the float16 array ``destination`` (same shape; round to nearest even)."""
    if destination.shape != source.shape:
        raise ValueError(f"shape {source.shape} does not match the destination's {destination.shape}")
    converter = half_converter()
    if (converter is None or not destination.flags.writeable or not destination.flags.c_contiguous
            or destination.size == 0):
        with np.errstate(over="ignore"):  # overflow to infinity, as OpenCV's conversion does
            np.copyto(destination, source, casting="unsafe")
        return
    values = _as_matrix(np.ascontiguousarray(source, dtype=np.float32))
    target = _as_matrix(destination.view(np.ndarray).view(np.int16))
    written = converter[0](values, target)
    if not np.shares_memory(written, target):  # OpenCV made a new array: copy it in
        np.copyto(target, written.reshape(target.shape))


def load_float32(source: np.ndarray) -> np.ndarray:
    """A new float32 array with the values of the float16 array ``source`` (never a view of it)."""
    converter = half_converter()
    if source.dtype != np.float16 or source.size == 0 or converter is None:
        return np.array(source, dtype=np.float32, copy=True)
    bits = np.ascontiguousarray(source.view(np.ndarray).view(np.int16))  # a (read-only) mapping as is
    return converter[1](_as_matrix(bits)).reshape(source.shape)


def load_planes(source: np.ndarray) -> np.ndarray:
    """A new ``(C, H, W)`` float32 array with the channels of the ``(H, W, C)`` float16 array ``source``
    as planes (C ≤ 4): split while still half floats (half the bytes to move), then converted at once."""
    if source.ndim != 3 or not 1 <= source.shape[2] <= 4:
        raise ValueError(f"expected an (H, W, C) array with at most 4 channels, got shape {source.shape}")
    converter = half_converter()
    if source.dtype != np.float16 or source.size == 0 or converter is None:
        return np.moveaxis(np.asarray(source), -1, 0).astype(np.float32, order="C", copy=True)
    channels = source.shape[2]
    bits = np.empty((channels,) + source.shape[:2], dtype=np.int16)
    cv2.split(np.ascontiguousarray(source.view(np.ndarray).view(np.int16)), list(bits))
    return converter[1](_as_matrix(bits)).reshape(bits.shape)
