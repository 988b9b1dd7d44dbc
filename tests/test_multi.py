"""Segments from one extraction, composites of several sources."""
from __future__ import annotations

import numpy as np
import pytest

from videogen import make_video
from wan2gp_structure_video.errors import TargetError
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline import source_rows as source_flows_module
from wan2gp_structure_video.pipeline.build import RunContext, build_guide
from wan2gp_structure_video.pipeline.multi import Placement, build_composite_guide, build_segment_guides
from wan2gp_structure_video.pipeline.request import GuideRequest
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.timeline.segments import sliding_windows
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames, probe_video


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_video(tmp_path_factory.mktemp("src") / "sample.mp4", 128, 96, frames=30, fps=24)


@pytest.fixture()
def produce_calls(monkeypatch):
    calls = []
    original = source_flows_module._produce

    def counting(annotator, prepared, choice, nodes, folder, ctx):
        calls.append(len(nodes) - 1)
        return original(annotator, prepared, choice, nodes, folder, ctx)

    monkeypatch.setattr(source_flows_module, "_produce", counting)
    return calls


def _frames(path) -> list[np.ndarray]:
    return [f.astype(np.int16) for f in iter_frames(path)]


def test_segments_extract_once_and_equal_direct_windows(tmp_path, sample, produce_calls) -> None:
    ctx = RunContext(cache=FlowCache(tmp_path / "cache"), pool=AnnotatorPool(offload="plain"))
    request = GuideRequest(sample, resolution=(128, 96), frames=25, fps=16, backend="dis")
    windows = sliding_windows(25, 10, overlap=3)
    run = build_segment_guides(request, windows, tmp_path / "segments", ctx)
    assert len(produce_calls) == 1  # the flow backend ran once for the whole timeline
    assert [r.frames for r in run.segments] == [w.length for w in windows]
    assert all(r.cache_hit for r in run.segments) and run.timeline_scale and run.timeline_scale > 0
    for window, segment in zip(windows, run.segments):
        assert probe_video(segment.output).frame_count == window.length
    # a second run of the whole thing computes nothing
    build_segment_guides(request, windows, tmp_path / "segments2", ctx)
    assert len(produce_calls) == 1
    # each segment equals a direct extraction of that window at the timeline's scale (fresh cache)
    window = windows[1]
    direct = build_guide(GuideRequest(sample, tmp_path / "direct.mp4", resolution=(128, 96), frames=25, fps=16,
                                      backend="dis", window_start=window.start, window_frames=window.length,
                                      max_motion=run.timeline_scale),
                         RunContext(pool=AnnotatorPool(offload="plain"), use_cache=False))
    a, b = _frames(run.segments[1].output), _frames(direct.output)
    assert len(a) == len(b) == window.length
    assert max(np.abs(x - y).max() for x, y in zip(a, b)) <= 2


def test_overlapping_segments_share_identical_frames(tmp_path, sample) -> None:
    ctx = RunContext(cache=FlowCache(tmp_path / "cache"), pool=AnnotatorPool(offload="plain"))
    windows = sliding_windows(20, 8, overlap=4)
    run = build_segment_guides(GuideRequest(sample, resolution=(128, 96), frames=20, fps=16, backend="dis"),
                               windows, tmp_path, ctx)
    first, second = _frames(run.segments[0].output), _frames(run.segments[1].output)
    # frames 4..7 of the timeline are in both windows: same colours thanks to one scale
    assert max(np.abs(first[4 + k] - second[k]).mean() for k in range(4)) < 2.0  # codec noise only


def test_composite_places_sources_with_neutral_gaps(tmp_path, sample) -> None:
    other = make_video(tmp_path / "other.mp4", 96, 64, frames=12)
    out = tmp_path / "composite.mp4"
    result = build_composite_guide(out, 24, [Placement(sample, 0, 8), Placement(other, 14, 6)],
                                   resolution=(128, 96), fps=16, backend="dis",
                                   context=RunContext(cache=FlowCache(tmp_path / "c"),
                                                      pool=AnnotatorPool(offload="plain")))
    frames = _frames(out)
    assert len(frames) == 24 and result.frames == 24 and frames[0].shape == (96, 128, 3)
    assert all(f.mean() > 250 for f in frames[8:14] + frames[20:])  # no guidance: white (zero motion)
    assert np.mean([255 - f.mean() for f in frames[:8]]) > 5
    with pytest.raises(TargetError, match="overlap"):
        build_composite_guide(tmp_path / "x.mp4", 24, [Placement(sample, 0, 10), Placement(other, 5, 6)],
                              resolution=(128, 96), backend="dis")
    with pytest.raises(TargetError, match="outside"):
        build_composite_guide(tmp_path / "x.mp4", 24, [Placement(sample, 20, 10)], resolution=(128, 96))
    assert not (tmp_path / "x.mp4").exists()
