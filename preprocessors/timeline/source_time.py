"""Presentation time: guide frames placed by *time* on a source with a variable frame rate.

A phone records 30 fps in good light and 15 fps in the dark; an edited clip joins 24 and 12 fps
parts. Frame numbers then lie about time. The probe keeps each frame's presentation time
(``VideoInfo.timestamps``, seconds from the first frame) only when the durations differ
(:func:`evenly_spaced`); for an evenly spaced (constant rate) source it keeps nothing and the
frame-number plans of ``frame_plan`` and ``motion_resample`` run as they always have — there frame
``i`` is shown at ``i / fps``, so placing by time and by frame number are the same thing.

On a variable rate source (pure functions, no I/O):

* ``adjust`` spreads the guide evenly over the range's *duration* (first to last frame's time);
* ``clip`` samples the target's instants ``k / target fps`` after the range start, looping after the
  range's duration (its last frame shown for its own duration);
* a raw/canny/depth guide frame shows the source frame on screen at its instant (``adjust``: the
  nearest in time);
* positions on the source timeline stay *frame coordinates* (frame ``i`` at ``i``), linear in time
  between two frames, so the stored flow of a pair is split by time: an interval covering half the
  duration of a 1/12 s frame gets half of its flow. Constant-speed motion then gives constant guide
  motion, whatever the frame durations.
"""
from __future__ import annotations

import bisect
import math
from typing import Sequence

import numpy as np

from ...errors import OptionError, TargetError
from ...options import TREATMENTS
from .frame_plan import FramePlan, SourceRange, resolve_range
from .motion_resample import MotionTimeline

__all__ = ["evenly_spaced", "frame_coordinate", "range_duration", "timed_range", "timed_plan", "timed_timeline"]

#: Frame durations within this fraction of the typical one count as a constant frame rate (container
#: time bases round timestamps, e.g. 41/42 ms at 24 fps in Matroska).
EVEN_TOLERANCE = 0.1
_EPS = 1e-9


def evenly_spaced(times: Sequence[float]) -> bool:
    """Whether presentation ``times`` (sorted) step by one duration, within :data:`EVEN_TOLERANCE`."""
    if len(times) < 3:
        return True
    steps = np.diff(np.asarray(times, dtype=np.float64))
    typical = float(np.median(steps))
    return typical > 0 and bool(np.all(np.abs(steps - typical) <= EVEN_TOLERANCE * typical))


def _typical_step(times: Sequence[float]) -> float:
    steps = np.diff(np.asarray(times, dtype=np.float64))
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else 1.0


def frame_coordinate(times: Sequence[float], t: float) -> float:
    """The frame coordinate of instant ``t``: ``i`` at frame ``i``'s time, linear in time between frames,
    clamped to the first and last frame."""
    last = len(times) - 1
    i = bisect.bisect_right(times, t + _EPS) - 1
    if i < 0:
        return 0.0
    if i >= last:
        return float(last)
    duration = times[i + 1] - times[i]
    return i + min(max((t - times[i]) / duration, 0.0), 1.0) if duration > 0 else float(i)


def range_duration(times: Sequence[float], first: int, stop: int) -> float:
    """Seconds from frame ``first`` to the end of frame ``stop - 1`` (the last frame lasts a typical step)."""
    end = times[stop] if stop < len(times) else times[-1] + _typical_step(times)
    return max(end - times[first], _EPS)


def timed_range(times: Sequence[float], fps: float, source_range: SourceRange | None) -> tuple[int, int]:
    """``(first, stop)`` of a range; seconds are matched to the frames on screen at those instants."""
    source_range = source_range or SourceRange()
    if source_range.unit != "seconds":
        return resolve_range(len(times), fps, source_range)
    start, end = source_range.start, source_range.end
    for label, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise TargetError(f"Range {label} {value} is negative or not a number: use a value >= 0.")
    first = None if start is None else max(0, bisect.bisect_right(times, start + _EPS) - 1)
    if start is not None and start > times[-1] + _typical_step(times):
        first = len(times)  # past the end: resolve_range says so
    stop = None if end is None else bisect.bisect_left(times, end - _EPS)
    return resolve_range(len(times), fps, SourceRange(first, stop, "frames"))


def _check(treatment: str, count: int, target_fps: float) -> None:
    if treatment not in TREATMENTS:
        raise OptionError(f"Unknown treatment {treatment!r}: use {' or '.join(TREATMENTS)}.")
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise TargetError(f"Frame count {count} must be a positive whole number: ask for at least 1 frame.")
    if not (target_fps > 0 and math.isfinite(target_fps)):
        raise TargetError(f"Target fps {target_fps} must be a positive number.")


def _instants(treatment: str, count: int, times: Sequence[float], first: int, stop: int,
              target_fps: float) -> list[tuple[float, int]]:
    """``(time, loop cycle)`` of every guide frame."""
    start, last_time = times[first], times[stop - 1]
    if treatment == "adjust":
        step = (last_time - start) / (count - 1) if count > 1 else 0.0
        return [(min(start + k * step, last_time), 0) for k in range(count)]
    duration = range_duration(times, first, stop)
    instants = []
    for k in range(count):
        elapsed = k / target_fps
        cycle = int(math.floor(elapsed / duration + 1e-12))
        instants.append((start + max(elapsed - cycle * duration, 0.0), cycle))
    return instants


def timed_plan(treatment: str, count: int, times: Sequence[float], first: int, stop: int,
               target_fps: float) -> FramePlan:
    """The source frame each guide frame shows, placed by time (see the module docstring)."""
    _check(treatment, count, target_fps)
    indices = []
    for t, _cycle in _instants(treatment, count, times, first, stop, target_fps):
        shown = bisect.bisect_right(times, t + _EPS) - 1  # the frame on screen at t
        if treatment == "adjust" and shown + 1 < stop and times[shown + 1] - t <= t - times[shown] + _EPS:
            shown += 1  # adjust takes the nearest frame, halves up, as frame_plan.plan_adjust does
        indices.append(min(max(shown, first), stop - 1))
    return FramePlan(tuple(indices), first, stop)


def timed_timeline(treatment: str, count: int, times: Sequence[float], first: int, stop: int,
                   target_fps: float) -> MotionTimeline:
    """Positions (frame coordinates) of the guide frames placed by time, with the seams and the average
    guide step of ``motion_resample.guide_timeline``."""
    _check(treatment, count, target_fps)
    span, last = stop - first, stop - 1
    positions: list[float] = []
    seams: list[bool] = []
    previous_cycle, previous = -1, -1.0
    for k, (t, cycle) in enumerate(_instants(treatment, count, times, first, stop, target_fps)):
        position = min(max(frame_coordinate(times, t), float(first)), float(last))
        seams.append(k == 0 or (treatment == "clip" and (cycle != previous_cycle or position <= previous + _EPS)))
        positions.append(position)
        previous_cycle, previous = cycle, position
    if span == 1:
        step = 0.0
    elif treatment == "adjust":
        step = (span - 1) / (count - 1) if count > 1 else 1.0
    else:
        step = span / range_duration(times, first, stop) / target_fps
    return MotionTimeline(tuple(positions), tuple(seams), float(step), first, last)
