"""Guide timelines made of segments (pure functions, no I/O).

A long generation is cut into windows (Wan2GP's sliding windows, or "travel" segments between
key images). These helpers say which guide frames each window covers and which stretches of a
timeline still need structure guidance.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from ...errors import TargetError


@dataclass(frozen=True)
class SegmentWindow:
    """Guide frames ``[start, start + length)`` of a timeline; ``overlap`` frames are shared with the previous window."""

    start: int
    length: int
    overlap: int = 0

    @property
    def stop(self) -> int:
        return self.start + self.length

    def check(self, total: int) -> None:
        """Raise :class:`TargetError` unless the window lies inside a timeline of ``total`` frames."""
        for label, value in (("start", self.start), ("length", self.length), ("overlap", self.overlap)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TargetError(f"Segment window {label} {value!r} must be a whole number of guide frames "
                                  "(e.g. SegmentWindow(0, 41)).")
        if self.start < 0 or self.length <= 0 or self.stop > total:
            raise TargetError(f"Segment window {self.start}..{self.stop} lies outside the timeline of {total} "
                              "frames: use 0 <= start and start + length <= total.")


@dataclass(frozen=True)
class GuidanceRange:
    """A run of frames that needs structure guidance, and the frame just before it (``None`` at the start)."""

    start: int
    length: int
    anchor: Optional[int]

    @property
    def stop(self) -> int:
        return self.start + self.length


def check_windows(windows: object, total: int) -> list[SegmentWindow]:
    """``windows`` as a list of :class:`SegmentWindow` inside a timeline of ``total`` frames, or a one-line
    :class:`TargetError` (a tuple, a float start, a window past the end)."""
    if isinstance(windows, SegmentWindow) or not isinstance(windows, (list, tuple)):
        raise TargetError(f"Segment windows must be a list of SegmentWindow, not {type(windows).__name__}.")
    for window in windows:
        if not isinstance(window, SegmentWindow):
            raise TargetError(f"Segment window {window!r} is a {type(window).__name__}: pass "
                              "SegmentWindow(start, length) (e.g. from sliding_windows).")
        window.check(total)
    return list(windows)


def sliding_windows(total: int, length: int, overlap: int = 0) -> list[SegmentWindow]:
    """Windows of ``length`` frames, each starting ``length - overlap`` after the previous; the last may be shorter."""
    if total <= 0 or length <= 0:
        raise TargetError(f"Timeline {total} and window length {length} must be positive.")
    if not 0 <= overlap < length:
        raise TargetError(f"Overlap {overlap} must be at least 0 and less than the window length {length}.")
    windows = [SegmentWindow(0, min(length, total), 0)]
    while windows[-1].stop < total:
        start = windows[-1].stop - overlap
        windows.append(SegmentWindow(start, min(length, total - start), overlap))
    return windows


def guidance_ranges(total: int, guided: Iterable[int]) -> list[GuidanceRange]:
    """Maximal runs of frames in ``[0, total)`` that are not in ``guided``, each with its anchor frame."""
    if total <= 0:
        raise TargetError(f"Timeline length {total} must be positive.")
    covered = set()
    for frame in guided:
        if not 0 <= frame < total:
            raise TargetError(f"Guided frame {frame} lies outside the timeline of {total} frames.")
        covered.add(frame)
    ranges: list[GuidanceRange] = []
    start: Optional[int] = None
    for frame in range(total + 1):
        free = frame < total and frame not in covered
        if free and start is None:
            start = frame
        elif not free and start is not None:
            ranges.append(GuidanceRange(start, frame - start, start - 1 if start > 0 else None))
            start = None
    return ranges
