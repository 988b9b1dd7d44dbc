"""Motion resampled in time (pure): positions, seams, stride, node spans, composition by warping."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wan2gp_structure_video.preprocessors.timeline.motion_resample import (
    choose_stride, compose_motion, guide_intervals, guide_timeline, interval_flow, nodes_needed, source_nodes)

SHAPE = (24, 32)


def _constant_rows(velocity: float, nodes):
    """Rows of a uniform pan at ``velocity`` px per source frame between the given nodes."""
    def row(j: int) -> np.ndarray:
        flow = np.zeros(SHAPE + (2,), dtype=np.float32)
        flow[..., 0] = velocity * (nodes[j + 1] - nodes[j])
        return flow
    return row


def _magnitudes(treatment, count, span, source_fps, target_fps, velocity=2.0, first=0):
    timeline = guide_timeline(treatment, count, first, first + span, source_fps, target_fps)
    nodes = source_nodes(first, first + span - 1, choose_stride(timeline.step))
    intervals = guide_intervals(timeline, nodes[0], nodes[-1])
    row = _constant_rows(velocity, nodes)
    return timeline, [float(np.abs(interval_flow(row, nodes, intervals, k, SHAPE)[..., 0]).mean())
                      for k in range(count)]


@pytest.mark.parametrize("treatment,count,span,source_fps,target_fps,step", [
    ("adjust", 81, 48, 24.0, 16.0, 47 / 80),
    ("adjust", 81, 2, 24.0, 16.0, 1 / 80),
    ("adjust", 33, 240, 24.0, 16.0, 239 / 32),
    ("clip", 16, 30, 24.0, 16.0, 1.5),
    ("clip", 16, 30, 25.0, 16.0, 25 / 16),
    ("clip", 24, 40, 30.0, 24.0, 1.25),
])
def test_constant_source_motion_gives_constant_guide_motion(treatment, count, span, source_fps, target_fps, step):
    timeline, magnitudes = _magnitudes(treatment, count, span, source_fps, target_fps)
    assert timeline.step == pytest.approx(step)
    assert magnitudes == pytest.approx([2.0 * step] * count, rel=1e-5)  # frame 0 included, no zero frame


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["adjust", "clip"]), st.integers(1, 120), st.integers(2, 90), st.integers(0, 30),
       st.floats(8.0, 60.0), st.floats(8.0, 60.0))
def test_no_frame_is_still_while_the_source_moves(treatment, count, span, first, source_fps, target_fps):
    _, magnitudes = _magnitudes(treatment, count, span, source_fps, target_fps, first=first)
    assert min(magnitudes) > 0  # a repeated source frame gets its share of the motion, loops included


def test_clip_loop_seam_shows_motion_into_its_frame():
    timeline = guide_timeline("clip", 12, 10, 15, 16.0, 16.0)  # 5-frame range, loops every 5 guide frames
    assert [round(p) for p in timeline.positions] == [10, 11, 12, 13, 14] * 2 + [10, 11]
    assert timeline.seams == (True, False, False, False, False) * 2 + (True, False)
    nodes = source_nodes(10, 14, 1)
    assert nodes == (9, 10, 11, 12, 13, 14)  # anchor node before the range
    intervals = guide_intervals(timeline, nodes[0], nodes[-1])
    assert (intervals[5].start, intervals[5].end, intervals[5].scale) == (9.0, 10.0, 1.0)  # into frame 10


def test_frame_zero_copies_the_next_frame_when_the_source_has_nothing_before():
    timeline = guide_timeline("adjust", 5, 0, 9)
    intervals = guide_intervals(timeline, 0, 8)
    assert intervals[0].copy_of == 1 and (intervals[1].start, intervals[1].end) == (0.0, 2.0)
    single = guide_intervals(guide_timeline("adjust", 1, 0, 9), 0, 8)
    assert (single[0].start, single[0].end) == (0.0, 1.0)  # one frame: the motion out of it
    still = guide_intervals(guide_timeline("adjust", 4, 3, 4), 2, 3)
    assert all(i.start == i.end and i.copy_of is None for i in still)  # a one-frame range is a still


def test_frame_zero_scales_a_short_history_to_a_whole_guide_step():
    timeline = guide_timeline("adjust", 11, 1, 32)  # step 3 source frames, only 1 frame before the range
    interval = guide_intervals(timeline, 0, 31)[0]
    assert (interval.start, interval.end, interval.scale) == (0.0, 1.0, 3.0)


def test_stride_rule_and_nodes():
    assert [choose_stride(d) for d in (0.0, 0.5, 1.0, 1.5, 2.0, 2.99, 7.47, 10.0)] == [1, 1, 1, 1, 1, 2, 4, 5]
    assert source_nodes(0, 10, 4) == (0, 4, 8, 10)
    assert source_nodes(5, 10, 4) == (1, 5, 9, 10)
    assert source_nodes(0, 0, 1) == (0,)


def test_window_reads_only_the_nodes_it_covers():
    timeline = guide_timeline("adjust", 81, 0, 48)
    nodes = source_nodes(0, 47, 1)
    intervals = guide_intervals(timeline, nodes[0], nodes[-1])
    j0, j1 = nodes_needed(nodes, intervals, 40, 50)
    assert nodes[j0] <= timeline.positions[39] and nodes[j1] >= timeline.positions[49]
    assert j1 - j0 <= 8
    row = _constant_rows(2.0, nodes)
    sub_row = _constant_rows(2.0, nodes[j0:j1 + 1])
    for k in range(40, 50):
        assert np.allclose(interval_flow(row, nodes, intervals, k, SHAPE),
                           interval_flow(sub_row, nodes[j0:j1 + 1], intervals, k, SHAPE))


def test_composition_warps_each_step_to_where_the_motion_carried_the_pixel():
    # A flow that moves pixels right by 4 px per step, but only in the left half: after one step a
    # pixel at x=14 has moved into the still right half, so over two steps it moves 4 px, not 8.
    height, width = 8, 32
    flow = np.zeros((height, width, 2), dtype=np.float32)
    flow[:, :16, 0] = 4.0
    total = compose_motion(lambda j: flow, (0, 1, 2), 0.0, 2.0, (height, width))
    assert total[4, 14, 0] == pytest.approx(4.0) and total[4, 4, 0] == pytest.approx(8.0)
    half = compose_motion(lambda j: flow, (0, 1, 2), 0.5, 1.0, (height, width))
    assert half[4, 4, 0] == pytest.approx(2.0)  # a fractional step is scaled by its fraction


def test_a_cut_row_is_never_part_of_the_motion() -> None:
    from wan2gp_structure_video.preprocessors.timeline.motion_resample import within_shot

    assert within_shot(0.5, 3.0, {1}) == (2.0, 3.0)        # ends in the next shot: the part after the cut
    assert within_shot(0.5, 2.0, {1}) == (0.5, 1.0)        # ends on the cut: the part before it
    assert within_shot(1.2, 1.8, {1}) is None              # inside the cut alone: no motion
    assert within_shot(0.0, 3.0, set()) == (0.0, 3.0)
    rows = [np.full((4, 4, 2), value, np.float32) for value in (1.0, 40.0, 2.0)]  # row 1: the cut's noise
    motion = compose_motion(lambda j: rows[j], (0, 1, 2, 3), 0.5, 3.0, (4, 4), cuts={1})
    assert np.allclose(motion, 2.0)
    assert not compose_motion(lambda j: rows[j], (0, 1, 2, 3), 1.0, 2.0, (4, 4), cuts={1}).any()
