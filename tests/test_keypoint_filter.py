"""One-Euro keypoint filter: calmer still people, no lag on fast motion, gating, track matching."""
from __future__ import annotations

import numpy as np

from wan2gp_structure_video.preprocessors.timeline.keypoint_filter import KeypointFilter, filter_rows

W, H, FPS = 640, 480, 30.0


def person_rows(centres: np.ndarray, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """One person per frame: 18 body points on a small grid around ``centres`` (T, 2) in pixels."""
    rng = np.random.default_rng(seed)
    offsets = np.stack(np.meshgrid(np.arange(6) * 10.0, np.arange(3) * 30.0), -1).reshape(18, 2)
    truth = centres[:, None] + offsets[None]
    rows = np.zeros((len(centres), 2, 134, 3), dtype=np.float32)
    rows[:, 0, :18, :2] = (truth + rng.normal(0, noise, truth.shape)) / [W, H]
    rows[:, 0, :18, 2] = 0.9
    return rows


def test_still_person_jitter_drops() -> None:
    rows = person_rows(np.full((120, 2), 300.0), noise=1.5)
    out = filter_rows(rows, FPS, W, H)

    def jitter(r: np.ndarray) -> float:
        return float(np.abs(np.diff(r[:, 0, :18, :2] * [W, H], axis=0)).mean())

    assert jitter(out) < 0.5 * jitter(rows)


def test_fast_motion_is_followed_without_lag() -> None:
    centres = np.stack([np.arange(60) * 20.0 + 20, np.full(60, 200.0)], 1)  # 20 px per frame
    rows = person_rows(centres)
    out = filter_rows(rows, FPS, W * 4, H)
    error = np.abs(out[10:, 0, :18, 0] * W * 4 - rows[10:, 0, :18, 0] * W * 4).max()
    assert error < 20.0 * 0.25  # under a quarter of a frame's movement


def test_gating_holds_points_between_leave_and_enter() -> None:
    rows = person_rows(np.full((6, 2), 300.0))
    rows[:, 0, 3, 2] = [0.1, 0.4, 0.28, 0.28, 0.2, 0.32]  # enters at 0.4, stays over 0.25, leaves at 0.2
    out = filter_rows(rows, FPS, W, H)
    assert list(out[:, 0, 3, 2] > 0.3) == [False, True, True, True, False, False]


def test_people_matched_when_slots_swap() -> None:
    a = person_rows(np.full((10, 2), 100.0))
    b = person_rows(np.full((10, 2), 400.0))
    rows = a.copy()
    rows[:, 1] = b[:, 0]
    rows[5:, [0, 1]] = rows[5:, [1, 0]]  # the detector lists them the other way round from frame 5
    out = filter_rows(rows, FPS, W, H, KeypointFilter())
    np.testing.assert_allclose(out[:, :, :18, :2], rows[:, :, :18, :2], atol=1e-6)  # no smearing across people
