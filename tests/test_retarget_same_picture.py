"""A faster re-target draws the same picture: composing with reused buffers and relative maps gives
the motions of the plain composition (kept here as the reference) up to interpolation rounding, and
the scale measured on a quarter of the pixels stays within a tolerance of the scale over every
pixel, so the colours move by rounding only."""
from __future__ import annotations

import functools
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
from wan2gp_structure_video.preprocessors.timeline import flow_warp, motion_resample
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


def opencv_sample(flow: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """One two-channel remap of absolute positions (bilinear on OpenCV's 1/32-pixel grid)."""
    return cv2.remap(flow, positions, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def exact_sample(flow: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Bilinear sampling with exact weights in float64, edges replicated."""
    height, width = flow.shape[:2]
    x = np.clip(positions[..., 0].astype(np.float64), 0, width - 1)
    y = np.clip(positions[..., 1].astype(np.float64), 0, height - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    ax, ay = (x - x0)[..., None], (y - y0)[..., None]
    f = flow.astype(np.float64)
    return (f[y0, x0] * (1 - ax) * (1 - ay) + f[y0, x1] * ax * (1 - ay) + f[y1, x0] * (1 - ax) * ay
            + f[y1, x1] * ax * ay)


def reference_compose(row, nodes, start, end, shape, *, fresh=True, cuts=(), planes=None, as_planes=False,
                      sample=opencv_sample):
    """``compose_motion`` as it was before the buffers were reused (fresh map and result per warp, one
    two-channel remap of absolute positions; ``sample=exact_sample``: exact bilinear weights)."""
    total = _reference_compose(row, nodes, start, end, shape, fresh=fresh, cuts=cuts, sample=sample)
    return np.ascontiguousarray(np.moveaxis(total, -1, 0)) if as_planes else total


def _reference_compose(row, nodes, start, end, shape, *, fresh=True, cuts=(), sample=opencv_sample):
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
                warped = sample(flow, grid + total)
                if fraction != 1.0:
                    warped = warped * fraction
                total = (total + warped).astype(np.float32)
            u = segment_end
    return total if total is not None else np.zeros((height, width, 2), dtype=np.float32)


def set_layout(monkeypatch: pytest.MonkeyPatch, planar: bool, relative: bool) -> None:
    """Warp as OpenCV 5 (planar) or 4.x (interleaved) does, with or without relative maps."""
    monkeypatch.setattr(flow_warp, "PLANAR_WARPS", planar)
    if not relative:
        monkeypatch.setattr(flow_warp, "RELATIVE_MAP", None)
    monkeypatch.setattr(flow_warp, "WARPER", flow_warp.FlowWarper())


def composed_both_ways(source, cache, monkeypatch: pytest.MonkeyPatch, sample=opencv_sample) -> tuple[list, list]:
    """The re-target's motions as the build composes them, and by the reference composition."""
    fast = list(iter_guide_flows(retarget(source), RunContext(cache=cache)))
    with monkeypatch.context() as patch:
        patch.setattr(motion_resample, "compose_motion", functools.partial(reference_compose, sample=sample))
        reference = list(iter_guide_flows(retarget(source), RunContext(cache=cache)))
    assert len(fast) == len(reference) == 13
    assert any(float(np.abs(flow).max()) > 1.0 for flow in fast)  # real motion was composed
    return fast, reference


def test_composition_moves_motions_by_interpolation_rounding_only(cached_source, monkeypatch) -> None:
    """Two-channel warps with relative maps (OpenCV 4.10+, no pixel grid added first): bilinear sampling
    happens on OpenCV's 1/32-pixel grid either way, so a few pixels land one grid step apart — a few
    hundredths of a pixel of motion at most, on a handful of pixels, never a visible change."""
    set_layout(monkeypatch, planar=False, relative=True)
    source, cache = cached_source
    fast, reference = composed_both_ways(source, cache, monkeypatch)
    assert max(float(np.abs(a - b).max()) for a, b in zip(fast, reference)) <= 0.05
    assert max(float(np.abs(a - b).mean()) for a, b in zip(fast, reference)) <= 1e-4


def test_composition_without_relative_maps_matches_the_reference(cached_source, monkeypatch) -> None:
    """Older OpenCV (no ``WARP_RELATIVE_MAP``) adds the pixel grid first, as the reference does; only the
    fused scale-and-add may round differently (float32 ulps)."""
    set_layout(monkeypatch, planar=False, relative=False)
    source, cache = cached_source
    fast, reference = composed_both_ways(source, cache, monkeypatch)
    assert max(float(np.abs(a - b).max()) for a, b in zip(fast, reference)) <= 1e-4


OPENCV_5 = int(cv2.__version__.split(".")[0]) >= 5


@pytest.mark.parametrize("relative", [True, False], ids=["relative-map", "pixel-grid"])
def test_planar_composition_is_the_same_motion(cached_source, monkeypatch, relative: bool) -> None:
    """u and v warped as two planes by the same maps. OpenCV 5 weighs one-channel samples exactly: the
    motions of an exact bilinear composition, to float32 rounding (the two-channel path's 1/32-pixel
    grid moves motion edges by up to a few tenths of a pixel). OpenCV 4.x samples one channel on the
    same grid as two: the two-channel reference's motions (with relative maps, up to where the grid
    rounds the position, as in the two-channel case)."""
    set_layout(monkeypatch, planar=True, relative=relative)
    source, cache = cached_source
    fast, reference = composed_both_ways(source, cache, monkeypatch, exact_sample if OPENCV_5 else opencv_sample)
    bound = 1e-3 if OPENCV_5 else 0.05 if relative else 1e-4
    assert max(float(np.abs(a - b).max()) for a, b in zip(fast, reference)) <= bound
    assert max(float(np.abs(a - b).mean()) for a, b in zip(fast, reference)) <= 1e-4


def test_planar_warp_samples_exact_bilinear_motion() -> None:
    """One planar warp against bilinear sampling in float64, on a smooth field with motions of several
    pixels, edges replicated: on OpenCV 5 within 1e-4 px (exact weights), else within the 1/32-pixel
    grid's rounding."""
    height, width = 96, 128
    rng = np.random.default_rng(3)
    flow = cv2.GaussianBlur(rng.standard_normal((height, width, 2)).astype(np.float32) * 40, (0, 0), 4)
    total = (0.8 * flow[::-1, ::-1]).copy()
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    sampled = exact_sample(flow, np.dstack([xs, ys]) + total)
    expected = total + 0.5 * sampled
    planes = flow_warp.to_planes(total)
    flow_warp.FlowWarper().add_planes_into(planes, flow_warp.to_planes(flow), np.float32(0.5))
    error = float(np.abs(flow_warp.from_planes(planes) - expected).max())
    assert float(np.abs(sampled).max()) > 5.0
    assert error <= (1e-4 if OPENCV_5 else 0.5 / 32 * float(np.abs(flow).max()))


def test_sampled_scale_stays_within_a_percent(cached_source, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scale is a 99th percentile over all of a clip's magnitudes; the histogram's own bins are
    0.8 % wide, and a regular quarter of a smooth field's pixels lands within 1 % of it."""
    source, cache = cached_source
    prepared = prepare(retarget(source))
    with open_flows(prepared, RunContext(cache=cache).resolved()) as flows:
        sampled = timeline_scale(flows, prepared, 0, 13)
        monkeypatch.setattr(guide_render, "scale_sample", lambda planes: planes)
        every_pixel = timeline_scale(flows, prepared, 0, 13)
        composed = [flows.guide_flow(k) for k in range(13)]
    assert sampled > 1.0 and abs(sampled / every_pixel - 1.0) <= 0.01
    for flow in composed:  # the colours differ by rounding only
        difference = np.abs(flow_to_rgb(flow, sampled).astype(int) - flow_to_rgb(flow, every_pixel).astype(int))
        assert int(difference.max()) <= 3


def test_small_frames_count_every_pixel() -> None:
    planes = np.ones((2, 64, 96), dtype=np.float32)
    assert guide_render.scale_sample(planes) is planes
    assert guide_render.scale_sample(np.ones((2, 160, 256), np.float32)).shape == (2, 80, 128)


@pytest.mark.parametrize("height, width", [(160, 256), (161, 257), (479, 831)])
def test_sample_is_every_other_pixel_of_every_other_row(height: int, width: int) -> None:
    planes = np.random.default_rng(height).standard_normal((2, height, width)).astype(np.float32)
    sample = guide_render.scale_sample(planes)
    assert sample.flags.c_contiguous and not np.shares_memory(sample, planes)
    assert np.array_equal(sample, planes[:, ::2, ::2])
