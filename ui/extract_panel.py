"""The extract panel: structure video in, guide out. Event handlers take their dependencies
(:class:`~.deps.TabDeps`) as the first argument; ``ui/tab.py`` binds them to the components.
"""
# No "from __future__ import annotations": Gradio reads the handlers' hints (gr.Request) at wiring time.

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import gradio as gr
import numpy as np

from ..errors import CancelledError, StructureVideoError, WeightsNotFoundError
from ..options import DEFAULTS, automatic_batch_size
from . import cache_panel, host_bridge, weights_field
from .cache_home import tab_cache
from .compat import upload_path
from .deps import TabDeps
from .failures import describe_failure, ends_cleanly, page_error
from .outputs import SAMPLE_NAME

logger = logging.getLogger(__name__)

NO_VIDEO = "No structure video yet: upload one or use the sample."
CANCELLED = "Cancelled — nothing was written."
#: The status line while a run goes on: empty, so the progress drawn over it is the only text there
#: (no faded "Extracting…" under "optical flow 32/129").
RUNNING = ""
#: Extra folders (os.pathsep-separated) the tab may read structure videos from, besides the upload folder.
ALLOWED_DIRS_ENV = "WAN2GP_STRUCTURE_VIDEO_ALLOWED_DIRS"
#: The controls :func:`extract` takes after the source, in its order: ``ui/tab.py`` wires these components
#: (a test checks this equals ``extract``'s parameters, so the two cannot drift).
EXTRACT_CONTROLS = ("resolution", "frames", "fps", "guide_type", "treatment", "fit", "start", "end", "range_unit",
                    "motion_strength", "backend", "iterations", "batch_size", "depth_contrast", "depth_smoothing",
                    "depth_weights_path", "depth_weights_file", "cuts", "allow_short")


# Pure helpers ----------------------------------------------------------------------------------------

def allowed_roots(deps: TabDeps) -> list[Path]:
    """Folders a structure video given to the tab may come from: Gradio's upload folder, our output
    folder (the sample) and the folders listed in ``$WAN2GP_STRUCTURE_VIDEO_ALLOWED_DIRS``."""
    upload = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    roots = [Path(upload), deps.outputs.root]
    roots += [Path(p) for p in os.environ.get(ALLOWED_DIRS_ENV, "").split(os.pathsep) if p]
    return [root.expanduser().resolve() for root in roots]


def check_upload_allowed(deps: TabDeps, path: str) -> str:
    """Refuse a path outside the allowed folders (a crafted API call must not read arbitrary files)."""
    resolved = Path(path).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in allowed_roots(deps)):
        raise StructureVideoError(f"{Path(path).name} is outside the upload folder: upload the video through "
                                  f"the page (or list its folder in ${ALLOWED_DIRS_ENV}).")
    return str(resolved)


def describe_video(path: Optional[str]) -> tuple[str, Optional[np.ndarray]]:
    """(markdown info, poster RGB frame) of a video; raises StructureVideoError."""
    from ..preprocessors.video.video_io import iter_frames, probe_video

    if not path:
        return NO_VIDEO, None
    info = probe_video(path)
    frames = iter_frames(path, info)
    try:
        poster = next(iter(frames), None)
    finally:
        close = getattr(frames, "close", None)
        if callable(close):
            close()
    text = (f"**{Path(path).name}** — {info.width}×{info.height}, {info.fps:.3g} fps, "
            f"{info.frame_count} frames, {info.duration:.2f} s"
            + (f", rotated {info.rotation}°" if info.rotation else "") + (f", {info.codec}" if info.codec else ""))
    return text, poster


def make_request(source: str, output: Path, resolution: str, frames: Any, fps: Any, guide_type: str,
                 treatment: str, fit: str, start: Any, end: Any, range_unit: str, motion_strength: Any,
                 backend: str, iterations: Any, batch_size: Any, raft_weights: Optional[str] = None,
                 depth_variant: Optional[str] = None, depth_contrast: Any = DEFAULTS["depth_contrast"],
                 depth_smoothing: Any = DEFAULTS["depth_smoothing"], depth_weights: Optional[str] = None,
                 cuts: str = DEFAULTS["cuts"], allow_short: Any = False):
    """The page's values as a :class:`GuideRequest` (empty fields and 0 mean "unset" / automatic)."""
    from ..pipeline.request import GuideRequest

    def opt_number(value: Any) -> Optional[float]:
        """Empty or 0 means "no bound" (the browser sends 0 for an empty number field)."""
        if value is None or value == "":
            return None
        number = float(value)
        return None if number == 0 else number

    batch = None if batch_size in (None, "") else automatic_batch_size(int(batch_size), "Batch size")
    return GuideRequest(
        input=source, output=output, resolution=str(resolution or "").strip(), frames=int(frames or 0),
        fps=float(fps or 0), guide_type=guide_type, treatment=treatment, fit=fit, start=opt_number(start),
        end=opt_number(end), range_unit=range_unit, motion_strength=float(motion_strength),
        backend=backend, iterations=int(iterations), batch_size=batch, raft_weights=raft_weights,
        depth_variant=depth_variant,
        depth_contrast=float(DEFAULTS["depth_contrast"] if depth_contrast in (None, "") else depth_contrast),
        depth_smoothing=float(depth_smoothing or 0), depth_weights=depth_weights,
        cuts=cuts or DEFAULTS["cuts"], allow_short=bool(allow_short))


def _where(result: Any) -> str:
    """Where the model ran, or "from cache" when no model ran (never "on `cache`")."""
    return ", from cache" if result.device == "cache" else f" on `{result.device}`"


def progress_text(update: Any) -> str:
    """One progress text per update: the stage's own message ("optical flow 32/129 (batch 4)"), else
    the stage and its count; never both (they say the same thing)."""
    text = update.message or f"{update.stage} {update.done}/{update.total}"
    return text[:1].upper() + text[1:]


def details_markdown(result: Any, chart_note: str = "") -> str:
    lines = [f"**{result.frames} frames, {result.width}×{result.height} @ {result.fps:g} fps**, type `{result.guide_type}`"]
    lines.append(f"Summary: {result.summary()}")
    if result.guide_type == "flow":
        lines.append(f"Backend: `{result.backend}`{_where(result)} — {result.backend_reason}")
        if result.weights:
            lines.append(f"Weights: {result.weights}")
        if result.batch_size:
            lines.append(f"Batch size: {result.batch_size} pairs")
        if result.render_cached:
            lines.append("Cache: guide reused from the cache (no flow model loaded)")
        elif result.flows_from_cache:
            lines.append("Cache: flows **hit** — re-targeted from the cached source flows, no flow model loaded")
        elif result.cache_hit is not None:
            lines.append("Cache: flows " + ("**hit** (reused)" if result.cache_hit else "miss (computed and stored)"))
    if result.guide_type == "depth":
        lines.append(f"Depth model: `{result.backend}`{_where(result)} — {result.backend_reason}")
        lines.append(f"Weights: {result.weights}")
        if result.depth_brightness:
            lines.append(f"Brightness: {result.depth_brightness}")
        if result.cache_hit is not None:
            lines.append("Cache: depth maps " + ("**hit** (no depth model loaded)" if result.cache_hit
                                                 else "miss (computed and stored)"))
    if result.guide_type in ("flow", "depth"):
        if result.source.get("cuts") == "off":
            lines.append("Shots: cut detection off (the source is treated as one shot)")
        elif result.cuts:
            lines.append(f"Shots: {result.cuts_text()} — " + ("never drawn as motion" if result.guide_type == "flow"
                                                              else "one brightness range per shot"))
        else:
            lines.append("Shots: no hard cut found")
    if result.source.get("variable_frame_rate"):
        lines.append("Timing: variable frame rate source — guide frames placed by presentation time")
    distinct = result.distinct_source_frames
    if 0 < distinct < result.frames:
        lines.append(f"Source frames: {distinct} distinct over {result.frames} guide frames"
                     + (" (motion spread in time, no still frames)" if result.guide_type == "flow" else " (repeated)"))
    timings = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in (result.timings or {}).items())
    if timings:
        lines.append(f"Timings: {timings}")
    if result.peak_device_bytes:
        lines.append(f"Peak GPU memory: {result.peak_device_bytes / 2**20:.0f} MiB")
    for warning in result.warnings or []:
        lines.append(f"Note: {warning}")
    if chart_note:
        lines.append(f"Note: {chart_note}")
    lines.extend(memory_lines(result))
    return "\n\n".join(lines)


#: At most this many timeline events are listed in the details (the CLI's PNG/JSON export has all).
MAX_EVENTS_SHOWN = 12


def memory_lines(result: Any) -> list[str]:
    """The run's memory story for the details: batch-size notes, before/after clean-up reports, the
    time spent per phase and the timeline's events (model load/unload/release, batch-size changes,
    OOM back-offs, pressure actions)."""
    lines = [f"Memory: {note}" for note in getattr(result, "memory_notes", None) or []]
    lines += [f"Clean-up: {report}" for report in getattr(result, "memory_reports", None) or []]
    timeline = getattr(result, "timeline", None)
    if timeline is None:
        return lines
    spent: dict[str, float] = {}
    for phase in timeline.phase_rows():
        spent[phase["phase"]] = spent.get(phase["phase"], 0.0) + phase["end"] - phase["start"]
    if spent:
        lines.append("Phases: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in spent.items()))
    events = timeline.event_rows()
    if events:
        shown = [f"{e['t']:.2f}s {e['kind']}: {e['text']}" for e in events[:MAX_EVENTS_SHOWN]]
        more = len(events) - len(shown)
        lines.append("Events: " + "; ".join(shown) + (f"; … {more} more" if more > 0 else ""))
    return lines


def chart_value(result: Any) -> tuple[Any, str]:
    """(the memory chart's value for ``gr.LinePlot``, a note when there is no chart). The rows come
    from ``Timeline.chart_rows()`` (long format ``t``/``series``/``mib``); whatever series it holds
    are plotted. No result is dropped silently: a missing chart says why."""
    timeline = getattr(result, "timeline", None)
    if timeline is None:
        return None, "no memory timeline was recorded for this run."
    try:
        rows = list(timeline.chart_rows())
    except Exception as exc:  # the chart is a nicety; the guide is what matters, but say so
        logger.warning("Could not read the memory timeline", exc_info=True)
        return None, f"the memory chart is unavailable ({exc})."
    if not rows:
        return None, "the memory timeline holds no samples (the run was too short to sample)."
    import pandas as pd

    return pd.DataFrame(rows, columns=["t", "series", "mib"]), ""


def run_extraction(request: Any, progress: Any = None, gpu_lock: Any = None, weights_locator: Any = None,
                   cache: Any = None):
    """Build the guide through the pipeline's one entry point; returns the ``GuideResult``."""
    from ..pipeline.build import RunContext, build_guide

    return build_guide(request, RunContext(progress=progress, gpu_lock=gpu_lock, weights_locator=weights_locator,
                                           cache=cache))


def plan_indices(request: Any) -> list[int]:
    try:
        from ..pipeline.build import prepare

        return [int(i) for i in prepare(request).plan.indices]
    except Exception:
        return []


def preview_frame(run: Optional[dict], index: Any) -> Optional[np.ndarray]:
    """Side by side: the fitted source frame | the guide frame ``index``."""
    from ..preprocessors.video.fit import FrameFitter
    from ..preprocessors.video.video_io import iter_planned_frames, probe_video

    if not run or not run.get("guide"):
        return None
    guide_info = probe_video(run["guide"])
    index = max(0, min(int(index or 0), guide_info.frame_count - 1))
    guide = next(iter_planned_frames(run["guide"], [index], guide_info))
    source_info = probe_video(run["source"])
    indices = run.get("indices") or []
    src_index = indices[index] if index < len(indices) else round(index * source_info.frame_count / max(1, guide_info.frame_count))
    src_index = max(0, min(int(src_index), source_info.frame_count - 1))
    source = next(iter_planned_frames(run["source"], [src_index], source_info))
    fitted = FrameFitter(source_info.width, source_info.height, guide_info.width, guide_info.height, run["fit"])(source)
    gap = np.full((guide.shape[0], 8, 3), 255, dtype=np.uint8)
    return np.concatenate([np.asarray(fitted, dtype=np.uint8), gap, np.asarray(guide, dtype=np.uint8)], axis=1)


# Event handlers ----------------------------------------------------------------------------------------

def on_upload(deps: TabDeps, file_value: Any):
    """(info markdown, poster) of the chosen video; a file that is no usable video says so in the info
    text itself (no error badge drawn over the panel)."""
    path = upload_path(file_value)
    if not path:
        return NO_VIDEO, None
    try:
        return describe_video(check_upload_allowed(deps, path))
    except Exception as exc:  # StructureVideoError: the user's to fix; anything else is logged
        return f"**Cannot use this file.** {describe_failure('Reading the video', exc)}", None


@ends_cleanly("Writing the sample video")
def use_sample(deps: TabDeps) -> str:
    """The sample structure video (written once into the output folder)."""
    from ..preprocessors.video.sample_video import write_sample_video

    path = deps.outputs.ensure() / SAMPLE_NAME
    if not path.is_file():
        write_sample_video(path, width=640, height=360)
    return str(path)


def cleared_results(status: str = "") -> tuple:
    """The extract outputs with no result on screen: guide, details, preview, preview slider, memory
    chart (the cache line is left alone) and the status line."""
    return None, "", None, gr.update(value=0, visible=False), None, status


def begin(deps: TabDeps) -> tuple:
    """Before a run: the previous run's results go (so an error never sits over stale results), the
    status says a run is under way and Cancel becomes clickable."""
    guide, details, preview, slider, chart, status = cleared_results(RUNNING)
    return guide, details, preview, slider, chart, status, gr.update(interactive=True)


def finish(deps: TabDeps, request: gr.Request = gr.Request()) -> tuple:
    """After a run, whatever its outcome: Cancel is disabled again, and a failed run's message (already
    in the UI's words) stays in the status line once the toast is gone."""
    error = deps.take_error(request)
    return gr.update(interactive=False), (f"**Not extracted:** {error}" if error else gr.update())


def extract(deps: TabDeps, file_value: Any, resolution: str, frames: Any, fps: Any, guide_type: str, treatment: str,
            fit: str, start: Any, end: Any, range_unit: str, motion_strength: Any, backend: str, iterations: Any,
            batch_size: Any, depth_contrast: Any = DEFAULTS["depth_contrast"],
            depth_smoothing: Any = DEFAULTS["depth_smoothing"], depth_weights_path: Any = None,
            depth_weights_file: Any = None, cuts: str = DEFAULTS["cuts"], allow_short: Any = False,
            progress: gr.Progress = gr.Progress(), request: gr.Request = gr.Request()):
    """Extract: the guide, its details, the first preview, the preview slider, the memory chart, the
    cache line and the status line; the run (for Send / Generate / the preview) is kept for this browser
    session. A cancel the user asked for is no error: the panels are cleared and the status says so.
    Any ``Exception`` is raised as ``gr.Error`` in the UI's words (an unexpected one logged with its
    traceback, see ``failures``); the status line shows it, not a toast."""
    values = locals()  # the first statement: only the parameters are bound, by name
    controls = {name: values[name] for name in EXTRACT_CONTROLS}
    depth_weights = weights_field.chosen_weights(controls.pop("depth_weights_path"), controls.pop("depth_weights_file"))
    try:
        return _extract(deps, file_value, dict(controls, depth_weights=depth_weights), progress, request)
    except Exception as exc:  # whatever failed, the run ends: finish() puts the message in the status line
        deps.set_run(request, None)
        if isinstance(exc, WeightsNotFoundError) and guide_type == "depth" and depth_weights is None:
            message = describe_failure("Extracting", WeightsNotFoundError(weights_field.missing_message(deps)))
        else:
            message = describe_failure("Extracting", exc)
        deps.note_error(request, message)
        raise page_error(message, toast=False) from exc


def _extract(deps: TabDeps, file_value: Any, controls: dict[str, Any], progress: Any, request: Any) -> tuple:
    """One run; ``controls`` are :func:`make_request`'s keyword arguments (the page's values)."""
    from ..progress import Progress

    deps.note_error(request, None)
    path = upload_path(file_value)
    if not path:
        raise StructureVideoError("Upload a structure video first (or click 'Use the sample video').")
    path = check_upload_allowed(deps, path)
    cancel = deps.cancel_event(request, fresh=True)
    out = deps.outputs.new_path(f"{Path(path).stem}_{controls['guide_type']}", ".mp4")

    def on_update(update: Any) -> None:
        try:
            progress(update.fraction, desc=progress_text(update))
        except Exception:
            pass

    try:
        req = make_request(path, out, depth_variant=host_bridge.host_depth_variant(deps.plugin), **controls)
        result = run_extraction(req, progress=Progress(on_update, cancel), gpu_lock=deps.gpu_lock_for(deps.host_state(request)),
                                weights_locator=host_bridge.weights_locator(deps.plugin), cache=tab_cache(deps))
        indices = plan_indices(req)
    except CancelledError:
        deps.set_run(request, None)
        guide, details, preview, slider, chart, status = cleared_results(CANCELLED)
        return guide, details, preview, slider, chart, cache_panel.stats_text(deps), status
    finally:
        deps.outputs.prune()
    run = {"guide": str(result.output), "source": path, "fit": controls["fit"], "indices": indices, "request": req,
           "frames": result.frames, "resolution": f"{result.width}x{result.height}", "fps": result.fps}
    deps.set_run(request, run)
    try:
        preview = preview_frame(run, 0)
    except StructureVideoError:
        preview = None
    chart, chart_note = chart_value(result)
    return (str(result.output), details_markdown(result, chart_note), preview,
            gr.update(minimum=0, maximum=max(1, result.frames - 1), value=0, visible=True),
            chart, cache_panel.stats_text(deps), f"Done: {result.frames} frames → {Path(result.output).name}")


def cancel(deps: TabDeps, request: gr.Request = gr.Request()) -> None:
    deps.cancel_event(request).set()
    gr.Info("Cancelling: the extraction stops after the current batch.")


@ends_cleanly("Showing the preview")
def on_preview(deps: TabDeps, index: Any, request: gr.Request = gr.Request()):
    return preview_frame(deps.run_for(request), index)
