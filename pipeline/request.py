"""What a guide request asks for, and what it produced.

:class:`GuideRequest` holds one structure video, a target (size, frame count, fps) and options;
:meth:`GuideRequest.validated` checks every option and returns a normalised copy, raising typed
errors whose messages say what to change.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import OptionError, TargetError
from ..options import (BACKENDS, CUT_MODES, DEFAULT_SIZE, DEFAULTS, DEPTH_INPUT_SIZES, DEPTH_VARIANTS,
                       FIT_MODES, GUIDE_TYPES, MAX_CANNY_INTENSITY, MAX_DEPTH_CONTRAST, MAX_DEPTH_SMOOTHING, MAX_FRAMES,
                       MAX_GUIDE_FPS, MAX_ITERATIONS, MAX_MOTION_PIXELS, MAX_MOTION_STRENGTH, PRECISIONS, RAFT_MODELS,
                       RANGE_UNITS, TEARDOWNS, TREATMENTS, is_device_name)
from ..preprocessors.video.fit import parse_resolution, snap_resolution
from ..preprocessors.timeline.frame_plan import SourceRange

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class GuideRequest:
    """One structure video turned into one guide video (see the README for every option)."""

    input: PathLike
    output: Optional[PathLike] = None
    resolution: Union[str, tuple[int, int]] = DEFAULT_SIZE
    frames: int = DEFAULTS["frames"]
    fps: float = DEFAULTS["fps"]
    guide_type: str = DEFAULTS["guide_type"]
    treatment: str = DEFAULTS["treatment"]
    fit: str = DEFAULTS["fit"]
    start: Optional[float] = None
    end: Optional[float] = None
    range_unit: str = DEFAULTS["range_unit"]
    motion_strength: float = DEFAULTS["motion_strength"]
    max_motion: Optional[float] = None
    scale_percentile: float = DEFAULTS["scale_percentile"]
    backend: str = DEFAULTS["backend"]
    raft_model: str = DEFAULTS["raft_model"]
    raft_weights: Optional[str] = None
    iterations: int = DEFAULTS["iterations"]
    #: RAFT warm start: updates of a pair that follows the previous one, started from its flow carried
    #: forward (the first pair of a run gets ``iterations``); None: every pair starts cold.
    raft_warm_updates: Optional[int] = None
    device: str = DEFAULTS["device"]
    batch_size: Optional[int] = None
    precision: str = DEFAULTS["precision"]
    canny_intensity: float = DEFAULTS["canny_intensity"]
    teardown: str = DEFAULTS["teardown"]
    window_start: int = 0
    window_frames: Optional[int] = None
    depth_weights: Optional[str] = None
    depth_variant: Optional[str] = None
    depth_contrast: float = DEFAULTS["depth_contrast"]
    depth_smoothing: float = DEFAULTS["depth_smoothing"]
    depth_input_size: Optional[int] = DEFAULTS["depth_input_size"]
    contour_weights: Optional[str] = None
    pose_weights: Optional[str] = None
    #: Draw the hands too (Wan2GP's own pose guide does); body and face always.
    pose_hands: bool = False
    #: Smooth the keypoint tracks (One-Euro) before drawing.
    pose_filter: bool = True
    cuts: str = DEFAULTS["cuts"]
    allow_short: bool = False

    @property
    def output_frames(self) -> int:
        """How many guide frames come out: the window of the timeline, or all of it."""
        return self.window_frames if self.window_frames is not None else self.frames - self.window_start

    @property
    def size(self) -> tuple[int, int]:
        """The requested (width, height) before snapping."""
        if isinstance(self.resolution, str):
            return parse_resolution(self.resolution)
        width, height = self.resolution
        return int(width), int(height)

    @property
    def source_range(self) -> SourceRange:
        """The optional source range as a :class:`SourceRange`."""
        return SourceRange(self.start, self.end, self.range_unit)

    def validated(self) -> "GuideRequest":
        """Check every option; return a copy with the resolution snapped to multiples of 16."""
        _choice("type", self.guide_type, GUIDE_TYPES)
        _choice("treatment", self.treatment, TREATMENTS)
        _choice("fit", self.fit, FIT_MODES)
        _choice("range unit", self.range_unit, RANGE_UNITS)
        _choice("backend", self.backend, BACKENDS)
        _choice("RAFT model", self.raft_model, RAFT_MODELS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("teardown", self.teardown, TEARDOWNS)
        _choice("cuts", self.cuts, CUT_MODES)
        if not isinstance(self.allow_short, bool):
            raise OptionError(f"allow_short {self.allow_short!r} must be True or False.")
        width, height = snap_resolution(*self.size)
        if isinstance(self.frames, bool) or not isinstance(self.frames, int) or not 0 < self.frames <= MAX_FRAMES:
            raise TargetError(f"Frame count {self.frames!r} must be a whole number from 1 to {MAX_FRAMES}.")
        _number("fps", self.fps, low=0.0, high=MAX_GUIDE_FPS, exclusive_low=True, error=TargetError)
        _number("motion strength", self.motion_strength, low=0.0, high=MAX_MOTION_STRENGTH)
        _number("scale percentile", self.scale_percentile, low=0.0, high=100.0, exclusive_low=True)
        _number("canny intensity", self.canny_intensity, low=0.0, high=MAX_CANNY_INTENSITY, exclusive_low=True)
        if self.max_motion is not None:
            _number("max motion", self.max_motion, low=0.0, high=MAX_MOTION_PIXELS, exclusive_low=True)
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) \
                or not 1 <= self.iterations <= MAX_ITERATIONS:
            raise OptionError(f"Iterations {self.iterations!r} must be a whole number from 1 to {MAX_ITERATIONS}.")
        if self.raft_warm_updates is not None and (
                isinstance(self.raft_warm_updates, bool) or not isinstance(self.raft_warm_updates, int)
                or not 1 <= self.raft_warm_updates <= self.iterations):
            raise OptionError(f"RAFT warm-start updates {self.raft_warm_updates!r} must be a whole number from 1 to "
                              f"the iterations ({self.iterations}), or unset for no warm start.")
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                                            or self.batch_size < 1):
            raise OptionError(f"Batch size {self.batch_size!r} must be a whole number of at least 1 (or unset).")
        _device_text(self.device)
        _depth_options(self)
        window_frames = self.frames - self.window_start if self.window_frames is None else self.window_frames
        if isinstance(self.window_start, bool) or not isinstance(self.window_start, int) or self.window_start < 0 \
                or not isinstance(window_frames, int) or window_frames < 1 \
                or self.window_start + window_frames > self.frames:
            raise TargetError(f"Window {self.window_start}+{self.window_frames} lies outside the {self.frames}-frame "
                              "timeline: use 0 <= window_start and window_start + window_frames <= frames.")
        return replace(self, resolution=(width, height), fps=float(self.fps))


@dataclass
class GuideResult:
    """What :func:`build_guide` produced, with the facts a user needs to trust it."""

    output: Optional[Path]
    frames: int
    width: int
    height: int
    fps: float
    guide_type: str
    requested_size: tuple[int, int]
    backend: str = "none"
    backend_reason: str = ""
    weights: str = ""
    device: str = "cpu"
    batch_size: int = 0
    flow_scale: Optional[float] = None
    #: Depth guides: how brightness was mapped (contrast; one range for the clip, or smoothed over N frames).
    depth_brightness: str = ""
    cache_hit: Optional[bool] = None
    cache_key: Optional[str] = None
    render_cached: bool = False
    #: True when no flow model ran: the guide came from flows (or a rendered guide) already in the cache.
    flows_from_cache: bool = False
    #: Distinct source frames the guide's frame plan shows (fewer than ``frames`` when it repeats some).
    distinct_source_frames: int = 0
    #: Source frames between stored flows (1 = every consecutive pair); 0 for canny and raw.
    flow_stride: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    peak_device_bytes: int = 0
    peak_rss_bytes: int = 0
    peak_anon_bytes: int = 0
    batch_note: str = ""
    memory_notes: list[str] = field(default_factory=list)
    memory_reports: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    #: Hard cuts found (``cuts="auto"``): the source frames that start a new shot, and their times in seconds.
    cuts: list[int] = field(default_factory=list)
    cut_times: list[float] = field(default_factory=list)
    timeline: Any = None
    warnings: list[str] = field(default_factory=list)

    @property
    def snapped(self) -> bool:
        """Whether the target size was snapped down to multiples of 16."""
        return self.requested_size != (self.width, self.height)

    def _where(self) -> str:
        """" on cuda:0" where a model ran; a cache hit ran none (the cache says so in its own part)."""
        return "" if self.device == "cache" else f" on {self.device}"

    def summary(self, verbose: bool = False) -> str:
        """One line for the CLI and logs; ``verbose`` adds the memory notes (batch size and why,
        pressure clean-ups) and every before/after clean-up report, one per line."""
        parts = [f"{self.frames} frames {self.width}x{self.height} @ {self.fps:g} fps, type {self.guide_type}"]
        if self.snapped:
            parts.append(f"snapped from {self.requested_size[0]}x{self.requested_size[1]}")
        if self.guide_type == "depth":
            parts.append(f"model {self.backend} ({self.weights}){self._where()}")
            if self.depth_brightness:
                parts.append(self.depth_brightness)
            if self.cache_hit:
                parts.append("depth maps from cache (no depth model loaded)")
        if self.guide_type == "flow":
            parts.append(f"backend {self.backend}{self._where()}")
            if self.render_cached:
                parts.append("guide from cache (no flow model loaded)")
            elif self.flows_from_cache:
                parts.append("flows from cache, re-targeted (no flow model loaded)")
            elif self.cache_hit is not None or self.flow_stride:
                parts.append("flows computed" + (f" every {self.flow_stride} source frames"
                                                 if self.flow_stride > 1 else ""))
        if self.cuts:
            parts.append(self.cuts_text())
        if self.source.get("variable_frame_rate"):
            parts.append("variable frame rate: placed by presentation time")
        if 0 < self.distinct_source_frames < self.frames:
            if self.guide_type == "flow":
                parts.append(f"motion of {self.distinct_source_frames} source frames spread over {self.frames}")
            else:
                parts.append(f"{self.distinct_source_frames} distinct source frames, repeated to fill {self.frames}")
        parts.append(f"{self.timings.get('total', 0.0):.1f}s")
        if self.batch_note:
            parts.append(self.batch_note)
        if self.peak_device_bytes:
            parts.append(f"peak GPU {self.peak_device_bytes / 2**20:.0f} MiB")
        where = f" -> {self.output}" if self.output is not None else ""
        line = "Guide: " + ", ".join(parts) + where
        if not verbose:
            return line
        details = [f"  Memory: {note}" for note in self.memory_notes]
        details += [f"  Clean-up: {report}" for report in self.memory_reports]
        if self.peak_anon_bytes:
            details.append(f"  Peak process memory (anonymous): {self.peak_anon_bytes / 2**20:.0f} MiB")
        return "\n".join([line] + details)


    def cuts_text(self) -> str:
        """How many hard cuts were found and where (source frame and time)."""
        where = ", ".join(f"frame {frame} ({seconds:.2f} s)" for frame, seconds in zip(self.cuts, self.cut_times))
        return f"{len(self.cuts)} hard cut{'s' if len(self.cuts) != 1 else ''} at source {where}"


def _choice(label: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise OptionError(f"Unknown {label} {value!r}: use one of {', '.join(allowed)}.")


def _number(label: str, value: Any, *, low: float, high: float, exclusive_low: bool = False,
            error: type[Exception] = OptionError) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if exclusive_low else value >= low) and value <= high
    if not ok:
        bound = ">" if exclusive_low else ">="
        raise error(f"The {label} {value!r} is out of range: use a number {bound} {low:g} and <= {high:g}.")


def _depth_options(request: GuideRequest) -> None:
    if request.depth_variant is not None:
        _choice("depth variant", request.depth_variant, DEPTH_VARIANTS)
    _number("depth contrast", request.depth_contrast, low=0.0, high=MAX_DEPTH_CONTRAST, exclusive_low=True)
    _number("depth smoothing", request.depth_smoothing, low=0.0, high=MAX_DEPTH_SMOOTHING)
    size = request.depth_input_size
    low, high = DEPTH_INPUT_SIZES
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high):
        raise OptionError(f"Depth input size {size!r} must be a whole number from {low} to {high} (or unset: the "
                          "frame's own size).")
    for label, value in (("Depth", request.depth_weights), ("Contour", request.contour_weights),
                         ("Pose", request.pose_weights)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise OptionError(f"{label} weights {value!r} must be a path (or unset: found locally).")


def _device_text(device: str) -> None:
    if not is_device_name(device):
        raise OptionError(f"Unknown device {device!r}: use auto, cpu, cuda or cuda:N.")
