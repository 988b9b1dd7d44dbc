"""Presentation time: a variable frame rate source is placed by time (constant-speed motion gives
constant guide motion); an evenly spaced source takes the frame-number path, whose numbers the time
path reduces to."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from wan2gp_structure_video import GuideRequest, RunContext
from wan2gp_structure_video.pipeline import iter_guide_flows, prepare
from wan2gp_structure_video.preprocessors.timeline.frame_plan import SourceRange, make_plan
from wan2gp_structure_video.preprocessors.timeline.motion_resample import guide_timeline
from wan2gp_structure_video.preprocessors.timeline.source_time import (evenly_spaced, frame_coordinate, timed_plan,
                                                               timed_range, timed_timeline)
from wan2gp_structure_video.preprocessors.video.video_io import probe_video

from videogen import pan_frames, photo, steady_offsets, write_rgb_video

WIDTH, HEIGHT = 160, 96
SPEED = 48.0  # pixels per second
#: 24 fps for one second, then 12 fps for one second (a phone dropping its rate in the dark), in 1/120 s ticks.
TICKS = [5 * i for i in range(24)] + [120 + 10 * i for i in range(12)]


def _vfr_pan(path: Path) -> Path:
    offsets = [SPEED * tick / 120 for tick in TICKS]
    frames = pan_frames(photo("coffee"), offsets, width=WIDTH, height=HEIGHT)
    return write_rgb_video(path, frames, fps=24, pts=TICKS, time_base=Fraction(1, 120))


def _magnitudes(request: GuideRequest) -> list[float]:
    inner = (slice(12, HEIGHT - 12), slice(12, WIDTH - 12))
    return [float(np.hypot(f[..., 0], f[..., 1])[inner].mean())
            for f in iter_guide_flows(request, RunContext(use_cache=False))]


@pytest.fixture(scope="module")
def vfr_source(tmp_path_factory) -> Path:
    return _vfr_pan(tmp_path_factory.mktemp("vfr") / "vfr.mp4")


def test_probe_keeps_the_timestamps_of_a_vfr_file(vfr_source) -> None:
    info = probe_video(vfr_source)
    assert info.frame_count == 36 and info.timestamps is not None
    assert info.timestamps[:2] == pytest.approx([0.0, 1 / 24]) and info.timestamps[-1] == pytest.approx(1 + 11 / 12)


@pytest.mark.parametrize("treatment,frames,seconds_per_step", [
    ("adjust", 33, (1 + 11 / 12) / 32),  # the range's duration spread over the guide
    ("clip", 30, 1 / 16),                 # the target's instants
])
def test_constant_speed_in_a_vfr_source_gives_constant_guide_motion(vfr_source, treatment, frames,
                                                                   seconds_per_step) -> None:
    request = GuideRequest(vfr_source, None, resolution=(WIDTH, HEIGHT), frames=frames, fps=16, treatment=treatment,
                           backend="dis")
    magnitudes = _magnitudes(request)
    expected = SPEED * seconds_per_step
    assert len(magnitudes) == frames
    assert all(abs(m - expected) <= 0.08 * expected for m in magnitudes), (expected, magnitudes)


def test_clip_samples_the_source_frame_on_screen_at_each_instant(vfr_source) -> None:
    prepared = prepare(GuideRequest(vfr_source, None, resolution=(WIDTH, HEIGHT), frames=32, fps=16,
                                    treatment="clip", guide_type="raw"))
    times = prepared.info.timestamps
    for k, index in enumerate(prepared.plan.indices):
        t = k / 16
        assert times[index] <= t + 1e-9 and (index == len(times) - 1 or times[index + 1] > t)
    assert prepared.plan.indices[16] == 24  # at t = 1 s: the first 12 fps frame (frame numbers said 16)
    assert "variable frame rate" in prepared.result.summary()


def test_range_in_seconds_uses_the_timestamps(vfr_source) -> None:
    info = probe_video(vfr_source)
    assert timed_range(info.timestamps, info.fps, SourceRange(1.0, 1.5, "seconds")) == (24, 30)


def test_a_cfr_file_takes_the_frame_number_path(tmp_path) -> None:
    frames = pan_frames(photo("coffee"), steady_offsets(20, 2.0), width=WIDTH, height=HEIGHT)
    source = write_rgb_video(tmp_path / "cfr.mp4", frames, fps=24)
    request = GuideRequest(source, None, resolution=(WIDTH, HEIGHT), frames=17, fps=16, treatment="clip")
    prepared = prepare(request)
    assert prepared.info.timestamps is None
    assert prepared.plan == make_plan("clip", 17, 20, 24.0, 16.0)
    assert prepared.motion == guide_timeline("clip", 17, 0, 20, 24.0, 16.0)


@settings(max_examples=150, deadline=None)
@given(treatment=st.sampled_from(["adjust", "clip"]), count=st.integers(1, 120), frames=st.integers(2, 90),
       first=st.integers(0, 20), fps=st.sampled_from([12.0, 23.976, 24.0, 25.0, 30.0, 60.0]),
       target=st.sampled_from([8.0, 16.0, 24.0, 30.0]))
def test_the_time_path_reduces_to_the_frame_number_path_on_even_timestamps(treatment, count, frames, first, fps,
                                                                          target) -> None:
    """Frame i at i / fps: the time path gives the frame plan's indices exactly and the same positions,
    seams and step (within float rounding) — a constant frame rate is the special case, not another rule."""
    first = min(first, frames - 1)
    times = [i / fps for i in range(frames)]
    plan = make_plan(treatment, count, frames, fps, target, SourceRange(first, None))
    timed = timed_plan(treatment, count, times, first, frames, target)
    assert timed.indices == plan.indices
    frame_line = guide_timeline(treatment, count, first, frames, fps, target)
    time_line = timed_timeline(treatment, count, times, first, frames, target)
    assert time_line.seams == frame_line.seams
    assert time_line.positions == pytest.approx(frame_line.positions, abs=1e-6)
    assert time_line.step == pytest.approx(frame_line.step, rel=1e-9)


def test_even_spacing_and_frame_coordinates() -> None:
    assert evenly_spaced([0, 0.041, 0.083, 0.125]) and not evenly_spaced([0, 1 / 24, 2 / 24, 2 / 24 + 1 / 12])
    times = [0.0, 0.1, 0.3]
    assert frame_coordinate(times, 0.2) == pytest.approx(1.5)  # halfway through the long frame: split by time
    assert frame_coordinate(times, 5.0) == 2.0 and frame_coordinate(times, -1.0) == 0.0


@pytest.mark.parametrize("treatment,frames", [("adjust", 49), ("adjust", 17), ("clip", 33), ("clip", 50)])
def test_the_time_path_draws_a_cfr_source_byte_identically(tmp_path, treatment, frames) -> None:
    """The guide frames of a constant frame rate source (the frame-number path, unchanged from the previous
    release) and those of the time path given that source's even timestamps are the same bytes."""
    from dataclasses import replace

    from wan2gp_structure_video.pipeline import iter_guide_frames
    from wan2gp_structure_video.pipeline.prepare import plan_in_time

    source = write_rgb_video(tmp_path / "cfr.mp4", pan_frames(photo("coffee"), steady_offsets(30, 2.0), width=WIDTH,
                                                              height=HEIGHT), fps=24)
    request = GuideRequest(source, None, resolution=(WIDTH, HEIGHT), frames=frames, fps=16, treatment=treatment,
                           backend="dis")
    by_frame = [f.copy() for f in iter_guide_frames(request, RunContext(use_cache=False))]
    prepared = prepare(request)
    assert prepared.info.timestamps is None
    info = replace(prepared.info, timestamps=tuple(i / prepared.info.fps for i in range(prepared.info.frame_count)))
    plan, motion = plan_in_time(prepared.request, info)
    by_time = list(iter_guide_frames(request, RunContext(use_cache=False),
                                     replace(prepared, info=info, plan=plan, motion=motion)))
    assert plan == prepared.plan and len(by_time) == frames
    assert all(np.array_equal(a, b) for a, b in zip(by_frame, by_time))
