"""Frame plans: property tests for counts, bounds, monotonicity, spacing and distinct frames."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wan2gp_structure_video.errors import OptionError, TargetError
from wan2gp_structure_video.preprocessors.timeline.frame_plan import (
    SourceRange, make_plan, plan_adjust, plan_clip, resolve_range)

counts = st.integers(min_value=1, max_value=400)
spans = st.integers(min_value=1, max_value=3000)
starts = st.integers(min_value=0, max_value=500)
fps_values = st.floats(min_value=1.0, max_value=120.0, allow_nan=False)


@given(counts, starts, spans)
def test_adjust_count_bounds_and_monotone(count, first, span):
    plan = plan_adjust(count, first, first + span)
    assert len(plan) == count
    assert plan[0] == first
    if count > 1:
        assert plan[-1] == first + span - 1  # the whole range is covered
    assert all(first <= i < first + span for i in plan)
    assert all(b >= a for a, b in zip(plan, plan[1:]))


@given(st.integers(min_value=2, max_value=300), starts, spans)
def test_adjust_is_even(count, first, span):
    plan = plan_adjust(count, first, first + span)
    steps = [b - a for a, b in zip(plan, plan[1:])]
    ideal = (span - 1) / (count - 1)
    # Rounded positions: every step is within one frame of the ideal spacing.
    assert max(steps) - min(steps) <= 1
    assert all(abs(s - ideal) < 1 + 1e-9 for s in steps)


@given(counts, starts, spans)
def test_adjust_compresses_by_dropping_and_stretches_by_repeating(count, first, span):
    plan = plan_adjust(count, first, first + span)
    if count <= span:
        assert len(set(plan)) == count  # no repeats when compressing
    else:
        assert set(plan) == set(range(first, first + span))  # every frame used when stretching


@given(counts, fps_values, fps_values, starts, spans)
@settings(max_examples=200)
def test_clip_count_bounds_and_loop(count, src_fps, dst_fps, first, span):
    plan = plan_clip(count, src_fps, dst_fps, first, first + span)
    assert len(plan) == count
    assert plan[0] == first
    assert all(first <= i < first + span for i in plan)
    # Time-based: guide frame k shows the source frame at k / dst_fps seconds (mod the range).
    for k, index in enumerate(plan):
        expected = first + int((k * src_fps / dst_fps) + 1e-6) % span
        assert index == expected


def test_clip_exact_ratios():
    assert plan_clip(5, 30.0, 15.0, 0, 100) == [0, 2, 4, 6, 8]
    assert plan_clip(4, 16.0, 16.0, 10, 100) == [10, 11, 12, 13]
    assert plan_clip(6, 8.0, 16.0, 0, 100) == [0, 0, 1, 1, 2, 2]
    assert plan_clip(7, 16.0, 16.0, 5, 8) == [5, 6, 7, 5, 6, 7, 5]  # loops from the range start


@given(st.integers(min_value=1, max_value=1000), fps_values,
       st.floats(min_value=0, max_value=50), st.floats(min_value=0, max_value=50))
def test_resolve_range_bounds(frame_count, fps, a, b):
    start, end = min(a, b), max(a, b)
    try:
        first, stop = resolve_range(frame_count, fps, SourceRange(start, end, "seconds"))
    except TargetError:
        return
    assert 0 <= first < stop <= frame_count


def test_resolve_range_units_and_errors():
    assert resolve_range(100, 25.0) == (0, 100)
    assert resolve_range(100, 25.0, SourceRange(10, 50, "frames")) == (10, 50)
    assert resolve_range(100, 25.0, SourceRange(1.0, 2.0, "seconds")) == (25, 50)
    assert resolve_range(100, 25.0, SourceRange(90, 500, "frames")) == (90, 100)  # end clamped
    with pytest.raises(TargetError, match="past the end"):
        resolve_range(100, 25.0, SourceRange(100, None))
    with pytest.raises(TargetError, match="not after its start"):
        resolve_range(100, 25.0, SourceRange(50, 50))
    with pytest.raises(TargetError, match="negative"):
        resolve_range(100, 25.0, SourceRange(-1, None))
    with pytest.raises(OptionError, match="unit"):
        resolve_range(100, 25.0, SourceRange(0, 5, "minutes"))


def test_plan_counts_distinct_source_frames():
    stretched = make_plan("adjust", 81, 48, 24.0, 16.0)
    assert len(stretched) == 81 and stretched.distinct() == 48  # every source frame shown, 33 repeated
    assert make_plan("adjust", 5, 100, 16.0, 16.0).distinct() == 5
    assert make_plan("clip", 8, 100, 24.0, 16.0).distinct(0, 4) == 4


def test_make_plan_rejects_bad_options():
    with pytest.raises(OptionError, match="treatment"):
        make_plan("warp", 4, 100, 16.0, 16.0)
    with pytest.raises(TargetError, match="at least 1 frame"):
        make_plan("adjust", 0, 100, 16.0, 16.0)
    with pytest.raises(TargetError, match="fps"):
        make_plan("clip", 4, 100, 16.0, 0.0)
