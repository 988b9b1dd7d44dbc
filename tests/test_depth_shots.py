"""Depth across a hard cut: one brightness range per shot (a close-up after a landscape washes neither
out), and smoothing never crosses the cut."""
from __future__ import annotations

import numpy as np

from wan2gp_structure_video.pipeline.depth_render import depth_scale, iter_depth_guide
from wan2gp_structure_video.pipeline.source_depth import SourceDepth
from wan2gp_structure_video.preprocessors.render.depth_normalise import InverseDepthSketch, plan_depth_scale, plan_shot_scales

H, W = 8, 8


def _depth(cuts: frozenset[int], stride: int = 1) -> SourceDepth:
    """20 source frames: a far landscape (inverse depth 0.1–1) then, from frame 10, a close-up (10–20)."""
    rng = np.random.default_rng(0)
    maps = [rng.uniform(0.1, 1.0, (H, W)) if i < 10 else rng.uniform(10.0, 20.0, (H, W)) for i in range(20)]
    nodes = tuple(range(0, 20, stride)) + ((19,) if 19 % stride else ())
    rows = np.stack([maps[n].reshape(H, W // 2, 2) for n in nodes]).astype(np.float16)
    return SourceDepth(rows, nodes, (H, W), from_cache=False, cuts=cuts)


def _mean_grey(depth: SourceDepth, smoothing: float) -> list[float]:
    indices = list(range(20))
    scale = depth_scale(depth, indices, smoothing)
    return [float(frame.mean()) for frame in iter_depth_guide(depth, indices, 0, 20, scale)]


def test_each_shot_gets_its_own_brightness_range() -> None:
    with_cut = _mean_grey(_depth(frozenset({9})), 0.0)
    assert all(90 < grey < 165 for grey in with_cut), with_cut  # both shots use the whole grey range
    one_range = _mean_grey(_depth(frozenset()), 0.0)
    assert max(one_range[:10]) < 10  # one range for the clip: the landscape is black


def test_smoothing_never_crosses_a_cut() -> None:
    depth = _depth(frozenset({9}))
    scale = depth_scale(depth, list(range(20)), smoothing=4.0)
    assert scale.lows[10] > 9.0 and scale.highs[9] < 1.1  # no blend of the two shots' ranges at the cut
    blended = depth_scale(_depth(frozenset()), list(range(20)), smoothing=4.0)
    assert blended.highs[9] > 2.0  # without the cut the smoothing carries the close-up into the landscape


def test_a_single_run_is_exactly_the_clip_scale() -> None:
    sketch = InverseDepthSketch()
    for value in (1.0, 2.0, 5.0):
        sketch.add(np.full((4, 4), value) + np.arange(16).reshape(4, 4))
    for smoothing in (0.0, 2.0):
        single, plain = plan_shot_scales([(0, sketch)], smoothing=smoothing), plan_depth_scale(sketch, smoothing=smoothing)
        assert np.array_equal(single.lows, plain.lows) and np.array_equal(single.highs, plain.highs)


def test_maps_between_nodes_are_not_blended_across_a_cut() -> None:
    depth = _depth(frozenset({4}), stride=2)  # nodes 0, 2, ..., 18, 19: pair 4 is frames 8 → 10
    assert float(depth.at(9).min()) >= 9.0 or float(depth.at(9).max()) <= 1.1
    assert 1.1 < float(_depth(frozenset(), stride=2).at(9).mean()) < 9.0  # the blend it would be without the cut
