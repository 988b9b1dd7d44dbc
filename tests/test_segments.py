"""Segment windows and guidance ranges: coverage, bounds and anchors."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wan2gp_structure_video.errors import TargetError
from wan2gp_structure_video.preprocessors.timeline.segments import guidance_ranges, sliding_windows


@given(st.integers(1, 2000), st.integers(1, 300), st.data())
def test_sliding_windows_cover_the_timeline(total, length, data):
    overlap = data.draw(st.integers(0, length - 1))
    windows = sliding_windows(total, length, overlap)
    assert windows[0].start == 0 and windows[-1].stop == total
    covered = set()
    for previous, window in zip(windows, windows[1:]):
        assert window.start == previous.stop - overlap and window.overlap == overlap
    for window in windows:
        window.check(total)
        assert 0 < window.length <= length
        covered.update(range(window.start, window.stop))
    assert covered == set(range(total))


def test_sliding_windows_example_and_errors():
    assert [(w.start, w.length) for w in sliding_windows(200, 81, 8)] == [(0, 81), (73, 81), (146, 54)]
    with pytest.raises(TargetError, match="Overlap"):
        sliding_windows(100, 10, 10)


@given(st.integers(1, 300), st.sets(st.integers(0, 299)))
def test_guidance_ranges_are_the_unguided_runs(total, guided):
    guided = {g for g in guided if g < total}
    ranges = guidance_ranges(total, guided)
    free = set()
    for r in ranges:
        assert r.length > 0 and r.anchor == (r.start - 1 if r.start > 0 else None)
        assert r.anchor is None or r.anchor in guided  # maximal: the frame before is guided
        assert r.stop == total or r.stop in guided
        free.update(range(r.start, r.stop))
    assert free == set(range(total)) - guided


def test_guidance_ranges_example():
    ranges = guidance_ranges(10, [0, 4, 9])
    assert [(r.start, r.length, r.anchor) for r in ranges] == [(1, 3, 0), (5, 4, 4)]
    with pytest.raises(TargetError):
        guidance_ranges(10, [10])
