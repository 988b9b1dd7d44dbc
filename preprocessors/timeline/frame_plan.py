"""Frame plans: which source frame feeds each guide frame (pure functions, no I/O).

Two treatments:

* ``adjust`` spreads exactly ``n`` source frames evenly over the whole range, first and last
  frame included: a longer range is compressed by dropping frames, a shorter one stretched by
  repeating them. The whole range always fits in the guide.
* ``clip`` resamples in time from the source fps to the target fps (guide frame ``k`` is the
  source frame shown at ``k / target_fps`` seconds after the range start) and loops back to the
  range start when the range is too short.

Flow guides do not use these plans for motion: they resample motion on the source's timeline
(``motion_resample``), so a repeated source frame still gets its share of the motion. ``raw`` and
``canny`` guides show the planned frames as they are: a repeated frame is a repeated image.

These plans count frames, which is exact for an evenly spaced (constant frame rate) source; a
variable frame rate source is planned by presentation time instead (``source_time``), with the
same conventions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ...errors import OptionError, TargetError
from ...options import RANGE_UNITS, TREATMENTS



@dataclass(frozen=True)
class SourceRange:
    """An optional part of the source: ``start`` inclusive, ``end`` exclusive, in frames or seconds."""

    start: Optional[float] = None
    end: Optional[float] = None
    unit: str = "frames"


@dataclass(frozen=True)
class FramePlan:
    """The source frame of every guide frame, and the resolved source range ``[first, stop)``."""

    indices: tuple[int, ...]
    first: int
    stop: int

    def __len__(self) -> int:
        return len(self.indices)

    def distinct(self, lo: int = 0, hi: Optional[int] = None) -> int:
        """How many distinct source frames guide frames ``[lo, hi)`` show."""
        return len(set(self.indices[lo:hi]))


def resolve_range(frame_count: int, fps: float, source_range: Optional[SourceRange] = None) -> tuple[int, int]:
    """Turn a user range into ``(first, stop)`` frame indices with ``0 <= first < stop <= frame_count``.

    An end past the video is clamped to its last frame; a start past it is an error.
    """
    if frame_count <= 0:
        raise TargetError("The structure video has no frames: choose another video.")
    source_range = source_range or SourceRange()
    if source_range.unit not in RANGE_UNITS:
        raise OptionError(f"Unknown range unit {source_range.unit!r}: use one of {', '.join(RANGE_UNITS)}.")
    per_unit = fps if source_range.unit == "seconds" else 1.0
    for label, value in (("start", source_range.start), ("end", source_range.end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise TargetError(f"Range {label} {value} is negative or not a number: use a value >= 0.")
    first = 0 if source_range.start is None else int(round(source_range.start * per_unit))
    stop = frame_count if source_range.end is None else int(round(source_range.end * per_unit))
    if first >= frame_count:
        raise TargetError(
            f"Range start {source_range.start} {source_range.unit} is past the end of the video "
            f"({frame_count} frames at {fps:g} fps): choose an earlier start.")
    stop = min(stop, frame_count)
    if stop <= first:
        raise TargetError(
            f"Range end {source_range.end} {source_range.unit} is not after its start "
            f"{source_range.start}: choose an end after the start.")
    return first, stop


def plan_adjust(count: int, first: int, stop: int) -> list[int]:
    """``count`` source indices spread evenly over ``[first, stop)``, both ends included."""
    _check_count(count)
    span = stop - first
    if span <= 0:
        raise TargetError("The source range is empty: widen the range.")
    if count == 1:
        return [first]
    # Integer arithmetic: round(i * (span - 1) / (count - 1)) without float error.
    denominator = count - 1
    return [first + (2 * i * (span - 1) + denominator) // (2 * denominator) for i in range(count)]


def plan_clip(count: int, source_fps: float, target_fps: float, first: int, stop: int) -> list[int]:
    """Source indices shown at the target's frame times, looping back to ``first`` when short."""
    _check_count(count)
    if not (source_fps > 0 and math.isfinite(source_fps)):
        raise TargetError(f"Source fps {source_fps} is not positive: the video's fps is unusable.")
    if not (target_fps > 0 and math.isfinite(target_fps)):
        raise TargetError(f"Target fps {target_fps} must be a positive number.")
    span = stop - first
    if span <= 0:
        raise TargetError("The source range is empty: widen the range.")
    ratio = source_fps / target_fps
    # The tiny epsilon keeps exact ratios exact (30 → 15 fps takes frames 0, 2, 4, ...).
    return [first + int(math.floor(k * ratio + 1e-6)) % span for k in range(count)]


def make_plan(treatment: str, count: int, frame_count: int, source_fps: float, target_fps: float,
              source_range: Optional[SourceRange] = None) -> FramePlan:
    """Build the full plan for a request."""
    if treatment not in TREATMENTS:
        raise OptionError(f"Unknown treatment {treatment!r}: use one of {', '.join(TREATMENTS)}.")
    first, stop = resolve_range(frame_count, source_fps, source_range)
    if treatment == "adjust":
        indices = plan_adjust(count, first, stop)
    else:
        indices = plan_clip(count, source_fps, target_fps, first, stop)
    return FramePlan(tuple(indices), first, stop)


def _check_count(count: int) -> None:
    if not isinstance(count, int) or count <= 0:
        raise TargetError(f"Frame count {count} must be a positive whole number: ask for at least 1 frame.")
