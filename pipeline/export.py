"""Raw exports: the rows an annotator stored (flows or depth maps) for a source range at the fitted size.

An export is on the *source* timeline: the request is re-planned so that its guide steps through
every frame of its range once (``source_request``), and the rows come through the same step a guide
uses (``build.open_rows``: any cache entry that covers the range, else
extracted once with the usual pool, GPU lock and memory checks). Rows are copied one at a time from
the mapped store into the export's files, so RAM holds a row or two whatever the clip's length.

The folder is written under a partial name beside ``out_dir`` and renamed when complete: on any
error nothing is left at ``out_dir``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..atomic_files import fsync_dir, partial_path, removed_on_failure
from ..errors import OptionError, OutputError
from ..options import DEFAULTS, EXPORT_TYPES, MAX_GUIDE_FPS
from ..preprocessors.cache.cache_hashing import sha256_file
from ..preprocessors.render.row_export import from_png16, read_flo, write_sidecar
from .annotators import Annotator, annotator_for
from .build import open_rows
from .context import RunContext
from .prepare import PreparedGuide, prepare
from .request import GuideRequest, GuideResult

__all__ = ["EXPORT_TYPES", "SIDECAR_NAME", "ExportResult", "export_rows", "source_request", "read_flo",
           "from_png16"]

SIDECAR_NAME = "export.json"
#: Bump when the layout of an export folder changes.
EXPORT_FORMAT = 1


@dataclass
class ExportResult:
    """What an export wrote: its folder, files and sidecar, and the run's facts (cache, model, warnings)."""

    folder: Path
    guide_type: str
    npy: Path
    shape: tuple[int, ...]
    frames: tuple[int, ...]
    stride: int
    from_cache: bool
    sidecar: dict[str, Any]
    run: GuideResult
    extra_files: list[Path] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the CLI and the tab."""
        origin = "from the cache" if self.from_cache else f"computed ({self.run.backend})"
        kind = {"flow": ".flo", "depth": "PNG", "pose": "OpenPose JSON"}.get(self.guide_type, "")
        extra = f" + {len(self.extra_files)} {kind} files" \
            if self.extra_files else ""
        return (f"Exported {self.guide_type} {self.npy.name} {tuple(self.shape)} {self.sidecar.get('dtype', 'float16')}{extra}, "
                f"source frames {self.frames[0]}..{self.frames[-1]} stride {self.stride}, {origin} -> {self.folder}")


def source_request(request: GuideRequest) -> GuideRequest:
    """``request`` re-planned to step through every source frame of its range once (output unset)."""
    if request.guide_type not in EXPORT_TYPES:
        raise OptionError(f"Export type {request.guide_type!r}: use {', '.join(EXPORT_TYPES)} (canny, raw and gray have no "
                          "annotator rows; make a guide instead).")
    probe = prepare(replace(request, output=None, frames=1, treatment="adjust", window_start=0, window_frames=None))
    first, stop = probe.plan.first, probe.plan.stop
    if request.guide_type == "flow" and stop - first < 2:
        raise OptionError(f"The range holds {stop - first} source frame: a flow export needs at least two; "
                          "widen --start/--end.")
    fps = min(float(probe.info.fps), MAX_GUIDE_FPS) if probe.info.fps and probe.info.fps > 0 else DEFAULTS["fps"]
    return replace(probe.request, frames=stop - first, fps=fps)


def _check_out_dir(out: Path) -> None:
    """``out`` may be a new folder or an empty one; anything else would mix two exports."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a folder that is not empty"
        raise OptionError(f"Export folder {out} is {what}: name a new or empty folder.")


def _selected(nodes: Sequence[int], first: int, last: int) -> tuple[int, int]:
    """Indices ``[j0, j1]`` of the stored nodes inside the source range ``[first, last]``."""
    inside = [j for j, n in enumerate(nodes) if first <= n <= last]
    return inside[0], inside[-1]


def export_rows(request: GuideRequest, out_dir: Union[str, Path], flo: bool = False, png: bool = True,
                context: Optional[RunContext] = None) -> ExportResult:
    """Write the flows (``guide_type="flow"``) or depth maps (``"depth"``) of ``request``'s source range
    at its fitted size into ``out_dir``; ``flo``: also a Middlebury ``.flo`` per pair; ``png``: also a
    16-bit PNG per depth map. Only ``frames``/``fps``/treatment and the guide's look are ignored."""
    out = Path(out_dir).expanduser().resolve()
    _check_out_dir(out)
    ctx = (context or RunContext()).resolved()
    prepared = prepare(source_request(request))
    temp = partial_path(out, suffix="")
    try:
        temp.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the export folder beside {out}: {exc.strerror or exc}.") from exc
    with removed_on_failure(temp, OutputError, f"Cannot write the export into {out}",
                            "free disk space or choose another folder."):
        result = _write_export(prepared, ctx, temp, flo, png)
        if out.exists():
            out.rmdir()  # checked empty above
        temp.rename(out)
        fsync_dir(out.parent)
    result.folder = out
    result.npy = out / result.npy.name
    result.extra_files = [out / p.name for p in result.extra_files]
    return result


def _write_export(prepared: PreparedGuide, ctx: RunContext, folder: Path, flo: bool, png: bool) -> ExportResult:
    annotator = annotator_for(prepared.request.guide_type)
    assert annotator is not None  # source_request refused the others
    first, last = prepared.plan.first, prepared.plan.stop - 1
    started = time.perf_counter()
    with open_rows(annotator, prepared, ctx) as stored:
        j0, j1 = _selected(stored.nodes, first, last)
        part = annotator.export(stored, j0, j1, folder, flo=flo, png=png)
        nodes, stride, from_cache = stored.nodes[j0:j1 + 1], stored.stride, stored.from_cache
        cuts = sorted(j - j0 for j in stored.cuts if j0 <= j < j1)
    fields: dict[str, Any] = {"units": annotator.export_units, **part.fields}
    fields.update(_sidecar_fields(prepared, ctx, annotator, part.shape, nodes, stride, cuts, from_cache))
    fields["files"] = {"npy": part.npy.name, part.extra_kind: [p.name for p in part.extra_files]}
    write_sidecar(folder / SIDECAR_NAME, fields)
    prepared.result.timings["export"] = time.perf_counter() - started
    return ExportResult(folder, annotator.guide_type, part.npy, part.shape, tuple(nodes), stride, from_cache, fields,
                        prepared.result, part.extra_files)


def _sidecar_fields(prepared: PreparedGuide, ctx: RunContext, annotator: Annotator, shape: tuple[int, ...],
                    nodes: Sequence[int], stride: int, cuts: list[int], from_cache: bool) -> dict[str, Any]:
    req, info, run = prepared.request, prepared.info, prepared.result
    content = ctx.cache.content_hash(info.path) if ctx.cache is not None else sha256_file(info.path)
    return {
        "format": EXPORT_FORMAT,
        "type": annotator.guide_type,
        "source": {"path": str(info.path), "sha256": content, "width": info.width, "height": info.height,
                   "frame_count": info.frame_count},
        "range": {"first": prepared.plan.first, "stop": prepared.plan.stop, "unit": "source frames, stop exclusive"},
        "source_fps": info.fps,
        "frames": [int(n) for n in nodes],
        "stride": int(stride),
        "size": [prepared.size[0], prepared.size[1]],
        "fit": req.fit,
        "model": {"backend": run.backend, "reason": run.backend_reason, "weights": run.weights,
                  **annotator.export_options(req, prepared.choice)},
        "cuts": {"mode": req.cuts, "rows": cuts,
                 "meaning": ("pairs i (frames[i] -> frames[i+1]) that are hard cuts between shots; their "
                             "motion is not meaningful")},
        "dtype": annotator.export_dtype,
        "shape": list(shape),
        "from_cache": from_cache,
        "cache_key": run.cache_key,
    }
