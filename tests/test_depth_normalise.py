"""Depth guides: one clip-wide inverse-depth range (no flicker), near = bright, contrast, smoothing."""
from __future__ import annotations

import numpy as np
import pytest

from wan2gp_structure_video.errors import OptionError
from wan2gp_structure_video.preprocessors.render.depth_normalise import (
    FLAT_VALUE, InverseDepthSketch, check_contrast, depth_to_guide, per_frame_guide, plan_depth_scale)

H, W = 48, 64


def ramp(scale: float) -> np.ndarray:
    """Inverse depth rising left to right from 0 to ``scale`` (far left, near right)."""
    return np.tile(np.linspace(0.0, scale, W, dtype=np.float32), (H, 1))


def render_clip(frames: list[np.ndarray], *, smoothing: float = 0.0, contrast: float = 1.0) -> np.ndarray:
    sketch = InverseDepthSketch(low=0.0, high=100.0)
    for frame in frames:
        sketch.add(frame)
    scale = plan_depth_scale(sketch, smoothing=smoothing)
    return np.stack([depth_to_guide(f, *scale.range_at(i), contrast=contrast) for i, f in enumerate(frames)])


def test_shrinking_depth_range_shows_in_the_guide_and_per_frame_hides_it() -> None:
    scales = np.linspace(1.0, 0.3, 12)
    frames = [ramp(s) for s in scales]
    guide = render_clip(frames)
    brightest = guide[..., 0].reshape(len(frames), -1).max(axis=1).astype(float)
    assert brightest[0] == 255
    assert np.all(np.diff(brightest) < 0), brightest
    np.testing.assert_allclose(brightest, 255 * scales, rtol=0.011, atol=1.0)  # sketch: ≤ 0.5 % off
    host_like = per_frame_guide(np.stack(frames))
    assert np.all(host_like[..., 0].reshape(len(frames), -1).max(axis=1) == 255)  # per-frame hides the shrink


def test_near_is_bright_grey_rgb() -> None:
    guide = render_clip([ramp(5.0)])[0]
    assert guide.shape == (H, W, 3) and guide.dtype == np.uint8
    assert np.array_equal(guide[..., 0], guide[..., 1]) and np.array_equal(guide[..., 0], guide[..., 2])
    row = guide[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)


def test_constant_scene_gives_a_constant_guide() -> None:
    flat = [np.full((H, W), 3.25, np.float32) for _ in range(5)]
    guide = render_clip(flat)
    assert np.all(guide == round(FLAT_VALUE * 255))
    static = [ramp(2.0) for _ in range(5)]
    guide = render_clip(static, smoothing=2.0)
    assert all(np.array_equal(guide[0], g) for g in guide[1:])
    assert guide.min() == 0 and guide.max() == 255


def test_per_frame_guide_matches_the_hosts_formula() -> None:
    rng = np.random.default_rng(1)
    depth = rng.gamma(2.0, 1.0, (H, W)).astype(np.float32)
    shifted = depth - depth.min()
    host = (shifted / shifted.max() * 255.0).clip(0, 255).astype(np.uint8)  # Wan2GP truncates
    ours = per_frame_guide(depth)[0, ..., 0]
    assert np.abs(ours.astype(int) - host.astype(int)).max() <= 1


def test_robust_percentiles_ignore_a_few_extreme_pixels() -> None:
    frame = ramp(1.0)
    frame[0, 0] = 1000.0  # one hot pixel
    sketch = InverseDepthSketch(low=1.0, high=99.0)
    sketch.add(frame)
    lo, hi = sketch.clip_range()
    assert hi < 1.01 and lo < 0.02


def test_sketch_quantiles_within_relative_accuracy_and_memory_flat_in_frames() -> None:
    rng = np.random.default_rng(0)
    sketch = InverseDepthSketch(low=2.0, high=98.0, relative_accuracy=0.005)
    frames = []
    for _ in range(30):
        frame = rng.lognormal(0.0, 1.0, (H, W)).astype(np.float32)
        frame[:4] = 0.0  # sky: the model's ReLU gives exact zeros
        frames.append(frame)
        sketch.add(frame)
    exact = np.percentile(np.stack(frames), [2.0, 98.0], method="nearest")
    lo, hi = sketch.clip_range()
    assert lo == exact[0] == 0.0
    assert abs(hi - exact[1]) <= 0.011 * exact[1]
    per_frame = sketch.frame_ranges()
    assert per_frame.shape == (30, 2)
    np.testing.assert_allclose(per_frame[:, 1], [np.percentile(f, 98.0, method="nearest") for f in frames], rtol=0.011)
    # Memory: bins are bounded by the dynamic range (log(max/min) / log(gamma)), not by pixels or frames.
    positive = np.stack(frames)[np.stack(frames) > 0]
    gamma = 1.005 / 0.995
    assert sketch.bins <= np.log(positive.max() / positive.min()) / np.log(gamma) + 3
    bins = sketch.bins
    for frame in frames:  # the same values again: twice the frames, no new bin
        sketch.add(frame)
    assert sketch.bins == bins and sketch.frames == 60


def test_negative_and_non_finite_values() -> None:
    frame = ramp(1.0) - 0.5
    frame[0, :3] = np.nan
    sketch = InverseDepthSketch(low=0.0, high=100.0)
    sketch.add(frame)
    lo, hi = sketch.clip_range()
    assert lo == pytest.approx(-0.5, rel=0.011) and hi == pytest.approx(0.5, rel=0.011)
    guide = depth_to_guide(frame, lo, hi)
    assert guide[0, 0, 0] == 0 and guide[1, -1, 0] == 255


def test_contrast_is_a_gamma_with_fixed_ends() -> None:
    frame = ramp(1.0)
    neutral = depth_to_guide(frame, 0.0, 1.0, contrast=1.0)[0, :, 0].astype(int)
    strong = depth_to_guide(frame, 0.0, 1.0, contrast=2.0)[0, :, 0].astype(int)
    soft = depth_to_guide(frame, 0.0, 1.0, contrast=0.5)[0, :, 0].astype(int)
    for row in (neutral, strong, soft):
        assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    middle = W // 2
    assert soft[middle] > neutral[middle] > strong[middle]
    np.testing.assert_allclose(strong, np.rint(255 * np.linspace(0, 1, W) ** 2), atol=1)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_bad_contrast_is_refused(bad: object) -> None:
    with pytest.raises(OptionError, match="contrast"):
        check_contrast(bad)


def test_smoothing_follows_the_scene_slowly() -> None:
    scales = [1.0] * 10 + [0.2] * 10
    frames = [ramp(s) for s in scales]
    sketch = InverseDepthSketch(low=0.0, high=100.0)
    for frame in frames:
        sketch.add(frame)
    fixed = plan_depth_scale(sketch)
    assert np.all(fixed.highs == fixed.highs[0]) and fixed.highs[0] == pytest.approx(1.0, rel=0.011)
    slow = plan_depth_scale(sketch, smoothing=3.0)
    assert slow.highs[0] == pytest.approx(1.0, rel=0.02) and slow.highs[-1] == pytest.approx(0.2, rel=0.02)
    steps = np.abs(np.diff(slow.highs))
    assert steps.max() < 0.8 / 3  # no jump: the step from 1.0 to 0.2 is spread over several frames
    halfway = ((slow.lows[9] + slow.lows[10]) / 2, (slow.highs[9] + slow.highs[10]) / 2)
    assert slow.range_at(9.5) == pytest.approx(halfway)
    with pytest.raises(OptionError, match="smoothing"):
        plan_depth_scale(sketch, smoothing=-1)


def test_bad_sketch_options_and_inputs() -> None:
    with pytest.raises(OptionError):
        InverseDepthSketch(low=50, high=10)
    sketch = InverseDepthSketch()
    with pytest.raises(ValueError):
        sketch.clip_range()
    with pytest.raises(ValueError):
        sketch.add(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError):
        sketch.add(np.full((4, 4), np.nan))
