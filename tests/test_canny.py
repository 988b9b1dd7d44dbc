"""Canny guides: edges where they should be, intensity knob, shape and determinism."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from wan2gp_structure_video.preprocessors.annotators.canny import canny_edges, canny_thresholds


def _rectangle() -> np.ndarray:
    frame = np.full((120, 160, 3), 30, np.uint8)
    frame[30:90, 40:120] = (200, 180, 60)
    return frame


def test_edges_of_a_rectangle() -> None:
    edges = canny_edges(_rectangle())
    assert edges.shape == (120, 160, 3) and edges.dtype == np.uint8
    assert set(np.unique(edges)) <= {0, 255}
    assert (edges[..., 0] == edges[..., 1]).all() and (edges[..., 1] == edges[..., 2]).all()
    mask = edges[..., 0] > 0
    rows, cols = np.nonzero(mask)
    # every edge pixel lies on (within 2 px of) the rectangle's outline
    near_vertical = (np.abs(cols - 40) <= 2) | (np.abs(cols - 119) <= 2)
    near_horizontal = (np.abs(rows - 30) <= 2) | (np.abs(rows - 89) <= 2)
    assert (near_vertical | near_horizontal).all()
    # and the outline is found all round: each side has an edge pixel in most of its rows/columns
    assert np.isin(np.arange(35, 85), rows[np.abs(cols - 40) <= 2]).mean() > 0.9
    assert np.isin(np.arange(45, 115), cols[np.abs(rows - 30) <= 2]).mean() > 0.9
    assert not mask[50:70, 60:100].any() and not mask[:20].any()


def test_intensity_is_monotonic_on_a_photo() -> None:
    photo = np.ascontiguousarray(skimage.data.astronaut())
    counts = [int((canny_edges(photo, intensity)[..., 0] > 0).sum()) for intensity in (0.25, 0.5, 1, 2, 4, 8)]
    assert all(a < b for a, b in zip(counts, counts[1:])), counts
    low = canny_edges(photo, 0.5)[..., 0] > 0
    high = canny_edges(photo, 2.0)[..., 0] > 0
    assert not (low & ~high).any()  # lower thresholds keep every edge found before


def test_deterministic_and_grey_input() -> None:
    photo = np.ascontiguousarray(skimage.data.coffee())
    assert np.array_equal(canny_edges(photo, 1.5), canny_edges(photo.copy(), 1.5))
    grey = np.ascontiguousarray(skimage.data.camera())
    assert canny_edges(grey).shape == grey.shape + (3,)


def test_threshold_mapping_and_bad_input() -> None:
    assert canny_thresholds(1.0) == (100.0, 200.0)
    assert canny_thresholds(2.0) == (50.0, 100.0)
    assert canny_thresholds(0.01)[1] == 8 * 255.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            canny_thresholds(bad)
    with pytest.raises(ValueError):
        canny_edges(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError):
        canny_edges(np.zeros((8, 8, 3), np.float32))
