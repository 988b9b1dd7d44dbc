"""Flow → colour: the Middlebury colour wheel with one scale for the whole clip.

Hue is the direction of motion, saturation its size relative to ``scale``; zero motion is white.
Using one clip-wide scale (a high percentile of the magnitudes, from a :class:`MagnitudeHistogram`)
keeps colours steady from frame to frame and lets ``strength`` change the picture — normalising
each frame by its own maximum does neither.

**No motion is white, noise included.** Optical flow of a still shot is not exactly zero: on a
static H.264 source DIS reports up to about 0.3 px of motion where compression (and sensor) noise
flickers (measured: 99th percentile 0.04-0.16 px, 99.9th up to 0.55 px at CRF 18-28, see
``bench/render_speed.py``). Two rules keep that white:

* a **dead zone** of :data:`DEAD_ZONE` = 0.3 px: every magnitude is shrunk by it before colouring
  (``max(|flow| - 0.3, 0)``, direction kept), so motion below 0.3 px per frame is white and motion
  above it starts from white continuously (no edge at the threshold). Real motion of a few pixels
  loses a negligible 0.3 px; a slow 1 px/frame pan is still drawn in full colour (its clip scale
  is also measured after the dead zone).
* a **scale floor** of :data:`MIN_SCALE` = 0.5 px (after the dead zone): a clip whose motion stays
  below 0.8 px is drawn proportionally pale instead of having its noise blown up to full colour.

With both, noise below ~0.32 px stays within 8 levels of white, and any motion of 0.5 px per frame
or more is visibly coloured.

**Colouring is a table lookup.** The colour of a normalised motion vector (radius ≤ 1) is read from
a precomputed :data:`TABLE_SIZE` × :data:`TABLE_SIZE` table over the square [-1, 1]², built once
from the exact wheel (:func:`flow_to_rgb_exact`). Per pixel this costs one magnitude, a few
multiplications and one gather (a nearest-neighbour ``cv2.remap`` of the table image) instead of an
arctangent and three interpolations; it matches the exact colouring within 2 levels.
"""
from __future__ import annotations

import functools
import logging
import math
from typing import Any, Optional

import cv2
import numpy as np

logger = logging.getLogger(__name__)

#: Ramps of the Middlebury wheel: (length, channel held at 255, channel that changes, rising?).
#: Red→Yellow, Yellow→Green, Green→Cyan, Cyan→Blue, Blue→Magenta, Magenta→Red.
_RAMPS = ((15, 0, 1, True), (6, 1, 0, False), (4, 1, 2, True),
          (11, 2, 1, False), (13, 2, 0, True), (6, 0, 2, False))
#: Pixels of motion drawn as white: every magnitude is shrunk by this much before colouring, so
#: the flicker optical flow reports on a still (compressed, noisy) shot does not tint the guide.
DEAD_ZONE = 0.3
#: The floor of :func:`clip_scale` in pixels (after the dead zone): a clip whose motion stays below
#: it is drawn pale instead of having its noise blown up to full colour.
MIN_SCALE = 0.5
#: Side of the colour lookup table (odd, so that zero motion has its own entry).
TABLE_SIZE = 1025


def colour_wheel() -> np.ndarray:
    """The 55 Middlebury wheel colours as a (55, 3) float32 array of 0..255 RGB values."""
    rows = []
    for length, held, moving, rising in _RAMPS:
        steps = np.floor(255.0 * np.arange(length) / length)
        ramp = np.zeros((length, 3), dtype=np.float32)
        ramp[:, held] = 255.0
        ramp[:, moving] = steps if rising else 255.0 - steps
        rows.append(ramp)
    return np.concatenate(rows)


_WHEEL = colour_wheel() / 255.0


def _check(flow: np.ndarray, scale: float, strength: float, dead_zone: float) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {flow.shape}")
    _check_drawing(scale, strength, dead_zone)
    return flow


def _check_drawing(scale: float, strength: float, dead_zone: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number of pixels, got {scale!r}")
    if not (math.isfinite(strength) and strength >= 0):
        raise ValueError(f"strength must be zero or positive, got {strength!r}")
    if not (math.isfinite(dead_zone) and dead_zone >= 0):
        raise ValueError(f"dead_zone must be zero or a positive number of pixels, got {dead_zone!r}")


def _finite_components(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The x and y components as contiguous float32; non-finite values count as still."""
    u = np.ascontiguousarray(u, dtype=np.float32)
    v = np.ascontiguousarray(v, dtype=np.float32)
    if not (np.isfinite(u).all() and np.isfinite(v).all()):
        u = np.nan_to_num(u, nan=0.0, posinf=0.0, neginf=0.0)
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
    return u, v


def _radius(magnitude: np.ndarray, scale: float, strength: float, dead_zone: float) -> np.ndarray:
    """Radius on the wheel, 0..1: ``strength * max(|flow| - dead_zone, 0) / scale``, clipped to the rim."""
    radius = magnitude - np.float32(dead_zone)
    np.maximum(radius, np.float32(0.0), out=radius)
    radius *= np.float32(strength / scale)
    np.minimum(radius, np.float32(1.0), out=radius)
    return radius


def _wheel_colours(u: np.ndarray, v: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Exact wheel colour (uint8 RGB) of direction (u, v) drawn at ``radius`` (0 white .. 1 full)."""
    # Angle of the motion, 0..1 around the wheel, starting at motion towards -x (pure red is +x).
    position = (np.arctan2(-v, -u) / np.float32(np.pi) + np.float32(1.0)) * np.float32(0.5 * (len(_WHEEL) - 1))
    k0 = np.floor(position).astype(np.int64)
    fraction = position - k0
    k1 = k0 + 1
    k1[k1 == len(_WHEEL)] = 0
    image = np.empty(u.shape + (3,), dtype=np.uint8)
    for channel in range(3):
        ramp = _WHEEL[:, channel]
        colour = (1.0 - fraction) * ramp[k0] + fraction * ramp[k1]
        colour = 1.0 - radius * (1.0 - colour)
        image[..., channel] = np.floor(255.0 * colour).clip(0, 255).astype(np.uint8)
    return image


def flow_to_rgb_exact(flow: np.ndarray, scale: float, strength: float = 1.0, *,
                      dead_zone: float = DEAD_ZONE) -> np.ndarray:
    """The reference colouring of :func:`flow_to_rgb`, computed per pixel (slower; builds the table).

    With ``dead_zone=0``, ``scale`` = the frame's own maximum and ``strength`` 1 it matches
    ``torchvision.utils.flow_to_image`` within one level.
    """
    flow = _check(flow, scale, strength, dead_zone)
    u, v = _finite_components(flow[..., 0], flow[..., 1])
    radius = _radius(np.hypot(u, v), scale, strength, dead_zone)
    return _wheel_colours(u, v, radius)


@functools.lru_cache(maxsize=1)
def _colour_table() -> np.ndarray:
    """(TABLE_SIZE², 3) uint8: the exact colour of every normalised vector on a grid over [-1, 1]²."""
    axis = np.linspace(-1.0, 1.0, TABLE_SIZE, dtype=np.float32)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    radius = np.minimum(np.hypot(x, y), np.float32(1.0))  # corners (never looked up exactly) at the rim
    return np.ascontiguousarray(_wheel_colours(x, y, radius).reshape(-1, 3))


def _components_and_magnitude(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The x and y components (float32, contiguous) and the magnitude. Non-finite components count as
    still; a magnitude too large for float32's squares is measured without overflow."""
    u = np.ascontiguousarray(u, dtype=np.float32)
    v = np.ascontiguousarray(v, dtype=np.float32)
    magnitude = cv2.magnitude(u, v)
    if not math.isfinite(float(np.add.reduce(magnitude, axis=None))):  # NaN, inf and overflow propagate
        u, v = _finite_components(u, v)
        magnitude = np.hypot(u, v)
    return u, v, magnitude


def flow_to_rgb(flow: np.ndarray, scale: float, strength: float = 1.0, *,
                dead_zone: float = DEAD_ZONE) -> np.ndarray:
    """Colour one (H, W, 2) flow in pixels as (H, W, 3) uint8 RGB, by table lookup.

    The radius on the wheel is ``strength * max(|flow| - dead_zone, 0) / scale``. A radius above 1
    is clipped to the wheel's rim (full colour, same hue) rather than darkened: the guide then only
    ever holds the colours VACE was trained on. Non-finite flow counts as still. Within 2 levels of
    :func:`flow_to_rgb_exact`.
    """
    flow = _check(flow, scale, strength, dead_zone)
    u, v = cv2.split(np.ascontiguousarray(flow, dtype=np.float32))
    return _colour(u, v, scale, strength, dead_zone)


def planes_to_rgb(planes: np.ndarray, scale: float, strength: float = 1.0, *,
                  dead_zone: float = DEAD_ZONE) -> np.ndarray:
    """:func:`flow_to_rgb` of a flow given as ``(2, H, W)`` u and v planes (the same colours; no
    channel split needed)."""
    planes = np.asarray(planes)
    if planes.ndim != 3 or planes.shape[0] != 2:
        raise ValueError(f"flow planes must have shape (2, H, W), got {planes.shape}")
    _check_drawing(scale, strength, dead_zone)
    return _colour(planes[0], planes[1], scale, strength, dead_zone)


def _colour(u: np.ndarray, v: np.ndarray, scale: float, strength: float, dead_zone: float) -> np.ndarray:
    """The table-lookup colouring of components ``u`` and ``v`` (arguments already checked)."""
    u, v, magnitude = _components_and_magnitude(u, v)
    radius = _radius(magnitude, scale, strength, dead_zone)
    # gain maps (u, v) to table units: the vector drawn at ``radius``, times the half-size of the table.
    # Where the magnitude is 0 the radius is 0 too, so the tiny floor only avoids 0/0.
    half = np.float32((TABLE_SIZE - 1) / 2)
    np.maximum(magnitude, np.float32(1e-30), out=magnitude)
    gain = np.divide(radius, magnitude, out=radius)
    gain *= half
    # The gather is one nearest-neighbour remap of the table image, which rounds coordinates to the
    # nearest entry. Columns round to the nearest entry. Rows round down (hence -0.5): the wheel's
    # seam (motion along +x) lies on the row of y = 0, whose colours belong to y >= 0, so a slightly
    # upward motion must read the row below it, as the exact colouring does. Coordinates a rounding
    # past the rim read the rim (border replicated).
    column = cv2.multiply(u, gain)
    column += half
    row = cv2.multiply(v, gain, dst=magnitude)
    row += half - np.float32(0.5)
    return cv2.remap(_colour_image(), column, row, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


@functools.lru_cache(maxsize=1)
def _colour_image() -> np.ndarray:
    """The colour table as a (TABLE_SIZE, TABLE_SIZE, 3) image: row = y, column = x."""
    return _colour_table().reshape(TABLE_SIZE, TABLE_SIZE, 3)


class MagnitudeHistogram:
    """Flow magnitudes of a whole clip in constant memory: log-spaced bins plus the exact maximum.

    Bins span ``lo``..``hi`` pixels (below ``lo`` and above ``hi`` each get one more bin); with the
    defaults a bin is 0.8 % wide, so a percentile lands within about 1 % of the exact value.
    """

    VERSION = 1

    def __init__(self, lo: float = 1e-3, hi: float = 1e4, bins: int = 2048) -> None:
        if not (0 < lo < hi) or bins < 1:
            raise ValueError(f"need 0 < lo < hi and bins >= 1, got lo={lo}, hi={hi}, bins={bins}")
        self.lo, self.hi, self.bins = float(lo), float(hi), int(bins)
        self._log_lo = math.log(self.lo)
        self._log_span = math.log(self.hi) - self._log_lo
        self.counts = np.zeros(self.bins + 2, dtype=np.int64)  # [below lo, bins..., above hi]
        self.max = 0.0
        self.count = 0

    def _edge(self, index: int) -> float:
        """Lower edge of log bin ``index`` (0..bins); bin i covers [edge(i), edge(i+1))."""
        return math.exp(self._log_lo + self._log_span * index / self.bins)

    def add(self, flow: np.ndarray) -> None:
        """Count the magnitudes of a (..., 2) flow array; non-finite values are skipped."""
        flow = np.asarray(flow)
        if flow.shape[-1] != 2:
            raise ValueError(f"flow must end with 2 components, got shape {flow.shape}")
        if flow.dtype in (np.float32, np.float16):
            u, v = cv2.split(np.ascontiguousarray(flow, dtype=np.float32).reshape(-1, 1, 2))
            self.add_components(u, v)
        else:
            self.add_components(flow[..., 0], flow[..., 1])

    def add_components(self, u: np.ndarray, v: np.ndarray) -> None:
        """Count the magnitudes of motions with components ``u`` and ``v`` (same shape; e.g. the two
        planes of a flow); non-finite values are skipped."""
        u, v = np.asarray(u), np.asarray(v)
        if u.shape != v.shape:
            raise ValueError(f"components must have one shape, got {u.shape} and {v.shape}")
        # Flows as stored (float32/float16) are measured in float32 with OpenCV (SIMD, ~10x faster
        # than numpy's hypot); anything else in float64.
        work = np.float32 if u.dtype in (np.float32, np.float16) and v.dtype in (np.float32, np.float16) \
            else np.float64
        if work is np.float32:
            magnitude = cv2.magnitude(np.ascontiguousarray(u, dtype=np.float32).reshape(-1, 1),
                                      np.ascontiguousarray(v, dtype=np.float32).reshape(-1, 1)).reshape(-1)
        else:
            magnitude = np.hypot(np.asarray(u, dtype=work).reshape(-1), np.asarray(v, dtype=work).reshape(-1))
        if not math.isfinite(float(np.add.reduce(magnitude))):  # one cheap pass; NaN and inf propagate
            magnitude = magnitude[np.isfinite(magnitude)]
        if magnitude.size == 0:
            return
        # Slot of each magnitude: 1 + floor of its log position, clipped so that below ``lo`` lands
        # in slot 0 and ``hi`` or more in the last slot. Clipped to [0, bins + 1] first, the floor is
        # the integer conversion's truncation.
        position = np.log(np.maximum(magnitude, work(self.lo * 0.5)))
        position -= work(self._log_lo)
        position *= work(self.bins / self._log_span)
        position += work(1.0)
        np.clip(position, 0, self.bins + 1, out=position)
        if work is np.float32:  # OpenCV's histogram of the slot positions: exact, and 4x faster than bincount
            slots = cv2.calcHist([position.reshape(1, -1)], [0], None, [self.bins + 2], [0, self.bins + 2])
            self.counts += slots.reshape(-1).astype(np.int64)
        else:
            self.counts += np.bincount(position.astype(np.intp), minlength=self.bins + 2)
        self.count += int(magnitude.size)
        self.max = max(self.max, float(magnitude.max()))

    def merge(self, other: "MagnitudeHistogram") -> None:
        """Add another histogram with the same bins (e.g. a cached segment's) into this one."""
        if (other.lo, other.hi, other.bins) != (self.lo, self.hi, self.bins):
            raise ValueError("histograms with different bins cannot be merged")
        self.counts += other.counts
        self.count += other.count
        self.max = max(self.max, other.max)

    def percentile(self, q: float) -> float:
        """Approximate ``numpy.percentile(magnitudes, q)``; 0 when nothing was added."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be within 0..100, got {q}")
        if self.count == 0:
            return 0.0
        if q >= 100.0:
            return self.max
        rank = q / 100.0 * (self.count - 1)  # numpy's linear-interpolation rank
        cumulative = np.cumsum(self.counts)
        slot = int(np.searchsorted(cumulative, rank, side="right"))
        before = int(cumulative[slot - 1]) if slot > 0 else 0
        inside = (rank - before + 0.5) / int(self.counts[slot])  # position within the slot, 0..1
        if slot == 0:
            value = inside * min(self.lo, self.max)
        elif slot == self.bins + 1:
            value = self.hi + inside * (self.max - self.hi)
        else:
            low, high = self._edge(slot - 1), self._edge(slot)
            value = math.exp(math.log(low) + inside * (math.log(high) - math.log(low)))
        return float(min(value, self.max))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description (only the non-empty bins are listed)."""
        nonzero = np.flatnonzero(self.counts)
        return {"version": self.VERSION, "lo": self.lo, "hi": self.hi, "bins": self.bins,
                "max": self.max, "count": self.count,
                "counts": [[int(i), int(self.counts[i])] for i in nonzero]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MagnitudeHistogram":
        """Rebuild a histogram written by :meth:`to_dict` (``ValueError`` if it is not one)."""
        try:
            if int(data["version"]) != cls.VERSION:
                raise ValueError(f"unsupported histogram version {data['version']!r}")
            histogram = cls(float(data["lo"]), float(data["hi"]), int(data["bins"]))
            for index, amount in data["counts"]:
                histogram.counts[int(index)] = int(amount)
            histogram.max, histogram.count = float(data["max"]), int(data["count"])
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"not a magnitude histogram: {exc}") from exc
        if int(histogram.counts.sum()) != histogram.count or (histogram.counts < 0).any():
            raise ValueError("magnitude histogram counts do not add up")
        return histogram

    def __repr__(self) -> str:
        return f"MagnitudeHistogram(count={self.count}, max={self.max:.4g})"


def clip_scale(hist: MagnitudeHistogram, percentile: float = 99.0, max_motion: Optional[float] = None,
               *, min_scale: float = MIN_SCALE, dead_zone: float = DEAD_ZONE) -> float:
    """The ``scale`` for :func:`flow_to_rgb` (pixels beyond the dead zone drawn at the rim) for a clip.

    A user-given ``max_motion`` wins: motion of that many pixels reaches full colour (for a
    ``max_motion`` below twice the dead zone, motion of twice the dead zone does). Otherwise the
    ``percentile`` of the clip's magnitudes. Never below ``min_scale``, so a still or nearly still
    clip stays (almost) white.
    """
    if max_motion is not None:
        if not (math.isfinite(max_motion) and max_motion > 0):
            raise ValueError(f"max_motion must be a positive number of pixels, got {max_motion!r}")
        return float(max(max_motion - dead_zone, dead_zone))
    return float(max(hist.percentile(percentile) - dead_zone, min_scale))
