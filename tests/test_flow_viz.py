"""Flow visualisation: Middlebury wheel, torchvision oracle, clip-wide scale, magnitude histogram."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.utils import flow_to_image

from wan2gp_structure_video.preprocessors.render.flow_viz import (
    DEAD_ZONE, MIN_SCALE, MagnitudeHistogram, clip_scale, colour_wheel, flow_to_rgb, flow_to_rgb_exact, planes_to_rgb)


def _oracle(flow: np.ndarray) -> np.ndarray:
    """torchvision's colouring (normalised by this frame's own maximum), as (H, W, 3) uint8."""
    return flow_to_image(torch.from_numpy(flow).permute(2, 0, 1)).permute(1, 2, 0).numpy()


def _oracle_difference(flow: np.ndarray) -> int:
    """Largest level difference between ours (scale = frame max) and torchvision's flow_to_image.

    At the frame's fastest pixels float rounding can make torchvision's ``floor(255 * col)`` −1,
    which its uint8 output wraps round to 255; there its level is counted as the −1 it computed.
    """
    ours = flow_to_rgb_exact(flow, _frame_max(flow), dead_zone=0.0).astype(int)
    theirs = _oracle(flow).astype(int)
    magnitude = np.sqrt((flow.astype(np.float32) ** 2).sum(-1))
    at_rim = (magnitude >= magnitude.max() * (1 - 1e-5))[..., None]
    theirs[(theirs == 255) & (ours == 0) & at_rim] = -1
    return int(np.abs(ours - theirs).max())


def _frame_max(flow: np.ndarray) -> float:
    return float(np.sqrt((flow.astype(np.float32) ** 2).sum(-1)).max())


def _structured_flows() -> list[np.ndarray]:
    ys, xs = np.mgrid[-40:40, -60:60].astype(np.float32)
    rotation = np.stack([-ys, xs], -1) * 0.1
    zoom = np.stack([xs, ys], -1) * 0.05
    translation = np.broadcast_to(np.array([3.0, -1.5], np.float32), ys.shape + (2,)).copy()
    translation[:20, :30] = 0.0  # a still region next to a moving one
    sweep = np.stack([np.cos(xs / 9.0), np.sin(ys / 7.0)], -1) * 12.0
    return [rotation, zoom, translation, sweep.astype(np.float32)]


def test_colour_wheel_facts() -> None:
    wheel = colour_wheel()
    assert wheel.shape == (55, 3)
    assert wheel.min() >= 0 and wheel.max() <= 255
    np.testing.assert_array_equal(wheel[0], [255, 0, 0])       # red
    np.testing.assert_array_equal(wheel[15], [255, 255, 0])    # yellow after RY 15
    np.testing.assert_array_equal(wheel[21], [0, 255, 0])      # green after YG 6
    np.testing.assert_array_equal(wheel[25], [0, 255, 255])    # cyan after GC 4
    np.testing.assert_array_equal(wheel[36], [0, 0, 255])      # blue after CB 11
    np.testing.assert_array_equal(wheel[49], [255, 0, 255])    # magenta after BM 13
    assert (wheel.max(axis=1) == 255).all()                    # every wheel colour is fully bright


def test_matches_torchvision_on_structured_flows() -> None:
    for flow in _structured_flows():
        assert _oracle_difference(flow) <= 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), magnitude=st.floats(1e-2, 200.0),
       height=st.integers(1, 24), width=st.integers(1, 24))
def test_matches_torchvision_on_random_flows(seed: int, magnitude: float, height: int, width: int) -> None:
    flow = (np.random.default_rng(seed).standard_normal((height, width, 2)) * magnitude).astype(np.float32)
    assert _oracle_difference(flow) <= 1


def _lookup_difference(flow: np.ndarray, scale: float, strength: float = 1.0, dead_zone: float = DEAD_ZONE) -> int:
    """Largest level difference between the table lookup and the exact per-pixel colouring."""
    fast = flow_to_rgb(flow, scale, strength, dead_zone=dead_zone).astype(int)
    exact = flow_to_rgb_exact(flow, scale, strength, dead_zone=dead_zone).astype(int)
    return int(np.abs(fast - exact).max())


def test_lookup_matches_exact_on_structured_flows() -> None:
    for flow in _structured_flows():
        for scale, strength, dead_zone in ((_frame_max(flow), 1.0, 0.0), (2.0, 1.0, DEAD_ZONE), (5.0, 2.5, 1.0)):
            assert _lookup_difference(flow, scale, strength, dead_zone) <= 2


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), magnitude=st.floats(1e-2, 200.0), scale=st.floats(0.05, 50.0),
       dead_zone=st.sampled_from([0.0, DEAD_ZONE]), height=st.integers(1, 24), width=st.integers(1, 24))
def test_lookup_matches_exact_on_random_flows(seed: int, magnitude: float, scale: float, dead_zone: float,
                                               height: int, width: int) -> None:
    flow = (np.random.default_rng(seed).standard_normal((height, width, 2)) * magnitude).astype(np.float32)
    assert _lookup_difference(flow, scale, dead_zone=dead_zone) <= 2


def test_motion_along_the_wheel_seam_keeps_its_side() -> None:
    """Motion along +x sits where the wheel's ends meet; just above and just below must not swap sides."""
    flow = np.array([[[5.0, -1e-4], [5.0, 0.0], [5.0, 1e-4]]], np.float32)
    assert _lookup_difference(flow, 5.0, dead_zone=0.0) <= 2


def test_motion_at_and_past_the_rim_in_every_direction_reads_the_rim() -> None:
    """Straight up, down, left and right at exactly the scale and beyond: the lookup's coordinates
    land on (or a rounding past) the table's edge and must read the rim's colour there."""
    directions = [(0.0, -1.0), (0.0, 1.0), (-1.0, 0.0), (1.0, 0.0), (0.7071, -0.7071), (-0.7071, 0.7071)]
    flow = np.array([[[dx * size, dy * size] for dx, dy in directions] for size in (4.0, 4.0001, 9.0)], np.float32)
    assert _lookup_difference(flow, 4.0, dead_zone=0.0) <= 2
    assert (flow_to_rgb(flow, 4.0, dead_zone=0.0).min(axis=-1) <= 2).all()  # full colour: one channel at 0


def test_non_finite_components_count_as_still_like_the_exact_colouring() -> None:
    flow = np.full((2, 4, 2), 3.0, np.float32)
    flow[0, 0] = [np.nan, 3.0]
    flow[0, 1] = [np.inf, -3.0]
    flow[0, 2] = [-np.inf, np.nan]
    flow[1, 0] = [1e30, 1e30]  # finite, but its magnitude overflows float32
    assert _lookup_difference(flow, 3.0, dead_zone=0.0) <= 2
    assert (flow_to_rgb(flow, 3.0)[0, 2] == 255).all()


def test_dead_zone_whitens_noise_and_keeps_small_motion() -> None:
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((64, 64, 2)).astype(np.float32)
    noise *= (0.29 / np.maximum(np.hypot(noise[..., 0], noise[..., 1]), 1e-6))[..., None]  # |flow| = 0.29 px
    assert (flow_to_rgb(noise, MIN_SCALE) == 255).all()
    assert (flow_to_rgb(noise, MIN_SCALE, dead_zone=0.0) < 200).any()  # without the dead zone: tinted
    # half a pixel of genuine motion in a nearly still clip is clearly coloured
    slow = np.full((4, 4, 2), [0.5, 0.0], np.float32)
    assert flow_to_rgb(slow, MIN_SCALE).min() < 255 - 80
    # magnitudes are shrunk, not cut: just past the dead zone the colour starts from white
    edge = np.full((1, 1, 2), [DEAD_ZONE + 0.01, 0.0], np.float32)
    assert flow_to_rgb(edge, MIN_SCALE).min() >= 255 - 8
    with pytest.raises(ValueError):
        flow_to_rgb(slow, 1.0, dead_zone=-0.1)


def test_zero_motion_is_white() -> None:
    still = np.zeros((9, 13, 2), np.float32)
    assert (flow_to_rgb(still, 1.0) == 255).all()
    assert (flow_to_rgb(still, 1e-9, strength=50.0) == 255).all()
    moving = np.full((4, 4, 2), 2.0, np.float32)
    assert (flow_to_rgb(moving, 1.0, strength=0.0) == 255).all()


def test_strength_changes_the_guide_and_is_deterministic() -> None:
    flow = _structured_flows()[3]
    scale = 12.0 * 2
    weak, strong = flow_to_rgb(flow, scale, 0.5), flow_to_rgb(flow, scale, 2.0)
    assert not np.array_equal(weak, strong)
    assert np.array_equal(strong, flow_to_rgb(flow.copy(), scale, 2.0))
    # more strength → further from white (smaller channel sum) wherever it moves
    moving = np.hypot(flow[..., 0], flow[..., 1]) > 0.5
    assert (strong.astype(int).sum(-1)[moving] <= weak.astype(int).sum(-1)[moving]).all()


def test_radius_beyond_one_is_clipped_to_the_rim() -> None:
    flow = np.zeros((1, 2, 2), np.float32)
    flow[0, 0] = [1.0, 0.0]
    flow[0, 1] = [5.0, 0.0]
    image = flow_to_rgb(flow, scale=1.0, dead_zone=0.0)
    assert np.array_equal(image[0, 0], image[0, 1])  # same hue, full colour, not darkened
    assert image.dtype == np.uint8 and image.shape == (1, 2, 3)


def test_nan_is_still_and_bad_arguments() -> None:
    flow = np.full((2, 2, 2), np.nan, np.float32)
    assert (flow_to_rgb(flow, 1.0) == 255).all()
    with pytest.raises(ValueError):
        flow_to_rgb(np.zeros((2, 2, 3)), 1.0)
    with pytest.raises(ValueError):
        flow_to_rgb(np.zeros((2, 2, 2)), 0.0)
    with pytest.raises(ValueError):
        flow_to_rgb(np.zeros((2, 2, 2)), 1.0, strength=-1.0)


@pytest.mark.parametrize("distribution", ["lognormal", "uniform", "mixed"])
def test_histogram_percentiles_match_numpy(distribution: str) -> None:
    rng = np.random.default_rng(7)
    histogram = MagnitudeHistogram()
    magnitudes = []
    for _ in range(6):  # several frames, like a clip
        if distribution == "lognormal":
            flow = rng.lognormal(0.0, 1.2, (60, 80, 2))
        elif distribution == "uniform":
            flow = rng.uniform(-20, 20, (60, 80, 2))
        else:
            flow = rng.standard_normal((60, 80, 2)) * 4
            flow[:30] = 0.0  # half of every frame still
        flow = flow.astype(np.float32)
        histogram.add(flow)
        magnitudes.append(np.hypot(flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)).ravel())
    exact = np.concatenate(magnitudes)
    assert histogram.count == exact.size
    assert histogram.max == pytest.approx(exact.max(), rel=1e-6)  # float32 flows are measured in float32
    for q in (1, 10, 50, 90, 95, 99, 99.9):
        expected = np.percentile(exact, q)
        # 1 % relative; 0.02 px absolute where numpy interpolates across the jump from the
        # still half (exact zeros) to the smallest motion, which bins cannot resolve.
        assert histogram.percentile(q) == pytest.approx(expected, rel=0.01, abs=0.02), q
    assert histogram.percentile(100) == histogram.max


def test_histogram_float32_fast_path_bins_like_the_float64_path() -> None:
    """Stored flows (float32) are binned by OpenCV; float64 input by NumPy: the same slots, but for
    magnitudes within float32 rounding of a bin edge."""
    rng = np.random.default_rng(11)
    flow = rng.standard_normal((120, 160, 2)) * np.exp(rng.uniform(-9.0, 11.0, (120, 160, 1)))
    flow[0, 0] = [np.nan, 1.0]
    flow[0, 1] = [np.inf, 0.0]
    fast, exact = MagnitudeHistogram(), MagnitudeHistogram()
    fast.add(flow.astype(np.float32))
    exact.add(flow)
    assert fast.count == exact.count == flow.shape[0] * flow.shape[1] - 2
    moved = int(np.abs(fast.counts - exact.counts).sum()) // 2
    assert moved <= fast.count // 2000
    assert fast.max == pytest.approx(exact.max, rel=1e-6)
    for q in (50.0, 95.0, 99.0):
        assert fast.percentile(q) == pytest.approx(exact.percentile(q), rel=0.01)


def test_histogram_is_constant_size_and_round_trips() -> None:
    rng = np.random.default_rng(1)
    histogram = MagnitudeHistogram()
    histogram.add(rng.standard_normal((50, 50, 2)))
    size = histogram.counts.nbytes
    for _ in range(20):
        histogram.add(rng.standard_normal((50, 50, 2)) * 100)
    assert histogram.counts.nbytes == size
    text = json.dumps(histogram.to_dict())
    copy = MagnitudeHistogram.from_dict(json.loads(text))
    assert copy.count == histogram.count and copy.max == histogram.max
    assert np.array_equal(copy.counts, histogram.counts)
    assert copy.percentile(99) == histogram.percentile(99)
    with pytest.raises(ValueError):
        MagnitudeHistogram.from_dict({"version": 1})


def test_histogram_merge_equals_adding_everything() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((20, 20, 2)) * 3, rng.standard_normal((20, 20, 2)) * 30
    whole, left, right = MagnitudeHistogram(), MagnitudeHistogram(), MagnitudeHistogram()
    whole.add(a)
    whole.add(b)
    left.add(a)
    right.add(b)
    left.merge(right)
    assert np.array_equal(left.counts, whole.counts) and left.max == whole.max and left.count == whole.count


def test_histogram_edges() -> None:
    empty = MagnitudeHistogram()
    assert empty.percentile(99) == 0.0 and empty.count == 0
    histogram = MagnitudeHistogram()
    histogram.add(np.array([[np.inf, 0.0], [3.0, 4.0], [1e6, 0.0]]))
    assert histogram.count == 2 and histogram.max == 1e6
    assert histogram.percentile(0) == pytest.approx(5.0, rel=0.01)
    with pytest.raises(ValueError):
        histogram.percentile(101)


def test_clip_scale() -> None:
    histogram = MagnitudeHistogram()
    histogram.add(np.stack([np.linspace(0, 10, 1001), np.zeros(1001)], -1))
    assert clip_scale(histogram, dead_zone=0.0) == pytest.approx(9.9, rel=0.01)
    assert clip_scale(histogram, percentile=50, dead_zone=0.0) == pytest.approx(5.0, rel=0.01)
    assert clip_scale(histogram, max_motion=3.0, dead_zone=0.0) == 3.0      # the user's maximum wins
    # scales are measured past the dead zone: motion of max_motion pixels still reaches the rim
    assert clip_scale(histogram) == pytest.approx(9.9 - DEAD_ZONE, rel=0.01)
    rim = flow_to_rgb(np.full((1, 1, 2), [3.0, 0.0], np.float32), clip_scale(histogram, max_motion=3.0))
    assert rim.min() == 0
    still = MagnitudeHistogram()
    still.add(np.zeros((8, 8, 2)))
    assert clip_scale(still) == MIN_SCALE                         # a still clip stays white
    assert (flow_to_rgb(np.zeros((8, 8, 2)), clip_scale(still)) == 255).all()
    assert clip_scale(still, min_scale=1e-6) == 1e-6
    with pytest.raises(ValueError):
        clip_scale(histogram, max_motion=0.0)


def test_planes_colour_and_count_exactly_as_the_interleaved_flow() -> None:
    """The passes read composed motions as (2, H, W) planes: the same colours (non-finite and
    overflowing components included) and the same histogram as the (H, W, 2) flow."""
    flow = np.array(_structured_flows()[0], dtype=np.float32)
    flow[0, :3] = [[np.nan, 3.0], [np.inf, -3.0], [1e30, 1e30]]
    planes = np.ascontiguousarray(np.moveaxis(flow, -1, 0))
    planes.flags.writeable = False  # as kept composed motions are
    for scale, strength, dead_zone in ((2.0, 1.0, DEAD_ZONE), (5.0, 2.5, 0.0)):
        assert np.array_equal(planes_to_rgb(planes, scale, strength, dead_zone=dead_zone),
                              flow_to_rgb(flow, scale, strength, dead_zone=dead_zone))
    by_flow, by_planes = MagnitudeHistogram(), MagnitudeHistogram()
    by_flow.add(flow)
    by_planes.add_components(planes[0], planes[1])
    assert np.array_equal(by_flow.counts, by_planes.counts) and by_flow.max == by_planes.max
    assert by_flow.count == by_planes.count == flow.size // 2 - 3  # NaN, inf and the float32 overflow skipped
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        planes_to_rgb(np.zeros((3, 2, 2), np.float32), 1.0)
    with pytest.raises(ValueError, match="scale"):
        planes_to_rgb(planes, 0.0)
