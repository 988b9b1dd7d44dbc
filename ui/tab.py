"""The Structure Video tab, built into the current ``gr.Blocks`` context.

The same function serves Wan2GP (``hosted``: the plugin received the host's components, maybe an API
session) and the standalone app (no host components: the generator buttons are hidden).
Event handlers are plain functions of this module so they are testable without a browser.
"""
# No "from __future__ import annotations": Gradio 5 resolves handler hints (gr.Request) at wiring time.

import logging
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..errors import StructureVideoError
from . import host_bridge
from .compat import upload_path

logger = logging.getLogger(__name__)

GUIDE_TYPES = [("Optical flow (colour wheel)", "flow"), ("Canny edges", "canny"), ("Raw (fitted frames)", "raw")]
TREATMENTS = [("Adjust: spread over the whole video / range", "adjust"), ("Clip: keep the source timing", "clip")]
FITS = [("Crop to the target aspect", "crop"), ("Pad (letterbox)", "pad"), ("Stretch", "stretch")]
BACKENDS = [("Auto (RAFT if its weights are found, else DIS)", "auto"), ("RAFT (GPU, best)", "raft"),
            ("DIS (OpenCV, CPU, fast)", "dis")]
ELEM = "structure_video"  # prefix of the elem_ids the browser tests use

_cancel_events: dict[str, threading.Event] = {}
_cancel_guard = threading.Lock()


def output_dir() -> Path:
    """Where guides, charts and previews go: under the system temp dir, which Gradio may serve."""
    folder = Path(tempfile.gettempdir()) / "wan2gp-structure-video"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


#: Extra folders (os.pathsep-separated) the tab may read structure videos from, besides the upload folder.
ALLOWED_DIRS_ENV = "WAN2GP_STRUCTURE_VIDEO_ALLOWED_DIRS"


def allowed_roots() -> list[Path]:
    """Folders a structure video given to the tab may come from: Gradio's upload folder, our output
    folder (the sample) and the folders listed in ``$WAN2GP_STRUCTURE_VIDEO_ALLOWED_DIRS``."""
    upload = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    roots = [Path(upload), output_dir()]
    roots += [Path(p) for p in os.environ.get(ALLOWED_DIRS_ENV, "").split(os.pathsep) if p]
    return [root.expanduser().resolve() for root in roots]


def check_upload_allowed(path: str) -> str:
    """Refuse a path outside the allowed folders (a crafted API call must not read arbitrary files)."""
    resolved = Path(path).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in allowed_roots()):
        raise StructureVideoError(f"{Path(path).name} is outside the upload folder: upload the video through "
                                  f"the page (or list its folder in ${ALLOWED_DIRS_ENV}).")
    return str(resolved)


def _session_key(request: Any) -> str:
    return str(getattr(request, "session_hash", None) or "default")


def cancel_event_for(request: Any, fresh: bool = False) -> threading.Event:
    key = _session_key(request)
    with _cancel_guard:
        event = _cancel_events.get(key)
        if event is None or fresh:
            event = _cancel_events[key] = threading.Event()
        return event


# Pure handlers ---------------------------------------------------------------------------------------

def describe_video(path: Optional[str]) -> tuple[str, Optional[np.ndarray]]:
    """(markdown info, poster RGB frame) of an uploaded video; raises StructureVideoError."""
    from ..preprocessors.video_io import iter_frames, probe_video

    if not path:
        return "No structure video yet: upload one or use the sample.", None
    info = probe_video(path)
    poster = None
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
                 backend: str, iterations: Any, batch_size: Any, raft_weights: Optional[str] = None):
    from ..pipeline.request import GuideRequest

    def opt_number(value: Any) -> Optional[float]:
        """Empty or 0 means "no bound" (the browser sends 0 for an empty number field)."""
        if value is None or value == "":
            return None
        number = float(value)
        return None if number == 0 else number

    batch = int(batch_size) if batch_size not in (None, "") and int(batch_size) > 0 else None
    return GuideRequest(
        input=source, output=output, resolution=str(resolution or "").strip(), frames=int(frames or 0),
        fps=float(fps or 0), guide_type=guide_type, treatment=treatment, fit=fit, start=opt_number(start),
        end=opt_number(end), range_unit=range_unit, motion_strength=float(motion_strength),
        backend=backend, iterations=int(iterations), batch_size=batch, raft_weights=raft_weights)


def details_markdown(result: Any) -> str:
    lines = [f"**{result.frames} frames, {result.width}×{result.height} @ {result.fps:g} fps**, type `{result.guide_type}`"]
    if result.guide_type == "flow":
        lines.append(f"Backend: `{result.backend}` on `{result.device}` — {result.backend_reason}")
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
    return "\n\n".join(lines)


def run_extraction(request, progress=None, gpu_lock=None, weights_locator=None, cache=None):
    """Build the guide; returns (GuideResult, timeline png path or None). ``cache``: a ``FlowCache``
    (None: the global one)."""
    from ..pipeline.build import RunContext, build_guide

    result = build_guide(request, RunContext(progress=progress, gpu_lock=gpu_lock, weights_locator=weights_locator,
                                             cache=cache))
    chart = None
    if result.timeline is not None:
        chart = Path(request.output).with_suffix(".timeline.png")
        try:
            result.timeline.render_png(chart)
        except Exception:  # the chart is a nicety; the guide is what matters
            logger.warning("Could not render the memory timeline", exc_info=True)
            chart = None
    return result, (str(chart) if chart else None)


def preview_frame(run: Optional[dict], index: Any) -> Optional[np.ndarray]:
    """Side by side: the fitted source frame | the guide frame ``index``."""
    from ..preprocessors.fit import FrameFitter
    from ..preprocessors.video_io import iter_planned_frames, probe_video

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


def tab_cache(plugin: Any = None):
    """The flow cache the tab uses: under the host's output folder when hosted, else the global one."""
    from ..preprocessors.flow_cache import FlowCache

    return FlowCache(host_bridge.host_cache_dir(plugin))


def cache_stats_text(plugin: Any = None) -> str:
    try:
        return f"Flow cache: {tab_cache(plugin).stats()}"
    except Exception as exc:
        return f"Flow cache unavailable: {exc}"


def cache_action(action: str, plugin: Any = None) -> str:
    cache = tab_cache(plugin)
    removed, freed = cache.prune() if action == "prune" else cache.clear()
    return (f"{'Pruned' if action == 'prune' else 'Cleared'} {removed} items, freed {freed / 2**20:.1f} MiB."
            f"\n\n{cache_stats_text(plugin)}")


def sample_video_path() -> str:
    from ..preprocessors.sample_video import write_sample_video

    path = output_dir() / "sample_structure_v2.mp4"  # v2: 130 frames, camera pan + zoom, moving objects
    if not path.is_file():
        write_sample_video(path, width=640, height=360)
    return str(path)


# Gradio construction ---------------------------------------------------------------------------------

@dataclass
class TabHandles:
    """The components of one built tab (tests and the standalone app look them up here)."""

    components: dict[str, Any] = field(default_factory=dict)
    hosted: bool = False
    api_session: Any = None

    def __getitem__(self, name: str) -> Any:
        return self.components[name]


def _gr_error(exc: BaseException):
    import gradio as gr

    return gr.Error(str(exc))


def build_tab(plugin: Any, api_session: Any = None) -> TabHandles:
    """Create the tab's components and events in the current Blocks context."""
    import gradio as gr

    host_components = dict(getattr(plugin, "host_components", lambda: {})() or {})
    state_component = host_components.get("state")
    hosted = host_components.get("video_guide") is not None
    handles = TabHandles(hosted=hosted, api_session=api_session)
    c = handles.components

    gr.Markdown("### Structure Video — turn any video into a VACE control video "
                "(optical flow, canny or raw), fitted to your generation's size, length and fps.")
    with gr.Row():
        with gr.Column(scale=1):
            c["source"] = gr.File(label="Structure video", file_count="single", type="filepath",
                                  elem_id=f"{ELEM}_source")
            c["sample"] = gr.Button("Use the sample video", size="sm", elem_id=f"{ELEM}_sample")
            c["info"] = gr.Markdown("No structure video yet: upload one or use the sample.",
                                    elem_id=f"{ELEM}_info")
            c["poster"] = gr.Image(label="First frame", interactive=False, height=200, elem_id=f"{ELEM}_poster")
        with gr.Column(scale=2):
            with gr.Row():
                c["resolution"] = gr.Textbox(value=host_bridge.DEFAULT_RESOLUTION, label="Resolution (WxH)", elem_id=f"{ELEM}_resolution",
                                             info="Guide size; snapped down to multiples of 16 like Wan2GP.")
                c["frames"] = gr.Number(value=host_bridge.DEFAULT_FRAMES, precision=0, label="Frames", elem_id=f"{ELEM}_frames",
                                        info="Number of guide frames (the generation's video length).")
                c["fps"] = gr.Number(value=host_bridge.DEFAULT_FPS, label="FPS", elem_id=f"{ELEM}_fps", info="Guide frame rate.")
            if hosted:
                c["from_host"] = gr.Button("Take resolution / length / fps from the Video Generator", size="sm")
            with gr.Row():
                c["guide_type"] = gr.Radio(GUIDE_TYPES, value="flow", label="Type",
                                           info="What the guide shows: motion, edges or the frames themselves.")
                c["treatment"] = gr.Radio(TREATMENTS, value="adjust", label="Treatment",
                                          info="Adjust stretches/squeezes time; clip keeps real speed (loops when short).")
            with gr.Row():
                c["fit"] = gr.Radio(FITS, value="crop", label="Fit",
                                    info="How the source's aspect meets the target's (crop keeps motion undistorted).")
                c["motion_strength"] = gr.Slider(0.1, 4.0, value=1.0, step=0.05, label="Motion strength",
                                                 info="Above 1: stronger flow guidance; below 1: gentler.")
            with gr.Row():
                c["start"] = gr.Number(value=0, label="Range start", info="0 = from the beginning.")
                c["end"] = gr.Number(value=0, label="Range end", info="Exclusive; 0 = to the end.")
                c["range_unit"] = gr.Radio(["frames", "seconds"], value="frames", label="Range unit",
                                           info="Unit of start / end.")
            with gr.Row():
                c["backend"] = gr.Radio(BACKENDS, value="auto", label="Flow backend", elem_id=f"{ELEM}_backend",
                                        info="RAFT is accurate (GPU); DIS runs anywhere without weights.")
                c["iterations"] = gr.Slider(1, 32, value=20, step=1, label="RAFT iterations",
                                            info="More refinement = better flow, slower.")
                c["batch_size"] = gr.Number(value=0, precision=0, label="Batch size",
                                            info="Frame pairs per RAFT batch; 0 = fitted to free GPU memory.")
            if hosted:
                with gr.Row():
                    c["weights_info"] = gr.Markdown(_weights_text(plugin), elem_id=f"{ELEM}_weights")
                    c["download_weights"] = gr.Button("Download RAFT weights (Wan2GP's ckpts/flow)", size="sm",
                                                      visible=host_bridge.host_weights_path(plugin) is None
                                                      and host_bridge.can_download_weights(plugin))
            with gr.Row():
                c["extract"] = gr.Button("Extract", variant="primary", elem_id=f"{ELEM}_extract")
                c["cancel"] = gr.Button("Cancel", variant="stop", elem_id=f"{ELEM}_cancel")
    with gr.Row():
        with gr.Column():
            c["guide"] = gr.Video(label="Guide video", interactive=False, elem_id=f"{ELEM}_guide")
            c["details"] = gr.Markdown("", elem_id=f"{ELEM}_details")
        with gr.Column():
            c["preview"] = gr.Image(label="Preview: fitted source | guide", interactive=False,
                                    elem_id=f"{ELEM}_preview")
            c["preview_frame"] = gr.Slider(0, 1, value=0, step=1, label="Preview frame", visible=False)
    c["timeline"] = gr.Image(label="Memory timeline of the run", interactive=False, type="filepath",
                             elem_id=f"{ELEM}_timeline")
    c["run"] = gr.State(None)
    if hosted:
        with gr.Row():
            c["send"] = gr.Button("Send to Video Generator", variant="primary", elem_id=f"{ELEM}_send")
        c["send_status"] = gr.Markdown("")
        if api_session is not None:
            with gr.Accordion("Generate with VACE", open=False):
                c["prompt"] = gr.Textbox(label="Prompt", lines=2, info="What to generate along the guide.")
                with gr.Row():
                    c["generate"] = gr.Button("Generate with VACE", variant="primary", elem_id=f"{ELEM}_generate")
                    c["abort"] = gr.Button("Abort", variant="stop")
                c["gen_status"] = gr.Markdown("")
                c["gen_video"] = gr.Video(label="Generated video", interactive=False)
    with gr.Accordion("Flow cache", open=False):
        c["cache_info"] = gr.Markdown(cache_stats_text(plugin), elem_id=f"{ELEM}_cache")
        with gr.Row():
            c["cache_refresh"] = gr.Button("Refresh", size="sm")
            c["cache_prune"] = gr.Button("Prune to the size limit", size="sm")
            c["cache_clear"] = gr.Button("Clear", size="sm", variant="stop")

    _wire_events(plugin, handles, host_components, state_component)
    return handles


def _weights_text(plugin: Any) -> str:
    found = host_bridge.host_weights_path(plugin)
    if found:
        return f"RAFT weights: `{found}`"
    return ("RAFT weights `ckpts/flow/raft-things.pth` not found: *auto* uses DIS (CPU). "
            "Download them to use RAFT.")


def _wire_events(plugin: Any, handles: TabHandles, host: dict, state_component: Any) -> None:
    import gradio as gr

    c = handles.components

    def on_upload(file_value):
        path = upload_path(file_value)
        if not path:
            return "No structure video yet: upload one or use the sample.", None
        try:
            return describe_video(check_upload_allowed(path))
        except StructureVideoError as exc:
            raise gr.Error(str(exc)) from exc

    c["source"].change(on_upload, inputs=[c["source"]], outputs=[c["info"], c["poster"]])
    c["sample"].click(sample_video_path, outputs=[c["source"]])

    def extract(file_value, resolution, frames, fps, guide_type, treatment, fit, start, end, range_unit,
                motion_strength, backend, iterations, batch_size, state, progress=gr.Progress(),
                request: gr.Request = None):
        path = upload_path(file_value)
        if not path:
            raise gr.Error("Upload a structure video first (or click 'Use the sample video').")
        try:
            path = check_upload_allowed(path)
        except StructureVideoError as exc:
            raise gr.Error(str(exc)) from exc
        cancel = cancel_event_for(request, fresh=True)
        stem = Path(path).stem[:40] or "guide"
        out = output_dir() / f"{stem}_{guide_type}_{time.strftime('%H%M%S')}_{uuid.uuid4().hex[:6]}.mp4"

        def on_update(update):
            try:
                progress(update.fraction, desc=f"{update.stage} {update.done}/{update.total}"
                         + (f" — {update.message}" if update.message else ""))
            except Exception:
                pass

        from ..memory import host_gpu_lock
        from ..progress import Progress

        try:
            req = make_request(path, out, resolution, frames, fps, guide_type, treatment, fit, start, end,
                               range_unit, motion_strength, backend, iterations, batch_size)
            result, chart = run_extraction(req, progress=Progress(on_update, cancel),
                                           gpu_lock=lambda: host_gpu_lock(state),
                                           weights_locator=host_bridge.weights_locator(plugin),
                                           cache=tab_cache(plugin))
            indices = _plan_indices(req)
        except StructureVideoError as exc:
            raise gr.Error(str(exc)) from exc
        run = {"guide": str(result.output), "source": path, "fit": fit, "indices": indices,
               "frames": result.frames, "resolution": f"{result.width}x{result.height}", "fps": result.fps}
        try:
            preview = preview_frame(run, 0)
        except StructureVideoError:
            preview = None
        return (str(result.output), details_markdown(result), preview,
                gr.update(minimum=0, maximum=max(1, result.frames - 1), value=0, visible=True),
                chart, run, cache_stats_text(plugin))

    extract_inputs = [c[k] for k in ("source", "resolution", "frames", "fps", "guide_type", "treatment", "fit",
                                     "start", "end", "range_unit", "motion_strength", "backend", "iterations",
                                     "batch_size")]
    state_input = state_component if state_component is not None else gr.State(None)
    extract_inputs.append(state_input)
    c["extract"].click(extract, inputs=extract_inputs,
                       outputs=[c["guide"], c["details"], c["preview"], c["preview_frame"], c["timeline"],
                                c["run"], c["cache_info"]],
                       api_name="extract", concurrency_limit=1)

    def cancel(request: gr.Request = None):
        cancel_event_for(request).set()
        gr.Info("Cancelling: the extraction stops after the current batch.")

    c["cancel"].click(cancel, inputs=None, outputs=None, api_name="cancel", queue=False)

    def on_preview(run, index):
        try:
            return preview_frame(run, index)
        except StructureVideoError as exc:
            raise gr.Error(str(exc)) from exc

    c["preview_frame"].release(on_preview, inputs=[c["run"], c["preview_frame"]], outputs=[c["preview"]])
    c["cache_refresh"].click(lambda: cache_stats_text(plugin), outputs=[c["cache_info"]])
    c["cache_prune"].click(lambda: cache_action("prune", plugin), outputs=[c["cache_info"]])
    c["cache_clear"].click(lambda: cache_action("clear", plugin), outputs=[c["cache_info"]])

    if not handles.hosted:
        return

    # hosted: prefill from the generator, weights download, send, generate -------------------------
    def prefill(state):
        target = host_bridge.target_from_host(state, plugin)
        return target.resolution, target.frames, target.fps

    if state_component is not None:
        c["from_host"].click(prefill, inputs=[state_component],
                             outputs=[c["resolution"], c["frames"], c["fps"]])
        plugin.on_tab_outputs = [c["resolution"], c["frames"], c["fps"]]

    def download():
        try:
            found = host_bridge.download_host_weights(plugin)
        except Exception as exc:
            raise gr.Error(f"Downloading the RAFT weights failed: {exc}") from exc
        return _weights_text(plugin), gr.update(visible=found is None)

    if "download_weights" in c:
        c["download_weights"].click(download, outputs=[c["weights_info"], c["download_weights"]])

    send_targets = [k for k in ("video_guide", "video_prompt_type", "video_length", "resolution") if host.get(k) is not None]
    main_tabs = host.get("main_tabs")

    def send(run, *current):
        if not run or not run.get("guide"):
            raise gr.Error("Extract a guide first.")
        current_prompt_type = current[0] if current else ""
        values = host_bridge.send_to_generator_values(run["guide"], current_prompt_type, run["frames"],
                                                      run["resolution"])
        outputs = [values[k] for k in send_targets]
        if main_tabs is not None:
            outputs.append(gr.Tabs(selected="media_gen"))
        outputs.append(f"Sent to the Video Generator: control video `{Path(run['guide']).name}`, "
                       f"process `{values['video_prompt_type']}`, {run['frames']} frames, {run['resolution']}. "
                       "Choose a VACE model there if needed.")
        return tuple(outputs)

    send_inputs = [c["run"]] + ([host["video_prompt_type"]] if host.get("video_prompt_type") is not None else [])
    send_outputs = [host[k] for k in send_targets] + ([main_tabs] if main_tabs is not None else []) + [c["send_status"]]
    c["send"].click(send, inputs=send_inputs, outputs=send_outputs)

    if handles.api_session is None:
        return
    jobs: dict[str, Any] = {}

    def generate(run, prompt, state, progress=gr.Progress(), request: gr.Request = None):
        if not run or not run.get("guide"):
            raise gr.Error("Extract a guide first.")
        model_type = host_bridge.pick_vace_model_type(state, plugin)
        base = host_bridge.current_model_settings(state, model_type)
        settings = host_bridge.vace_task_settings(run["guide"], run["frames"], run["resolution"], model_type,
                                                  prompt=prompt or "", base=base)
        callbacks = _ProgressCallbacks(progress)
        try:
            job = handles.api_session.submit_task(settings, callbacks)
        except Exception as exc:
            raise gr.Error(f"Wan2GP refused the task: {exc}") from exc
        jobs[_session_key(request)] = job
        try:
            result = job.result()
        finally:
            jobs.pop(_session_key(request), None)
        video, text = host_bridge.result_summary(result)
        return video, text

    def abort(request: gr.Request = None):
        job = jobs.get(_session_key(request))
        if job is not None:
            job.cancel()
            return "Aborting…"
        return "Nothing to abort."

    c["generate"].click(generate, inputs=[c["run"], c["prompt"], state_input],
                        outputs=[c["gen_video"], c["gen_status"]])
    c["abort"].click(abort, outputs=[c["gen_status"]], queue=False)


def _plan_indices(request) -> list[int]:
    try:
        from ..pipeline.build import prepare

        return [int(i) for i in prepare(request).plan.indices]
    except Exception:
        return []


class _ProgressCallbacks:
    """Duck-typed callbacks of Wan2GP's API session, forwarded to ``gr.Progress``."""

    def __init__(self, progress: Callable[..., Any]) -> None:
        self._progress = progress
        self.last_status = ""

    def on_status(self, text: Any) -> None:
        self.last_status = str(text)

    def on_progress(self, update: Any) -> None:
        value = getattr(update, "progress", None)
        if value is None and isinstance(update, dict):
            value = update.get("progress")
        try:
            fraction = max(0.0, min(1.0, float(value or 0) / 100.0))
            self._progress(fraction, desc=self.last_status or "Generating")
        except Exception:
            pass
