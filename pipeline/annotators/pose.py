"""Pose, described once: DWPose whole-body (Wan2GP's two ONNX models) run by onnxruntime.

Rows: the keypoints of every ``stride``-th source frame of the range, (8 people, 134 points, (x, y,
score)) float32 with x, y normalised to the fitted frame (``preprocessors/annotators/pose_dwpose``), so a
guide of any size, frame count, fps or treatment is drawn from the cached rows without running the models.
Drawing: like Wan2GP's pose annotator (``draw_like_host``: drawn at the network size, resized), body and face,
hands on request (Wan2GP's own guide draws them: ``pose_hands=True`` gives its picture). Before drawing, the
keypoint tracks are smoothed on the source timeline by a One-Euro filter with confidence gating (on by
default: ``bench/pose_jitter.py`` measures 0.31× the jitter of a still person and no lag on fast motion);
``pose_filter=False`` draws the raw keypoints. The ONNX sessions live in the annotator pool: unloading or
moving them destroys them (an ONNX session cannot change device); the next use rebuilds them from the files.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import numpy as np

from ...options import RANDOM_WEIGHTS
from ...preprocessors.render.row_export import write_npy_rows
from ..device_choice import WeightsLocator
from ..request import GuideRequest
from .base import Annotator, BatchFn, ExportPart, WeightsChoice

if TYPE_CHECKING:  # pragma: no cover - types only
    from ..context import RunContext
    from ..prepare import PreparedGuide

#: Bump when stored keypoints change meaning.
POSE_FORMAT = 1
#: Bytes of device memory one frame needs (two ONNX sessions on one 1024-sided image; a margin).
BYTES_PER_FRAME = 600 << 20


class PoseChoice(WeightsChoice):
    """The DWPose files picked for a request (``source``: a ``PoseWeights``)."""

    pool_prefix = "pose"
    name = "dwpose"

    @property
    def weights_label(self) -> str:
        return f"{self.source.origin}: {Path(self.source.detector).parent}"


def choose_pose(request: GuideRequest, locator: Optional[WeightsLocator] = None) -> PoseChoice:
    """The DWPose files of a pose request (found now; nothing loaded or downloaded; one line when missing)."""
    from ...errors import OptionError
    from ...preprocessors.weights.pose_weights import find_pose_weights

    if request.pose_weights == RANDOM_WEIGHTS:
        raise OptionError("Pose has no random weights: pass --pose-weights DIR with the two DWPose ONNX files.")
    from ...preprocessors.annotators.pose_sessions import choose_providers, installed_providers
    from ..device_choice import resolve_device

    weights = find_pose_weights(request.pose_weights, host_locator=locator)
    _providers, runs_on = choose_providers(resolve_device(request.device).type, installed_providers())
    return PoseChoice(weights, f"DWPose on {runs_on}, models from {weights.origin}")


def smoothed_by_shot(rows: np.ndarray, cuts: frozenset[int], fps: float, width: int, height: int) -> np.ndarray:
    """The keypoint tracks filtered shot by shot (row ``j`` in ``cuts``: a hard cut between rows j and j+1),
    so no track is carried from one shot into the next."""
    from ...preprocessors.timeline.keypoint_filter import filter_rows

    starts = [0] + sorted(j + 1 for j in cuts if 0 <= j < len(rows) - 1) + [len(rows)]
    return np.concatenate([filter_rows(rows[a:b], fps, width, height) for a, b in zip(starts, starts[1:]) if b > a])


class PoseAnnotator(Annotator):
    guide_type = "pose"
    per_pair = False
    dtype = "float32"
    key_kind = "source-pose"
    key_format = POSE_FORMAT
    progress_words = "pose"
    phase = "pose"
    scratch_name = "pose"
    export_dtype = "float32"
    export_units = ("keypoints (x, y, score) of up to 8 people × 134 points (0-17 body in OpenPose order, "
                    "18-23 feet, 24-91 face, 92-112 left hand, 113-133 right hand); x, y normalised to the "
                    "fitted frame (0..1); a point is shown when its score is above 0.3; map i is source frame "
                    "frames[i]")

    def choose(self, request: GuideRequest, locator: Optional[WeightsLocator]) -> PoseChoice:
        return choose_pose(request, locator)

    def precision(self, request: GuideRequest, choice: Any, device: Any) -> str:
        return "fp32"  # the ONNX models run as exported

    def cpu_batch_size(self, choice: Any) -> int:
        return 4

    def factory(self, choice: Any) -> Optional[Callable[[], Any]]:
        from ...preprocessors.annotators.pose_sessions import PoseSessions

        weights = choice.source
        return lambda: PoseSessions(weights)

    def batch_fn(self, choice: Any, model: Any, device: Any, request: GuideRequest, precision: str) -> BatchFn:
        from ...preprocessors.annotators.pose_dwpose import estimate

        return lambda frames: list(estimate(model, np.stack(frames)))  # the pool placed (built) the sessions

    def bytes_per_input(self, choice: Any, request: GuideRequest, height: int, width: int) -> int:
        return BYTES_PER_FRAME

    def row_shape(self, width: int, height: int) -> tuple[int, ...]:
        from ...preprocessors.annotators.pose_dwpose import MAX_PEOPLE, N_KEYPOINTS

        return (MAX_PEOPLE, N_KEYPOINTS, 3)

    def key_fields(self, prepared: "PreparedGuide", choice: Any) -> dict[str, Any]:
        from ...preprocessors.annotators.pose_dwpose import RESIZE_SIZE

        return {"model": choice.identity(), "resize": RESIZE_SIZE}

    def frames(self, stored: Any, prepared: "PreparedGuide", ctx: "RunContext") -> Iterator[np.ndarray]:
        from ...preprocessors.render.pose_draw import draw_like_host

        req = prepared.request
        width, height = prepared.size
        rows = np.asarray(stored.rows, dtype=np.float32)  # a few KB per frame: the whole track is small
        if req.pose_filter and len(rows) > 1:
            rows = smoothed_by_shot(rows, stored.cuts, prepared.info.fps / max(1, stored.stride), width, height)
            prepared.result.memory_notes.append("Pose keypoints smoothed on the source timeline (One-Euro filter, "
                                                "never across a hard cut).")
        for k in range(*prepared.window):
            yield draw_like_host(rows[stored.nearest(prepared.plan.indices[k])], height, width, hands=req.pose_hands)

    def export(self, stored: Any, j0: int, j1: int, folder: Path, *, flo: bool, png: bool) -> ExportPart:
        from ...preprocessors.render.pose_json import openpose_json

        rows = stored.rows
        part = ExportPart(folder / "pose.npy", (j1 - j0 + 1, *rows.shape[1:]), extra_kind="json")
        write_npy_rows(part.npy, part.shape, lambda i: rows[j0 + i], dtype=np.float32)
        width, height = stored.size
        for i in range(part.shape[0]):
            part.extra_files.append(folder / f"pose_{i:06d}_keypoints.json")
            part.extra_files[-1].write_text(openpose_json(np.asarray(rows[j0 + i]), width, height))
        return part


POSE = PoseAnnotator()
