"""Flow guides on a camera pan over a real photograph: constant motion in time, no white frames,
re-targeting from the cache without running the flow backend."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline import iter_guide_flows
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.guide_writer import write_frames
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

WIDTH, HEIGHT = 160, 96
MARGIN = 12  # pixels near the border see new content enter: measure the interior


def _pan_video(path, positions, fps):
    """A camera panning right over scikit-image's coffee photograph, x offset ``positions[i]`` at frame i."""
    photo = data.coffee()  # 400 x 600 RGB
    frames = []
    for x in positions:
        shift = np.float32([[1, 0, -(100 + x)], [0, 1, -150]])
        frames.append(cv2.warpAffine(photo, shift, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC))
    write_frames(path, frames, fps, crf=17, preset="veryfast")  # a source at camera-like quality
    return path


def _ctx(tmp_path, **kw) -> RunContext:
    return RunContext(cache=FlowCache(tmp_path / "cache"), pool=AnnotatorPool(offload="plain"), **kw)


def _mean_magnitudes(request, ctx) -> list[float]:
    inner = (slice(MARGIN, HEIGHT - MARGIN), slice(MARGIN, WIDTH - MARGIN))
    return [float(np.hypot(f[..., 0], f[..., 1])[inner].mean()) for f in iter_guide_flows(request, ctx)]


@pytest.mark.parametrize("treatment,frames,source_frames,source_fps,velocity,step", [
    ("adjust", 81, 48, 24.0, 2.0, 47 / 80),   # stretched: 33 source frames repeated
    ("adjust", 81, 2, 24.0, 6.0, 1 / 80),     # a 2-frame source over 81 guide frames
    ("clip", 16, 30, 24.0, 2.0, 24 / 16),     # the guide step alternated 1, 2, 1, 2 source frames
    ("clip", 16, 30, 25.0, 2.0, 25 / 16),
])
def test_constant_pan_gives_constant_guide_motion_and_no_white_frame(tmp_path, treatment, frames, source_frames,
                                                                     source_fps, velocity, step):
    source = _pan_video(tmp_path / "pan.mp4", [velocity * i for i in range(source_frames)], source_fps)
    request = GuideRequest(source, tmp_path / "guide.mp4", resolution=(WIDTH, HEIGHT), frames=frames, fps=16,
                           treatment=treatment, backend="dis")
    ctx = _ctx(tmp_path)
    magnitudes = _mean_magnitudes(request, ctx)
    expected = velocity * step
    assert len(magnitudes) == frames
    assert all(abs(m - expected) <= 0.1 * expected for m in magnitudes[1:]), (expected, magnitudes)
    result = build_guide(request, ctx)
    assert result.flows_from_cache and result.frames == frames
    decoded = list(iter_frames(result.output))
    darkness = [float((255 - f.astype(np.int16)).mean()) for f in decoded]
    assert len(decoded) == frames and min(darkness) > 20, darkness  # every frame shows colour: none is white


def test_decelerating_pan_gives_non_increasing_motion(tmp_path):
    positions = [4.0 * t - 0.06 * t * t for t in range(32)]  # 4 px/frame slowing to ~0.3 px/frame
    source = _pan_video(tmp_path / "slow.mp4", positions, 24.0)
    frames = 49
    magnitudes = _mean_magnitudes(GuideRequest(source, resolution=(WIDTH, HEIGHT), frames=frames, fps=16,
                                               backend="dis"), _ctx(tmp_path))
    times = np.linspace(0, 31, frames)  # adjust: guide frame k at source time k * 31/48
    expected = np.diff(np.interp(times, np.arange(32), positions))
    noise = 0.06  # DIS's own frame-to-frame noise on this pan, in pixels
    assert all(b <= a + noise for a, b in zip(magnitudes[1:], magnitudes[2:])), magnitudes
    assert np.all(np.abs(np.array(magnitudes[1:]) - expected) <= 0.1 * expected + noise), magnitudes
    assert magnitudes[-1] < 0.25 * magnitudes[1]


def test_retargeting_is_served_from_the_cache_without_the_flow_backend(tmp_path, backend_spy):
    source = _pan_video(tmp_path / "pan.mp4", [2.0 * i for i in range(48)], 24.0)
    ctx = _ctx(tmp_path)
    first = build_guide(GuideRequest(source, tmp_path / "a.mp4", resolution=(WIDTH, HEIGHT), frames=81, fps=16,
                                     backend="dis"), ctx)
    assert sum(backend_spy) == 47 and not first.flows_from_cache  # one flow per consecutive source pair
    assert "flows computed" in first.summary() and "48 source frames spread over 81" in first.summary()
    backend_spy.clear()
    others = [dict(frames=33, fps=16, treatment="clip"), dict(frames=121, fps=24),
              dict(frames=30, fps=16, motion_strength=2.0, scale_percentile=90.0),
              dict(frames=9, fps=16),                             # strong compression: stride 3 served by stride 1
              dict(frames=20, fps=16, start=10, end=40)]          # a range inside the extracted one
    for number, options in enumerate(others):
        result = build_guide(GuideRequest(source, tmp_path / f"b{number}.mp4", resolution=(WIDTH, HEIGHT),
                                          backend="dis", **options), ctx)
        assert result.flows_from_cache and not result.render_cached, options
        assert "flows from cache" in result.summary() and "no flow model loaded" in result.summary()
    assert backend_spy == []  # the flow backend never ran again
    # the same request without any cache computes its own flows and gives the same motion
    request = GuideRequest(source, resolution=(WIDTH, HEIGHT), frames=33, fps=16, treatment="clip", backend="dis")
    cached = list(iter_guide_flows(request, ctx))
    assert backend_spy == []
    fresh = list(iter_guide_flows(request, RunContext(pool=AnnotatorPool(offload="plain"), use_cache=False)))
    assert backend_spy and len(cached) == len(fresh) == 33
    for a, b in zip(cached, fresh):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)  # float16 storage on both sides


def test_coarser_cached_flows_serve_a_finer_plan(tmp_path, backend_spy):
    source = _pan_video(tmp_path / "pan.mp4", [2.0 * i for i in range(48)], 24.0)
    ctx = _ctx(tmp_path)
    coarse = GuideRequest(source, tmp_path / "a.mp4", resolution=(WIDTH, HEIGHT), frames=9, fps=16, backend="dis")
    result = build_guide(coarse, ctx)
    assert result.flow_stride == 3 and sum(backend_spy) == 16  # 47 source steps / 3, rounded up
    assert "flows computed every 3 source frames" in result.summary()
    backend_spy.clear()
    fine = GuideRequest(source, resolution=(WIDTH, HEIGHT), frames=81, fps=16, backend="dis")
    magnitudes = _mean_magnitudes(fine, ctx)
    assert backend_spy == []
    expected = 2.0 * 47 / 80
    assert all(abs(m - expected) <= 0.1 * expected for m in magnitudes[1:]), magnitudes


def test_cached_strides_are_tried_own_first_then_finer_then_coarser():
    from wan2gp_structure_video.pipeline.source_rows import candidate_strides

    assert candidate_strides(3, 5) == [3, 2, 1, 4, 5]
    assert candidate_strides(1, 3) == [1, 2, 3]
    assert candidate_strides(6, 4) == [6, 5, 4, 3, 2, 1]
