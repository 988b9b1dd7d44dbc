"""Fast float32 ↔ float16 conversion of whole rows (flows, depth maps) for the on-disk stores.

NumPy converts half floats element by element (about 2 ms to store one 832×480 flow, 1.3 ms to
load it); OpenCV's vectorised conversion (``cv2.multiply(x, 1.0, dtype=CV_16F)``: multiplying by one
is exact) takes 0.1–0.2 ms and gives the same bits as NumPy (round to nearest even, overflow to
infinity) — ``bench/half_float.py`` measures both. OpenCV is loaded on every guide path already, so
no path needs torch for this (cache hits and re-targets never import it).
"""
from __future__ import annotations

import cv2
import numpy as np


def _as_matrix(array: np.ndarray) -> np.ndarray:
    """A 2-D view of the contiguous ``array`` (OpenCV takes at most a few channels per element)."""
    return array.reshape(array.shape[0] if array.ndim > 1 else 1, -1)


def store_half(destination: np.ndarray, source: np.ndarray) -> None:
    """Write float32 ``source`` into the float16 array ``destination`` (same shape; round to nearest even)."""
    if destination.shape != source.shape:
        raise ValueError(f"shape {source.shape} does not match the destination's {destination.shape}")
    if not destination.flags.writeable or not destination.flags.c_contiguous or destination.size == 0:
        np.copyto(destination, source, casting="unsafe")
        return
    values = _as_matrix(np.ascontiguousarray(source, dtype=np.float32))
    target = _as_matrix(destination.view(np.ndarray))
    written = cv2.multiply(values, 1.0, dst=target, dtype=cv2.CV_16F)
    if not np.shares_memory(written, target):  # OpenCV made a new array: copy it in
        np.copyto(target, written)


def load_float32(source: np.ndarray) -> np.ndarray:
    """A new float32 array with the values of the float16 array ``source`` (never a view of it)."""
    if source.dtype != np.float16 or source.size == 0:
        return np.array(source, dtype=np.float32, copy=True)
    half = np.ascontiguousarray(source.view(np.ndarray))  # reads a (possibly read-only) mapping as is
    return cv2.multiply(_as_matrix(half), 1.0, dtype=cv2.CV_32F).reshape(source.shape)
