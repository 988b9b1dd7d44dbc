"""Canny edge guides: white edges on black, with one ``intensity`` knob.

Mapping: the hysteresis thresholds are ``100 / intensity`` (low) and ``200 / intensity`` (high)
on OpenCV's 3×3 Sobel L1 gradient of the grey frame, after a light Gaussian blur (σ = 1) that
keeps compression noise from flickering into edges. Intensity 1 gives the common 100/200 pair;
2 halves both thresholds (more, fainter edges), 0.5 doubles them (only strong edges). Lower
thresholds keep every edge the higher ones found, so the edge count grows with intensity.
"""
from __future__ import annotations

import logging
import math

import cv2
import numpy as np

logger = logging.getLogger(__name__)

LOW_THRESHOLD = 100.0
HIGH_THRESHOLD = 200.0
BLUR_SIGMA = 1.0
#: Above this the Sobel L1 magnitude of an 8-bit image cannot reach; thresholds are capped there.
_MAX_THRESHOLD = 8.0 * 255.0


def canny_thresholds(intensity: float) -> tuple[float, float]:
    """``(low, high)`` hysteresis thresholds for ``intensity`` (> 0)."""
    if not (math.isfinite(intensity) and intensity > 0):
        raise ValueError(f"canny intensity must be a positive number, got {intensity!r}")
    low = min(LOW_THRESHOLD / intensity, _MAX_THRESHOLD)
    high = min(HIGH_THRESHOLD / intensity, _MAX_THRESHOLD)
    return low, high


def canny_edges(frame: np.ndarray, intensity: float = 1.0) -> np.ndarray:
    """Edges of an (H, W, 3) uint8 RGB frame (or an (H, W) grey one) as (H, W, 3) uint8, 255 on 0."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[-1] == 3)):
        raise ValueError(f"frame must be (H, W, 3) or (H, W) uint8, got {frame.shape} {frame.dtype}")
    low, high = canny_thresholds(intensity)
    grey = frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    grey = cv2.GaussianBlur(grey, (0, 0), BLUR_SIGMA, borderType=cv2.BORDER_REPLICATE)
    edges = cv2.Canny(grey, low, high, apertureSize=3, L2gradient=False)
    return cv2.cvtColor(edges, cv2.COLOR_GRAY2RGB)
