"""One brightness scale per clip for depth guides: no flicker, near = bright.

Wan2GP's depth annotator maps each frame's inverse depth linearly from its own minimum (black)
to its own maximum (white), as grey RGB: near is bright. Every frame gets a different scale, so
the guide pulses in brightness when anything moves in depth. Here the same linear map of inverse
depth is used, but with one range for the whole clip: the ``low`` and ``high`` percentiles of the
inverse depth over all pixels of all frames (robust to a few extreme pixels). Optionally the range
may follow the scene slowly: ``smoothing`` > 0 uses each frame's own percentiles, smoothed over
time with a Gaussian of that many frames (standard deviation), instead of one range.

A clip with hard cuts gets one range per *shot* (a close-up after a landscape must not wash either
out), and smoothing never crosses a cut: :func:`plan_shot_scales`.

Streaming: :class:`InverseDepthSketch` sees the frames once, in order, and keeps only a histogram
with logarithmic bins (relative error of a value ≤ ``relative_accuracy``, so its memory is fixed
by the dynamic range, not by the pixel or frame count) plus two numbers per frame.

Then, per pixel: ``v = clip((d - low) / (high - low), 0, 1) ** contrast`` → ``round(255 · v)`` on
all three channels. ``contrast`` 1.0 is neutral (the host's linear map); above 1 darkens the far
part of the range and spreads the near part, below 1 lifts the far part. A range with no width
(a flat scene) gives mid grey.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ...errors import OptionError

DEFAULT_LOW_PERCENTILE = 1.0
DEFAULT_HIGH_PERCENTILE = 99.0
DEFAULT_RELATIVE_ACCURACY = 0.005
FLAT_VALUE = 0.5
#: Values at or below this magnitude count as zero (the model's ReLU gives exact zeros, e.g. sky).
ZERO_MAGNITUDE = 1e-12


class _LogHistogram:
    """Counts of values in logarithmic bins (positive and negative sides) and a zero bin."""

    def __init__(self, log_gamma: float) -> None:
        self.log_gamma = log_gamma
        self.zeros = 0
        # side → (first bin index, counts); bin k holds magnitudes in (gamma^(k-1), gamma^k]
        self.sides: dict[int, tuple[int, np.ndarray]] = {}

    @property
    def bins(self) -> int:
        return 1 + sum(counts.size for _, counts in self.sides.values())

    @property
    def count(self) -> int:
        return self.zeros + sum(int(counts.sum()) for _, counts in self.sides.values())

    def add(self, values: np.ndarray) -> None:
        finite = values[np.isfinite(values)].astype(np.float64, copy=False)
        small = np.abs(finite) <= ZERO_MAGNITUDE
        self.zeros += int(small.sum())
        for sign in (1, -1):
            magnitudes = finite[(finite * sign > 0) & ~small] * sign
            if magnitudes.size:
                bins = np.ceil(np.log(magnitudes) / self.log_gamma).astype(np.int64)
                first = int(bins.min())
                self._merge_side(sign, first, np.bincount(bins - first))

    def _merge_side(self, sign: int, first: int, counts: np.ndarray) -> None:
        if sign not in self.sides:
            self.sides[sign] = (first, counts.astype(np.int64))
            return
        old_first, old = self.sides[sign]
        start = min(first, old_first)
        stop = max(first + counts.size, old_first + old.size)
        merged = np.zeros(stop - start, dtype=np.int64)
        merged[old_first - start:old_first - start + old.size] += old
        merged[first - start:first - start + counts.size] += counts
        self.sides[sign] = (start, merged)

    def merge(self, other: "_LogHistogram") -> None:
        self.zeros += other.zeros
        for sign, (first, counts) in other.sides.items():
            self._merge_side(sign, first, counts)

    def _value(self, sign: int, index: int) -> float:
        gamma = math.exp(self.log_gamma)
        return sign * 2.0 * gamma ** index / (gamma + 1.0)

    def quantiles(self, fractions: tuple[float, ...]) -> tuple[float, ...]:
        """Approximate values at ``fractions`` (0..1) of the sorted values (nearest rank)."""
        total = self.count
        if total == 0:
            raise ValueError("no values")
        # Sorted order: negative bins from the largest magnitude down, zeros, positive bins up.
        segments: list[tuple[np.ndarray, Any]] = []
        if -1 in self.sides:
            first, counts = self.sides[-1]
            segments.append((counts[::-1], lambda i, f=first, n=counts.size: self._value(-1, f + n - 1 - i)))
        segments.append((np.array([self.zeros]), lambda i: 0.0))
        if 1 in self.sides:
            first, counts = self.sides[1]
            segments.append((counts, lambda i, f=first: self._value(1, f + i)))
        results = []
        for fraction in fractions:
            rank = min(total - 1, max(0, int(round(fraction * (total - 1)))))
            seen = 0
            for counts, value_of in segments:
                cumulative = np.cumsum(counts)
                if seen + int(cumulative[-1]) > rank:
                    results.append(float(value_of(int(np.searchsorted(cumulative, rank - seen, side="right")))))
                    break
                seen += int(cumulative[-1])
        return tuple(results)


class InverseDepthSketch:
    """Streaming summary of a clip's inverse depth: a clip-wide histogram and each frame's range."""

    def __init__(self, *, low: float = DEFAULT_LOW_PERCENTILE, high: float = DEFAULT_HIGH_PERCENTILE,
                 relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> None:
        if not 0.0 <= low < high <= 100.0:
            raise OptionError(f"Depth percentiles {low}–{high} must satisfy 0 ≤ low < high ≤ 100.")
        if not 0.0 < relative_accuracy < 0.5:
            raise OptionError(f"Depth histogram accuracy {relative_accuracy} must be between 0 and 0.5.")
        self.low, self.high = float(low), float(high)
        self.relative_accuracy = float(relative_accuracy)
        self._log_gamma = math.log((1 + relative_accuracy) / (1 - relative_accuracy))
        self._clip = _LogHistogram(self._log_gamma)
        self._frame_lows: list[float] = []
        self._frame_highs: list[float] = []

    @property
    def frames(self) -> int:
        return len(self._frame_lows)

    @property
    def bins(self) -> int:
        """Histogram bins held (bounded by the values' dynamic range, not by pixels or frames)."""
        return self._clip.bins

    def add(self, depth: np.ndarray) -> None:
        """Add one frame ``(H, W)`` or a batch ``(B, H, W)`` of inverse depth, in clip order."""
        depth = np.asarray(depth)
        if depth.ndim == 2:
            depth = depth[None]
        if depth.ndim != 3 or depth.shape[0] == 0:
            raise ValueError(f"depth must have shape (H, W) or (B, H, W), got {depth.shape}")
        for frame in depth:
            histogram = _LogHistogram(self._log_gamma)
            histogram.add(frame.ravel())
            if histogram.count == 0:
                raise ValueError("a depth frame holds no finite value")
            lo, hi = histogram.quantiles((self.low / 100.0, self.high / 100.0))
            self._frame_lows.append(lo)
            self._frame_highs.append(hi)
            self._clip.merge(histogram)

    def merge(self, other: "InverseDepthSketch") -> None:
        """Add another sketch's frames (of the same percentiles and accuracy) after this one's."""
        self._clip.merge(other._clip)
        self._frame_lows.extend(other._frame_lows)
        self._frame_highs.extend(other._frame_highs)

    def clip_range(self) -> tuple[float, float]:
        """``(low, high)`` percentiles of the inverse depth over every pixel of every frame added."""
        if not self.frames:
            raise ValueError("no depth frame was added")
        lo, hi = self._clip.quantiles((self.low / 100.0, self.high / 100.0))
        return lo, hi

    def frame_ranges(self) -> np.ndarray:
        """``(frames, 2)``: each frame's own ``(low, high)`` percentiles."""
        return np.stack([np.asarray(self._frame_lows, dtype=np.float64),
                         np.asarray(self._frame_highs, dtype=np.float64)], axis=1).reshape(-1, 2)


@dataclass(frozen=True)
class DepthScale:
    """The inverse-depth range mapped to black…white, for each frame of a clip."""

    lows: np.ndarray
    highs: np.ndarray

    def __len__(self) -> int:
        return int(self.lows.shape[0])

    def range_at(self, position: float) -> tuple[float, float]:
        """The range at a frame ``position`` (fractional positions interpolate; clamped to the clip)."""
        last = len(self) - 1
        position = min(max(float(position), 0.0), float(last))
        left = int(math.floor(position))
        right = min(left + 1, last)
        t = position - left
        return (float((1 - t) * self.lows[left] + t * self.lows[right]),
                float((1 - t) * self.highs[left] + t * self.highs[right]))


def _gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """``values`` smoothed by a Gaussian of ``sigma`` samples, edges held (normalised weights)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def plan_depth_scale(sketch: InverseDepthSketch, *, smoothing: float = 0.0) -> DepthScale:
    """The scale of every frame: one clip-wide range (``smoothing`` 0), or each frame's range
    smoothed over time with a Gaussian of ``smoothing`` frames."""
    if not isinstance(smoothing, (int, float)) or isinstance(smoothing, bool) or not math.isfinite(smoothing) \
            or smoothing < 0:
        raise OptionError(f"Depth smoothing {smoothing!r} must be 0 (one range per clip) "
                          "or a number of frames above 0.")
    frames = sketch.frames
    if smoothing == 0:
        lo, hi = sketch.clip_range()
        return DepthScale(np.full(frames, lo), np.full(frames, hi))
    ranges = sketch.frame_ranges()
    sigma = float(smoothing)
    return DepthScale(_gaussian_smooth(ranges[:, 0], sigma), _gaussian_smooth(ranges[:, 1], sigma))


def plan_shot_scales(runs: Sequence[tuple[int, InverseDepthSketch]], *, smoothing: float = 0.0) -> DepthScale:
    """The scale of a clip made of shots (hard cuts between them): ``runs`` are the clip's consecutive
    frames of one shot each, in order, as ``(shot, sketch)``. ``smoothing`` 0 gives one range per shot
    (over all its runs: a ``clip`` loop comes back to the same range); above 0 each run is smoothed
    on its own, never across a cut. A single run is exactly :func:`plan_depth_scale`."""
    if smoothing == 0 and len(runs) > 1:
        shots: dict[int, InverseDepthSketch] = {}
        for shot, sketch in runs:
            if shot not in shots:
                shots[shot] = InverseDepthSketch(low=sketch.low, high=sketch.high,
                                                 relative_accuracy=sketch.relative_accuracy)
            shots[shot].merge(sketch)
        ranges = {shot: sketch.clip_range() for shot, sketch in shots.items()}
        lows = np.concatenate([np.full(sketch.frames, ranges[shot][0]) for shot, sketch in runs])
        highs = np.concatenate([np.full(sketch.frames, ranges[shot][1]) for shot, sketch in runs])
        return DepthScale(lows, highs)
    parts = [plan_depth_scale(sketch, smoothing=smoothing) for _shot, sketch in runs]
    return DepthScale(np.concatenate([p.lows for p in parts]), np.concatenate([p.highs for p in parts]))


def check_contrast(contrast: Any) -> float:
    """``contrast`` as a float, or ``OptionError`` when it is not a number above 0."""
    if isinstance(contrast, bool) or not isinstance(contrast, (int, float)) or not math.isfinite(contrast) \
            or contrast <= 0:
        raise OptionError(f"Depth contrast {contrast!r} must be a number above 0 (1.0 = neutral).")
    return float(contrast)


def depth_to_guide(depth: np.ndarray, low: float, high: float, *, contrast: float = 1.0,
                   out: Optional[np.ndarray] = None) -> np.ndarray:
    """Inverse depth ``(H, W)`` or ``(B, H, W)`` → grey RGB uint8 ``(…, 3)``: ``low`` black, ``high`` white."""
    contrast = check_contrast(contrast)
    depth = np.asarray(depth, dtype=np.float32)
    width = float(high) - float(low)
    if not math.isfinite(width) or width <= 1e-6 * max(abs(float(high)), abs(float(low)), ZERO_MAGNITUDE):
        value = np.full(depth.shape, FLAT_VALUE, dtype=np.float32)
    else:
        value = np.clip((depth - np.float32(low)) / np.float32(width), 0.0, 1.0)
        value = np.nan_to_num(value, nan=0.0)
    if contrast != 1.0:
        value = np.power(value, np.float32(contrast))
    grey = np.rint(value * 255.0).astype(np.uint8)
    result = out if out is not None else np.empty(grey.shape + (3,), dtype=np.uint8)
    result[...] = grey[..., None]
    return result


def per_frame_guide(depth: np.ndarray, *, contrast: float = 1.0) -> np.ndarray:
    """What Wan2GP's annotator does (each frame from its own min to its own max): for comparisons only."""
    depth = np.asarray(depth, dtype=np.float32)
    frames = depth[None] if depth.ndim == 2 else depth
    return np.stack([depth_to_guide(f, float(f.min()), float(f.max()), contrast=contrast) for f in frames])
