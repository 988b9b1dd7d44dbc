"""The burst-proof clip scale: bursts (≤ 10 % of the frames, over 3x the reference frame) are left
out; a clip without bursts gets exactly the plain clip-wide percentile."""
from __future__ import annotations

import numpy as np
import pytest

from wan2gp_structure_video.preprocessors.render.flow_bursts import ClipMagnitudes
from wan2gp_structure_video.preprocessors.render.flow_viz import MagnitudeHistogram


def _flow(speed: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flow = np.zeros((24, 32, 2), np.float32)
    flow[..., 0] = speed * rng.uniform(0.8, 1.2, (24, 32))
    return flow


def _both(flows) -> tuple[MagnitudeHistogram, ClipMagnitudes]:
    plain, robust = MagnitudeHistogram(), ClipMagnitudes(99.0, floor=0.8)
    for flow in flows:
        plain.add(flow)
        robust.add_planes(np.moveaxis(flow, -1, 0))
    return plain, robust


def test_without_bursts_the_scale_is_the_plain_percentile_exactly() -> None:
    flows = [_flow(1.0 + 0.5 * np.sin(i / 5), i) for i in range(60)]  # speed varies 0.5..1.5: no burst
    plain, robust = _both(flows)
    kept = robust.histogram()
    assert robust.bursts == [] and np.array_equal(kept.counts, plain.counts) and kept.max == plain.max


def test_a_short_burst_is_left_out() -> None:
    flows = [_flow(60.0 if i in (30, 31) else 2.0, i) for i in range(66)]  # 3 %: a whip pan
    plain, robust = _both(flows)
    kept = robust.histogram()
    assert robust.bursts == [30, 31]
    assert plain.percentile(99) > 20 and kept.percentile(99) == pytest.approx(2.4, rel=0.05)
    assert kept.count == plain.count - 2 * 24 * 32 and kept.max < 3


def test_a_still_clip_with_one_move_has_no_burst() -> None:
    flows = [_flow(5.0 if i in (10, 11) else 0.1, i) for i in range(60)]  # nothing for a burst to wash out
    _, robust = _both(flows)
    robust.histogram()
    assert robust.bursts == []


def test_all_zero_frames_are_not_counted() -> None:
    robust = ClipMagnitudes(99.0)
    robust.add_planes(np.zeros((2, 4, 4), np.float32))
    robust.add_planes(np.moveaxis(_flow(2.0, 0), -1, 0))
    assert robust.histogram().count == 24 * 32
