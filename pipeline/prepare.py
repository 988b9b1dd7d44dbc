"""Validate a request, probe its source and plan it: everything known before any work starts."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import InvalidVideoError
from ..preprocessors.video.fit import FrameFitter
from ..preprocessors.timeline.frame_plan import FramePlan, make_plan
from ..preprocessors.timeline.motion_resample import MotionTimeline, choose_stride, guide_timeline
from ..preprocessors.video.source_damage import check_complete
from ..preprocessors.timeline.source_time import timed_plan, timed_range, timed_timeline
from ..preprocessors.video.video_io import VideoInfo, probe_video
from .request import GuideRequest, GuideResult


@dataclass
class PreparedGuide:
    """A validated request with its probed source, frame plan, motion timeline and fitter.

    ``result`` is the run's record while it works (the steps in ``build`` note their facts there); a
    caller gets it as a value from :meth:`GuideRun.result` (or :func:`build_guide`) once the run has ended.
    """

    request: GuideRequest
    info: VideoInfo
    plan: FramePlan
    motion: MotionTimeline
    fitter: FrameFitter
    result: GuideResult
    started: float = field(default_factory=time.perf_counter)
    #: The model its annotator chose (a flow backend, depth weights, …), found once per request.
    choice: Optional[Any] = None

    def record_model(self, choice: Any) -> None:
        """Note the chosen model (a flow backend, the depth weights, …) in the result: name, why, weights."""
        self.result.backend, self.result.backend_reason, self.result.weights = (choice.name, choice.reason,
                                                                                choice.weights_label)

    @property
    def size(self) -> tuple[int, int]:
        return self.result.width, self.result.height

    @property
    def window(self) -> tuple[int, int]:
        """Guide frames ``[lo, hi)`` of the timeline that come out."""
        lo = self.request.window_start
        return lo, lo + self.request.output_frames

    @property
    def stride(self) -> int:
        """Source frames between stored flows for this request (see ``motion_resample``)."""
        return choose_stride(self.motion.step)


def prepare(request: GuideRequest) -> PreparedGuide:
    """Validate, probe the source and plan the frames; raises typed errors, writes nothing."""
    started = time.perf_counter()
    requested = request.size
    request = request.validated()
    width, height = request.resolution  # type: ignore[misc]
    info, short_note = check_complete(probe_video(request.input), request.allow_short)
    if request.guide_type == "flow" and info.frame_count < 2:
        raise InvalidVideoError(
            f"{Path(str(request.input)).name} has only {info.frame_count} frame; optical flow needs at least two: "
            "use --type canny or raw, or a longer video.")
    plan, motion = plan_in_time(request, info)
    fitter = FrameFitter(info.width, info.height, width, height, request.fit)
    lo = request.window_start
    result = GuideResult(output=None, frames=request.output_frames, width=width, height=height, fps=request.fps,
                         guide_type=request.guide_type, requested_size=requested,
                         source={"path": info.path, "width": info.width, "height": info.height, "fps": info.fps,
                                 "frame_count": info.frame_count, "duration": info.duration,
                                 "rotation": info.rotation, "codec": info.codec,
                                 "range": [plan.first, plan.stop]},
                         distinct_source_frames=plan.distinct(lo, lo + request.output_frames))
    result.source["cuts"] = request.cuts
    if info.timestamps is not None:
        result.source["variable_frame_rate"] = True
    if short_note:
        result.warnings.append(short_note)
    if result.snapped:
        result.warnings.append(f"Resolution snapped from {requested[0]}x{requested[1]} to {width}x{height} "
                               "(multiples of 16, as Wan2GP does).")
    return PreparedGuide(request, info, plan, motion, fitter, result, started)


def plan_in_time(request: GuideRequest, info: VideoInfo) -> tuple[FramePlan, MotionTimeline]:
    """The frame plan and motion timeline: by frame numbers for an evenly spaced source (frame ``i`` at
    ``i / fps``), by presentation time for a variable frame rate one (``preprocessors.timeline.source_time``)."""
    if info.timestamps is None:
        plan = make_plan(request.treatment, request.frames, info.frame_count, info.fps, request.fps,
                         request.source_range)
        return plan, guide_timeline(request.treatment, request.frames, plan.first, plan.stop, info.fps, request.fps)
    times = info.timestamps
    first, stop = timed_range(times, info.fps, request.source_range)
    return (timed_plan(request.treatment, request.frames, times, first, stop, request.fps),
            timed_timeline(request.treatment, request.frames, times, first, stop, request.fps))
