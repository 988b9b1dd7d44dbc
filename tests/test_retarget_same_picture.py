"""A faster re-target draws the same picture: composing with reused buffers and relative maps gives
the motions of the plain composition (kept here as the reference) up to interpolation rounding, and
the scale measured on a quarter of the pixels stays within a tolerance of the scale over every
pixel, so the colours move by rounding only."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from wan2gp_structure_video import GuideRequest, RunContext
from wan2gp_structure_video.pipeline import guide_render, iter_guide_flows
from wan2gp_structure_video.pipeline.annotators.flow import timeline_scale
from wan2gp_structure_video.pipeline.build import open_flows
from wan2gp_structure_video.pipeline.prepare import prepare
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.render.flow_viz import flow_to_rgb
from wan2gp_structure_video.preprocessors.timeline import motion_resample
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

SIZE = (256, 160)  # above guide_render.SAMPLE_FROM_PIXELS: the scale pass samples


@pytest.fixture(scope="module")
def cached_source(tmp_path_factory: pytest.TempPathFactory):
    """A 24 fps source whose flows for 21 frames at 16 fps (stride 1) are in a cache."""
    root = tmp_path_factory.mktemp("same-picture")
    source = write_sample_video(root / "source.mp4", *SIZE, frames=41, fps=24)
    cache = FlowCache(root / "cache")
    list(iter_guide_flows(GuideRequest(source, resolution=SIZE, frames=21, fps=16, backend="dis"),
                          RunContext(cache=cache)))
    return source, cache


def retarget(source) -> GuideRequest:
    """Fewer frames over the same range: ~3.3 stored rows per guide frame, partial rows included."""
    return GuideRequest(source, resolution=SIZE, frames=13, fps=24, backend="dis")


def reference_compose(row, nodes, start, end, shape, *, fresh=True, cuts=()):
    """``compose_motion`` as it was before the buffers were reused (fresh map and result per warp)."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    grid = np.dstack([xs, ys])
    total = None
    part = None
    if len(nodes) >= 2 and end - start > 1e-9:
        part = motion_resample.within_shot(motion_resample._coordinate(nodes, start),
                                           motion_resample._coordinate(nodes, end), cuts)
    if part is not None:
        u, stop = part
        while u < stop - 1e-7:
            j = min(int(math.floor(u + 1e-7)), len(nodes) - 2)
            segment_end = min(stop, j + 1.0)
            fraction = np.float32(segment_end - u)
            flow = row(j)
            if total is None:
                total = flow if fraction == 1.0 and segment_end >= stop - 1e-7 and not fresh else flow * fraction
            else:
                warped = cv2.remap(flow, grid + total, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                if fraction != 1.0:
                    warped = warped * fraction
                total = total + warped
            u = segment_end
    return total if total is not None else np.zeros((height, width, 2), dtype=np.float32)


def composed_both_ways(source, cache, monkeypatch: pytest.MonkeyPatch) -> tuple[list, list]:
    """The re-target's motions as the build composes them, and by the reference composition."""
    fast = list(iter_guide_flows(retarget(source), RunContext(cache=cache)))
    with monkeypatch.context() as patch:
        patch.setattr(motion_resample, "compose_motion", reference_compose)
        reference = list(iter_guide_flows(retarget(source), RunContext(cache=cache)))
    assert len(fast) == len(reference) == 13
    assert any(float(np.abs(flow).max()) > 1.0 for flow in fast)  # real motion was composed
    return fast, reference


def test_composition_moves_motions_by_interpolation_rounding_only(cached_source, monkeypatch) -> None:
    """OpenCV 4.10+ warps with relative maps (no pixel grid added first): bilinear sampling happens on
    OpenCV's 1/32-pixel grid either way, so a few pixels land one grid step apart — a few hundredths
    of a pixel of motion at most, on a handful of pixels, never a visible change."""
    source, cache = cached_source
    fast, reference = composed_both_ways(source, cache, monkeypatch)
    assert max(float(np.abs(a - b).max()) for a, b in zip(fast, reference)) <= 0.05
    assert max(float(np.abs(a - b).mean()) for a, b in zip(fast, reference)) <= 1e-4


def test_composition_without_relative_maps_matches_the_reference(cached_source, monkeypatch) -> None:
    """Older OpenCV (no ``WARP_RELATIVE_MAP``) adds the pixel grid first, as the reference does; only the
    fused scale-and-add may round differently (float32 ulps)."""
    monkeypatch.setattr(motion_resample, "_RELATIVE_MAP", None)
    monkeypatch.setattr(motion_resample, "_WARP", motion_resample._Warper())
    source, cache = cached_source
    fast, reference = composed_both_ways(source, cache, monkeypatch)
    assert max(float(np.abs(a - b).max()) for a, b in zip(fast, reference)) <= 1e-4


def test_sampled_scale_stays_within_a_percent(cached_source, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scale is a 99th percentile over all of a clip's magnitudes; the histogram's own bins are
    0.8 % wide, and a regular quarter of a smooth field's pixels lands within 1 % of it."""
    source, cache = cached_source
    prepared = prepare(retarget(source))
    with open_flows(prepared, RunContext(cache=cache).resolved()) as flows:
        sampled = timeline_scale(flows, prepared, 0, 13)
        monkeypatch.setattr(guide_render, "scale_sample", lambda flow: flow)
        every_pixel = timeline_scale(flows, prepared, 0, 13)
        composed = [flows.guide_flow(k, fresh=False) for k in range(13)]
    assert sampled > 1.0 and abs(sampled / every_pixel - 1.0) <= 0.01
    for flow in composed:  # the colours differ by rounding only
        difference = np.abs(flow_to_rgb(flow, sampled).astype(int) - flow_to_rgb(flow, every_pixel).astype(int))
        assert int(difference.max()) <= 3


def test_small_frames_count_every_pixel() -> None:
    flow = np.ones((64, 96, 2), dtype=np.float32)
    assert guide_render.scale_sample(flow) is flow
    assert guide_render.scale_sample(np.ones((160, 256, 2), np.float32)).shape == (80, 128, 2)



@pytest.mark.parametrize("height, width", [(160, 256), (161, 257), (479, 831)])
def test_sample_is_every_other_pixel_of_every_other_row(height: int, width: int) -> None:
    flow = np.random.default_rng(height).standard_normal((height, width, 2)).astype(np.float32)
    sample = guide_render.scale_sample(flow)
    assert sample.flags.c_contiguous and not np.shares_memory(sample, flow)
    assert np.array_equal(sample, flow[::2, ::2])
    strided = flow[:, ::-1]  # not contiguous: sampled the plain way, same pixels
    assert np.array_equal(guide_render.scale_sample(strided), strided[::2, ::2])
