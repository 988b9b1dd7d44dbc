"""Motion in time: flows measured on the source's timeline, resampled to the guide's timeline.

Flows are extracted once per source, between consecutive *nodes* of the source range (source
frames ``first, first+s, first+2s, …, last``, ``s`` the stride, plus one anchor node before the
range when the source has frames there). Row ``j`` of the stored flows is the motion from node
``j`` to node ``j+1``. Nothing here depends on the guide's frame count, fps or treatment, so one
extraction serves every target.

Every guide frame ``k`` sits at a real-valued *position* on the source timeline (in source frames):

* ``adjust``: ``p_k = first + k·(span−1)/(n−1)`` — the range spread evenly over the ``n`` frames;
* ``clip``: ``p_k = first + (k·r mod span)`` with ``r = source fps / target fps``; a position past
  the range's last frame (inside the last frame's display time, before the loop) stays on it.

The guide step ``d`` is ``(span−1)/(n−1)`` (adjust) or ``r`` (clip) source frames.

Guide frame ``k`` shows the motion over ``[p_{k−1}, p_k]``: the rows that interval covers are
*composed by warping* (each next row sampled where the motion so far has carried the pixel), and a
row the interval covers only partly is scaled by the covered fraction. A repeated source frame
(``adjust`` stretching 48 frames to 81) therefore gets its share of the motion, never zero, and
constant source motion gives constant guide motion whatever the frame counts and fps.

Conventions kept from the frame plans (see ``frame_plan``):

* **frame 0, and the first frame after a ``clip`` loop** (the *seam*; also a ``clip`` frame held
  on the range's last frame) have no interval of their own: they show the motion *into* their
  position over one guide step, ``[p−d, p]``, taken from the source before it. When the stored
  flows start later than ``p−d`` the available part is scaled up to a whole guide step (constant
  velocity assumed); when none is available (``p`` is the first node, e.g. a range starting at
  source frame 0) the frame copies the motion of the next frame that has an interval of its own
  (else the previous one).
* A one-frame guide with nothing before it shows the motion *out of* its frame over one step.
* A one-frame range is a still: every guide frame is zero motion (white).

Stride (cost bound): ``s = max(1, ceil(d / 2))`` — stride 1 whenever the guide steps through at
most 2 source frames per guide frame, else about half a guide step, so every guide interval still
composes 1.3 to 2 stored rows. Extraction costs ``(span−1)/s`` flow pairs (plus the anchor):
``d·(n−1)`` pairs for ``d ≤ 2`` and never more than about 2 × the ``n−1`` pairs of flows between
resampled frames.

**Hard cuts.** A row between two shots (``shot_cuts``) is no motion: a guide frame whose interval
overlaps one shows the motion of the part of its interval inside the shot it ends in (or, ending
on the cut, inside the shot before), and zero motion when its interval lies on the cut alone.

Any stored stride can serve any plan: a finer one is composed over more rows, a coarser one is
spread linearly inside each stored step (the fractional rule above), which assumes constant
velocity within that step.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable, Collection, Optional, Sequence

import numpy as np

from ...errors import OptionError
from . import flow_warp

__all__ = ["MotionTimeline", "Interval", "guide_timeline", "choose_stride", "source_nodes", "guide_intervals",
           "nodes_needed", "compose_motion", "interval_flow", "within_shot"]

#: Positions closer than this (in source frames) count as equal.
_EPS = 1e-9


@dataclass(frozen=True)
class MotionTimeline:
    """Where every guide frame sits on the source timeline, and which frames start a new run."""

    positions: tuple[float, ...]
    seams: tuple[bool, ...]         # True: no interval of its own (frame 0, a loop, a held last frame)
    step: float                     # source frames per guide step (d)
    first: int                      # the range's first source frame
    last: int                       # the range's last source frame (inclusive)

    def __len__(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class Interval:
    """The source time a guide frame's motion covers: ``[start, end]`` scaled by ``scale``.

    ``copy_of`` names another guide frame whose motion this one repeats (then start/end are unused).
    ``start == end`` with no copy is zero motion.
    """

    start: float
    end: float
    scale: float = 1.0
    copy_of: Optional[int] = None


def guide_timeline(treatment: str, count: int, first: int, stop: int, source_fps: float = 1.0,
                   target_fps: float = 1.0) -> MotionTimeline:
    """Positions of ``count`` guide frames on the source range ``[first, stop)``."""
    if count < 1 or stop <= first:
        raise OptionError(f"Cannot place {count} guide frames on the source range {first}..{stop}.")
    span, last = stop - first, stop - 1
    if treatment == "adjust":
        step = (span - 1) / (count - 1) if count > 1 else float(min(1, span - 1))
        positions = tuple(first + min(k * step, span - 1) for k in range(count))
        seams = (True,) + (False,) * (count - 1)
    elif treatment == "clip":
        if not (source_fps > 0 and target_fps > 0):
            raise OptionError(f"Clip needs positive fps, not {source_fps} → {target_fps}.")
        step = source_fps / target_fps
        positions_list: list[float] = []
        seam_list: list[bool] = []
        previous_cycle, previous_local = -1, -1.0
        for k in range(count):
            unwrapped = k * step
            cycle = int(math.floor(unwrapped / span + 1e-12))
            local = min(unwrapped - cycle * span, span - 1.0)
            local = max(local, 0.0)
            seam_list.append(k == 0 or cycle != previous_cycle or local <= previous_local + _EPS)
            positions_list.append(first + local)
            previous_cycle, previous_local = cycle, local
        positions, seams = tuple(positions_list), tuple(seam_list)
    else:
        raise OptionError(f"Unknown treatment {treatment!r}: use adjust or clip.")
    if span == 1:
        step = 0.0
    return MotionTimeline(positions, seams, float(step), first, last)


def choose_stride(step: float) -> int:
    """Source frames between stored flows: 1 up to 2 source frames per guide step, else ~half a step."""
    return max(1, int(math.ceil(step / 2.0 - 1e-9)))


def source_nodes(first: int, last: int, stride: int) -> tuple[int, ...]:
    """The source frames flows are measured between: an anchor before the range when there is one,
    then every ``stride``-th frame of the range, always ending on its last frame."""
    if stride < 1 or last < first or first < 0:
        raise ValueError(f"bad node span {first}..{last} stride {stride}")
    nodes = [max(0, first - stride)] if first > 0 else []
    nodes.extend(range(first, last, stride))
    if not nodes or nodes[-1] != last:
        nodes.append(last)
    return tuple(nodes)


def guide_intervals(timeline: MotionTimeline, first_node: int, last_node: int) -> tuple[Interval, ...]:
    """The interval of every guide frame, following the conventions of the module docstring."""
    d = timeline.step
    count = len(timeline)
    own: list[Optional[Interval]] = []
    for k, position in enumerate(timeline.positions):
        if d <= 0:
            own.append(Interval(position, position))
        elif not timeline.seams[k]:
            own.append(Interval(timeline.positions[k - 1], position))
        else:
            start = max(float(first_node), position - d)
            if position - start > _EPS:
                own.append(Interval(start, position, d / (position - start)))
            elif count == 1 and last_node > position + _EPS:
                end = min(float(last_node), position + d)
                own.append(Interval(position, end, d / (end - position)))
            else:
                own.append(None)
    intervals: list[Interval] = []
    for k, interval in enumerate(own):
        if interval is not None:
            intervals.append(interval)
            continue
        source = next((j for j in range(k + 1, count) if own[j] is not None), None)
        if source is None:
            source = next((j for j in range(k - 1, -1, -1) if own[j] is not None), None)
        position = timeline.positions[k]
        intervals.append(Interval(position, position) if source is None else Interval(0.0, 0.0, 1.0, source))
    return tuple(intervals)


def _resolve(intervals: Sequence[Interval], k: int) -> Interval:
    interval = intervals[k]
    return intervals[interval.copy_of] if interval.copy_of is not None else interval


def nodes_needed(nodes: Sequence[int], intervals: Sequence[Interval], lo: int, hi: int) -> tuple[int, int]:
    """Node indices ``[j0, j1]`` (inclusive) whose rows guide frames ``[lo, hi)`` read."""
    spans = [_resolve(intervals, k) for k in range(lo, hi)]
    spans = [s for s in spans if s.end - s.start > _EPS]
    if not spans:
        return 0, 0
    start, end = min(s.start for s in spans), max(s.end for s in spans)
    j0 = max(0, bisect.bisect_right(nodes, start + _EPS) - 1)
    j1 = min(len(nodes) - 1, bisect.bisect_left(nodes, end - _EPS))
    return j0, max(j1, j0)


def _coordinate(nodes: Sequence[int], position: float) -> float:
    """Position in node units (node ``j`` at ``j``, linear between nodes)."""
    j = min(max(0, bisect.bisect_right(nodes, position) - 1), len(nodes) - 2)
    coordinate = j + (position - nodes[j]) / (nodes[j + 1] - nodes[j])
    return min(max(coordinate, 0.0), len(nodes) - 1.0)


def within_shot(u: float, stop: float, cuts: Collection[int]) -> Optional[tuple[float, float]]:
    """The part of ``[u, stop]`` (node coordinates) that a guide frame shows when rows in ``cuts`` are
    hard cuts: the part after the last cut it overlaps (the shot the frame ends in), else the part
    before the first one; ``None`` when the interval lies inside cut rows only."""
    overlapping = [j for j in cuts if j < stop - 1e-7 and j + 1 > u + 1e-7]
    if not overlapping:
        return u, stop
    after = max(overlapping) + 1.0
    if stop > after + 1e-7:
        return after, stop
    before = float(min(overlapping))
    return (u, before) if before > u + 1e-7 else None


def _segments(nodes: Sequence[int], start: float, end: float,
              cuts: Collection[int]) -> list[tuple[int, np.float32]]:
    """The rows ``[start, end]`` covers, in order, with the fraction of each it covers (inside one shot)."""
    part = None
    if len(nodes) >= 2 and end - start > _EPS:
        part = within_shot(_coordinate(nodes, start), _coordinate(nodes, end), cuts)
    segments: list[tuple[int, np.float32]] = []
    if part is not None:
        u, stop = part
        while u < stop - 1e-7:
            j = min(int(math.floor(u + 1e-7)), len(nodes) - 2)
            segment_end = min(stop, j + 1.0)
            segments.append((j, np.float32(segment_end - u)))
            u = segment_end
    return segments


def compose_motion(row: Callable[[int], np.ndarray], nodes: Sequence[int], start: float, end: float,
                   shape: tuple[int, int], *, fresh: bool = True, cuts: Collection[int] = (),
                   planes: Optional[Callable[[int], np.ndarray]] = None, as_planes: bool = False) -> np.ndarray:
    """Motion from source time ``start`` to ``end``, in the coordinates of ``start``: (H, W, 2) float32,
    or its ``(2, H, W)`` u and v planes with ``as_planes=True``.

    ``row(j)`` is the float32 flow from node ``j`` to node ``j+1``; ``planes(j)``, when given, the same
    flow as planes (read-only; a store that keeps converted rows passes them, else rows are split
    here when they are needed as planes). Whole rows are composed by warping, in the layout that
    warps fastest on this OpenCV (:mod:`.flow_warp`); a partly covered row counts with the covered
    fraction. With ``fresh=False`` a motion that is exactly one whole row may be that row itself
    (read-only; saves a copy per frame).
    Rows in ``cuts`` (hard cuts between shots) are never drawn: the motion is that of the part of
    the interval inside one shot (:func:`within_shot`), zero when there is none.
    """
    plane_rows = planes or (lambda index: flow_warp.to_planes(row(index)))
    segments = _segments(nodes, start, end, cuts)
    if not segments:
        return np.zeros((2, shape[0], shape[1]) if as_planes else (shape[0], shape[1], 2), dtype=np.float32)
    j, fraction = segments[0]
    if len(segments) == 1:
        flow = plane_rows(j) if as_planes else row(j)
        return flow if fraction == 1.0 and not fresh else flow * fraction
    if flow_warp.PLANAR_WARPS:
        total = plane_rows(j) * fraction
        for j, fraction in segments[1:]:
            flow_warp.WARPER.add_planes_into(total, plane_rows(j), fraction)
        return total if as_planes else flow_warp.from_planes(total)
    total = row(j) * fraction
    for j, fraction in segments[1:]:
        flow_warp.WARPER.add_into(total, row(j), fraction)
    return flow_warp.to_planes(total) if as_planes else total


def interval_flow(row: Callable[[int], np.ndarray], nodes: Sequence[int], intervals: Sequence[Interval], k: int,
                  shape: tuple[int, int], *, fresh: bool = True, cuts: Collection[int] = (),
                  planes: Optional[Callable[[int], np.ndarray]] = None, as_planes: bool = False) -> np.ndarray:
    """The flow guide frame ``k`` shows (float32, (H, W, 2) or planes with ``as_planes``; a fresh array
    unless ``fresh=False``, then read-only); rows in ``cuts`` are hard cuts (see :func:`compose_motion`)."""
    interval = _resolve(intervals, k)
    flow = compose_motion(row, nodes, interval.start, interval.end, shape, fresh=fresh or interval.scale != 1.0,
                          cuts=cuts, planes=planes, as_planes=as_planes)
    if interval.scale != 1.0:
        flow *= np.float32(interval.scale)
    return flow
