"""Hard-cut marks of stored rows (flows or depth maps): taken during extraction, kept in the cache
entry's manifest (``"cuts"``: row indices ``j``, the pair node ``j`` → node ``j+1``), recomputed for
entries written before cuts were marked, and reported in the request's result.

With ``cuts="off"`` no mark is used (the guide is drawn as if the source had one shot).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from ..preprocessors.annotators.shot_cuts import CutProbe
from ..preprocessors.video.video_io import iter_planned_frames
from .prepare import PreparedGuide

#: Manifest field holding the cut marks of an entry.
CUTS_FIELD = "cuts"


def probe_nodes(prepared: PreparedGuide, nodes: Sequence[int]) -> tuple[int, ...]:
    """Cut marks of the pairs of ``nodes``, decoding and fitting them (no model runs)."""
    probe = CutProbe()
    for frame in iter_planned_frames(str(prepared.request.input), nodes, prepared.info):
        probe.add(prepared.fitter(frame))
    return probe.cuts()


def stored_marks(manifest: Mapping[str, Any], prepared: PreparedGuide,
                 nodes: Sequence[int]) -> tuple[frozenset[int], bool]:
    """The marks an entry's rows carry, and whether they had to be recomputed (an entry of an earlier
    release has none: its node frames are probed again, its rows are used as they are)."""
    if prepared.request.cuts == "off":
        return frozenset(), False
    marks = manifest.get(CUTS_FIELD)
    if marks is None:
        return frozenset(probe_nodes(prepared, nodes)), True
    return frozenset(int(j) for j in marks), False


def record_cuts(prepared: PreparedGuide, nodes: Sequence[int], marks: frozenset[int],
                recomputed: bool = False) -> None:
    """Write the cuts that lie inside the request's range into its result (source frame and time)."""
    result, info, plan = prepared.result, prepared.info, prepared.plan
    frames = sorted({nodes[j + 1] for j in marks if j + 1 < len(nodes) and plan.first < nodes[j + 1] < plan.stop})
    result.cuts = frames
    result.cut_times = [info.timestamps[f] if info.timestamps is not None else f / info.fps for f in frames]
    if recomputed:
        result.memory_notes.append("Cut marks were recomputed for a cache entry of an earlier version (no model ran).")


def cut_field(probe: Optional[CutProbe]) -> dict[str, Any]:
    """The manifest field of a finished extraction (marks are stored even with ``cuts="off"``, so the
    entry serves both)."""
    return {CUTS_FIELD: list(probe.cuts())} if probe is not None else {}
