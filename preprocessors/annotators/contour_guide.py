"""Wan2GP's contour network maps → its two guides, without torch (a cache hit draws them from stored maps):
``contour`` (the host's "Canny": the map inverted and thresholded, black lines on white) and ``scribble``
(its "Shapes": the grey map as it is)."""
from __future__ import annotations

import numpy as np

#: ``contour``: the host's "Canny" (inverted, thresholded); ``scribble``: its "Shapes" (grey map).
CONTOUR_MODES = ("contour", "scribble")
#: The host's threshold on the inverted map: above it white, else black.
CONTOUR_THRESHOLD = 127.5


def contour_maps_to_guide(maps: np.ndarray, mode: str) -> np.ndarray:
    """The host's post-processing of (…, H, W) uint8 network maps: ``contour`` → 255 − map, then
    > 127.5 → 255 else 0 (black lines on white); ``scribble`` → the map unchanged."""
    if mode not in CONTOUR_MODES:
        raise ValueError(f"contour mode must be one of {', '.join(CONTOUR_MODES)}, got {mode!r}")
    if mode == "scribble":
        return maps
    return np.where(255 - maps.astype(np.int16) > CONTOUR_THRESHOLD, 255, 0).astype(np.uint8)
