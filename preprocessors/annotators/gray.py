"""Gray guides as Wan2GP's Gray control (``preprocessing/gray.py``) makes them.

The host converts its RGB frames with OpenCV's ``COLOR_BGR2GRAY``, so the weights land swapped:
gray = 0.114 R + 0.587 G + 0.299 B (OpenCV's fixed-point rounding), repeated on three channels.
We keep that on purpose: a gray guide made here is the picture VACE gets from the host's Gray.
"""
from __future__ import annotations

import cv2
import numpy as np


def gray_levels(frame: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame as (H, W, 3) uint8 gray levels (R = G = B), the host's formula."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    gray = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)  # the host's channel order: see above
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
