"""The Structure Video tab: its layout, and the wiring of each panel's handlers to the components.

The same function serves Wan2GP (``hosted``: the plugin received the host's form components, maybe an
API session) and the standalone app (no host form: the generator panel is absent). The behaviour lives
in the panels (``extract_panel``, ``generator_panel``, ``cache_panel``), as plain functions that take
their dependencies (:class:`~.deps.TabDeps`) explicitly.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from ..options import (AUTO_BATCH_SIZE, BACKENDS, CUT_MODES, DEFAULTS, FIT_MODES, GUIDE_TYPES, RANGE_UNITS,
                       TREATMENTS)
from . import cache_panel, export_panel, extract_panel, generator_panel, host_bridge, weights_field
from .deps import TabDeps, bind, bind_with_session
from .outputs import output_folder

logger = logging.getLogger(__name__)

#: The page's label of each choice (the choices themselves are ``options``'). Short labels: the middle
#: column (with Extract and the status line) fits a 1280×720 screen.
LABELS = {"flow": "Optical flow", "canny": "Canny edges", "raw": "Raw frames", "gray": "Gray levels", "depth": "Depth (near = bright)",
          "contour": "Edges (Wan2GP model)", "scribble": "Shapes (Wan2GP model)", "pose": "Pose (DWPose)",
          "adjust": "Adjust: spread over the whole video / range", "clip": "Clip: keep the source timing",
          "crop": "Crop to the target aspect", "pad": "Pad (letterbox)", "stretch": "Stretch",
          "auto": "Auto (RAFT if found, else DIS)", "raft": "RAFT (GPU, best)", "dis": "DIS (OpenCV, CPU, fast)"}


def labelled(values: tuple[str, ...]) -> list[tuple[str, str]]:
    """(label, value) pairs for a radio or drop-down, in the vocabulary's order."""
    return [(LABELS[value], value) for value in values]


GUIDE_TYPE_CHOICES = labelled(GUIDE_TYPES)
TREATMENT_CHOICES = labelled(TREATMENTS)
FIT_CHOICES = labelled(FIT_MODES)
BACKEND_CHOICES = labelled(BACKENDS)
ELEM = "structure_video"  # prefix of the elem_ids the browser tests use
#: The components Extract reads: the source, then the controls in ``extract_panel.extract``'s order.
EXTRACT_INPUTS = ("source", *extract_panel.EXTRACT_CONTROLS)
TARGET_FIELDS = ("resolution", "frames", "fps")


@dataclass
class TabHandles:
    """The components of one built tab and its dependencies (tests and the apps look them up here)."""

    components: dict[str, Any] = field(default_factory=dict)
    hosted: bool = False
    api_session: Any = None
    deps: Optional[TabDeps] = None

    def __getitem__(self, name: str) -> Any:
        return self.components[name]

    @property
    def target_outputs(self) -> list:
        """The target fields, in the order of ``generator_panel.prefill_on_tab_select``."""
        return [self.components[name] for name in TARGET_FIELDS]


def build_tab(plugin: Any, api_session: Any = None, hooks: Any = None) -> TabHandles:
    """Create the tab's components and events in the current Blocks context."""
    host = dict(plugin.host_components() if hasattr(plugin, "host_components") else {})
    hosted = host.get("state") is not None and host.get("refresh_form_trigger") is not None
    from gradio.context import Context

    deps = TabDeps(plugin=plugin, outputs=output_folder(plugin), hooks=hooks, state_component=host.get("state"),
                   blocks=Context.root_block)
    deps.outputs.prune()  # cleaned at start
    handles = TabHandles(hosted=hosted, api_session=api_session if hosted else None, deps=deps)
    _layout(handles, deps)
    _wire_extract(handles, deps)
    _wire_cache(handles, deps)
    if hosted:
        _wire_generator(handles, deps, host, plugin)
    return handles


#: Heights (px) that keep the inputs, Extract and the result on one laptop screen (1400×900), whatever
#: the guide's aspect: a portrait guide is letterboxed inside the box instead of growing the page.
RESULT_HEIGHT = 300
PREVIEW_HEIGHT = 220


def _layout(handles: TabHandles, deps: TabDeps) -> None:
    """Three columns: the source | the settings, Extract and the run's status | the result. Rarely
    changed settings sit in a closed accordion; the memory chart and the cache come below."""
    import gradio as gr

    c, hosted = handles.components, handles.hosted
    with gr.Row(equal_height=False):
        with gr.Column(scale=4, min_width=300):
            # The introduction heads the source column (which has room to spare), not the whole page: the
            # middle column (Extract, the status line) starts at the top of the screen.
            gr.Markdown("**Structure Video** — turn any video into a VACE control video "
                        "(optical flow, depth, pose, edges, shapes, canny, gray or raw), "
                        "fitted to your generation's size, length and fps.")
            c["source"] = gr.File(label="Structure video", file_count="single", type="filepath", height=120,
                                  elem_id=f"{ELEM}_source")
            c["sample"] = gr.Button("Use the sample video", size="sm", elem_id=f"{ELEM}_sample")
            c["info"] = gr.Markdown(extract_panel.NO_VIDEO, elem_id=f"{ELEM}_info")
            c["poster"] = gr.Image(label="First frame", interactive=False, height=150, elem_id=f"{ELEM}_poster")
            with gr.Row():
                c["resolution"] = gr.Textbox(value=host_bridge.DEFAULT_RESOLUTION, label="Resolution (WxH)",
                                             elem_id=f"{ELEM}_resolution", min_width=110)
                c["frames"] = gr.Number(value=host_bridge.DEFAULT_FRAMES, precision=0, label="Frames",
                                        elem_id=f"{ELEM}_frames", min_width=70)
                c["fps"] = gr.Number(value=host_bridge.DEFAULT_FPS, label="FPS", elem_id=f"{ELEM}_fps", min_width=70)
            if hosted:
                c["from_host"] = gr.Button("Take resolution / length / fps from the Video Generator", size="sm",
                                           elem_id=f"{ELEM}_from_host")
        with gr.Column(scale=4, min_width=300):
            c["guide_type"] = gr.Radio(GUIDE_TYPE_CHOICES, value=DEFAULTS["guide_type"], label="Type",
                                       elem_id=f"{ELEM}_type")
            c["depth_status"] = gr.Markdown("", visible=False, elem_id=f"{ELEM}_depth_status")
            # A drop-down (one line): with Extract and the status line on a 1280×720 screen.
            c["fit"] = gr.Dropdown(FIT_CHOICES, value=DEFAULTS["fit"], label="Fit (source aspect → target aspect)",
                                   elem_id=f"{ELEM}_fit")
            c["backend"] = gr.Radio(BACKEND_CHOICES, value=DEFAULTS["backend"], label="Flow backend",
                                    elem_id=f"{ELEM}_backend")
            # Extract and the status line come before the rarely changed settings: opening those never
            # pushes them below the fold.
            with gr.Row():
                c["extract"] = gr.Button("Extract", variant="primary", scale=3, elem_id=f"{ELEM}_extract")
                c["cancel"] = gr.Button("Cancel", variant="secondary", scale=1, interactive=False,
                                        elem_id=f"{ELEM}_cancel")
            # The run's one progress display and its outcome (done / cancelled).
            c["status"] = gr.Markdown("", elem_id=f"{ELEM}_status", min_height=48)
            with gr.Accordion("More settings: time, range, motion, RAFT, depth", open=False, elem_id=f"{ELEM}_more"):
                c["treatment"] = gr.Radio(TREATMENT_CHOICES, value=DEFAULTS["treatment"], label="Treatment",
                                          info="Adjust stretches/squeezes time; clip keeps real speed (loops when short).")
                with gr.Row():
                    c["start"] = gr.Number(value=0, label="Range start", info="0 = from the beginning.")
                    c["end"] = gr.Number(value=0, label="Range end", info="Exclusive; 0 = to the end.")
                    c["range_unit"] = gr.Radio(list(RANGE_UNITS), value=DEFAULTS["range_unit"],
                                                  label="Range unit")
                c["motion_strength"] = gr.Slider(0.1, 4.0, value=DEFAULTS["motion_strength"], step=0.05,
                                                 label="Motion strength",
                                                 info="Above 1: stronger flow guidance; below 1: gentler.")
                with gr.Row():
                    c["iterations"] = gr.Slider(1, 32, value=DEFAULTS["iterations"], step=1, label="RAFT iterations",
                                                info="More refinement = better flow, slower.")
                    c["batch_size"] = gr.Number(value=AUTO_BATCH_SIZE, precision=0, label="Batch size",
                                                elem_id=f"{ELEM}_batch",
                                                info="Frame pairs per RAFT batch; 0 = automatic (fitted to free "
                                                     "GPU memory).")
                with gr.Row():
                    c["depth_contrast"] = gr.Slider(0.25, 4.0, value=DEFAULTS["depth_contrast"], step=0.05,
                                                    label="Depth contrast",
                                                    elem_id=f"{ELEM}_depth_contrast",
                                                    info="Depth only. 1 = neutral; above 1 darkens the far part.")
                    c["depth_smoothing"] = gr.Number(value=DEFAULTS["depth_smoothing"], precision=0, minimum=0,
                                                     label="Depth smoothing (frames)",
                                                     elem_id=f"{ELEM}_depth_smoothing",
                                                     info="Depth only. 0 = one brightness range for the whole "
                                                          "clip; N = the range follows the scene over N frames.")
                with gr.Row():
                    c["depth_weights_path"] = gr.Textbox(
                        label=weights_field.LABEL, elem_id=f"{ELEM}_depth_weights_path",
                        placeholder="/path/to/depth_anything_v2_vitl.pth, or a transformers model folder",
                        info="Depth only. Empty = Wan2GP's ckpts/depth/, then the Hugging Face cache.")
                    c["depth_weights_file"] = gr.File(label="or upload the .pth", file_count="single",
                                                      type="filepath", file_types=[".pth", ".safetensors"],
                                                      height=90, elem_id=f"{ELEM}_depth_weights_file")
                with gr.Row():
                    c["cuts"] = gr.Radio(list(CUT_MODES), value=DEFAULTS["cuts"], label="Hard cuts",
                                         elem_id=f"{ELEM}_cuts",
                                         info="Auto: find cuts between shots; never drawn as motion, one depth "
                                              "range per shot. Off: one shot.")
                    c["allow_short"] = gr.Checkbox(value=False, label="Accept a damaged (short) video",
                                                   elem_id=f"{ELEM}_allow_short",
                                                   info="Use the frames that decode when a file holds fewer than "
                                                        "it announces (otherwise an error).")
            if hosted:
                with gr.Row():
                    c["weights_info"] = gr.Markdown(generator_panel.weights_text(deps), elem_id=f"{ELEM}_weights")
                    c["download_weights"] = gr.Button(
                        "Download RAFT weights (Wan2GP's ckpts/flow)", size="sm",
                        visible=host_bridge.host_weights_path(deps.plugin) is None
                        and host_bridge.can_download_weights(deps.plugin))
                with gr.Row():
                    c["depth_weights_info"] = gr.Markdown(generator_panel.depth_weights_text(deps),
                                                          elem_id=f"{ELEM}_depth_weights")
                    c["download_depth_weights"] = gr.Button(
                        "Download depth weights (Wan2GP's ckpts/depth)", size="sm",
                        visible=host_bridge.host_depth_weights_path(deps.plugin) is None
                        and host_bridge.can_download_weights(deps.plugin))
                for kind, button in (("pose", "Download pose models (Wan2GP's ckpts/pose)"),
                                     ("contour", "Download contour weights (Wan2GP's ckpts/scribble)")):
                    with gr.Row():
                        c[f"{kind}_weights_info"] = gr.Markdown(generator_panel.model_text(deps, kind),
                                                                elem_id=f"{ELEM}_{kind}_weights")
                        c[f"download_{kind}_weights"] = gr.Button(
                            button, size="sm", visible=host_bridge.host_model_path(deps.plugin, kind) is None
                            and host_bridge.can_download_weights(deps.plugin))
        with gr.Column(scale=5, min_width=340):
            c["guide"] = gr.Video(label="Guide video", interactive=False, height=RESULT_HEIGHT,
                                  elem_id=f"{ELEM}_guide")
            c["preview"] = gr.Image(label="Preview: fitted source | guide", interactive=False, height=PREVIEW_HEIGHT,
                                    elem_id=f"{ELEM}_preview")
            c["preview_frame"] = gr.Slider(0, 1, value=0, step=1, label="Preview frame", visible=False,
                                           elem_id=f"{ELEM}_preview_frame")
    c["details"] = gr.Markdown("", elem_id=f"{ELEM}_details")
    with gr.Accordion("Raw data (flows, depth maps or keypoints)", open=False, elem_id=f"{ELEM}_export_panel"):
        with gr.Row():
            c["export"] = gr.Button("Export raw data (.zip)", size="sm", elem_id=f"{ELEM}_export")
            c["export_file"] = gr.File(label="Raw data", interactive=False, elem_id=f"{ELEM}_export_file")
        c["export_status"] = gr.Markdown(export_panel.NOTHING_YET, elem_id=f"{ELEM}_export_status")
    c["timeline"] = gr.LinePlot(x="t", y="mib", color="series", x_title="time (s)", y_title="MiB",
                                label="Memory during the run", elem_id=f"{ELEM}_timeline")
    if hosted:
        with gr.Row():
            c["send"] = gr.Button("Send to Video Generator", variant="primary", elem_id=f"{ELEM}_send")
        c["send_status"] = gr.Markdown("", elem_id=f"{ELEM}_send_status")
        if handles.api_session is not None:
            with gr.Accordion("Generate with VACE", open=False, elem_id=f"{ELEM}_generate_panel"):
                c["prompt"] = gr.Textbox(label="Prompt", lines=2, info="What to generate along the guide.",
                                         elem_id=f"{ELEM}_prompt")
                with gr.Row():
                    c["generate"] = gr.Button("Generate with VACE", variant="primary", elem_id=f"{ELEM}_generate")
                    c["abort"] = gr.Button("Abort", variant="stop", elem_id=f"{ELEM}_abort")
                c["gen_status"] = gr.Markdown("", elem_id=f"{ELEM}_gen_status")
                c["gen_video"] = gr.Video(label="Generated video", interactive=False, elem_id=f"{ELEM}_gen_video")
    with gr.Accordion("Flow cache", open=False, elem_id=f"{ELEM}_cache_panel"):
        c["cache_info"] = gr.Markdown(cache_panel.stats_text(deps), elem_id=f"{ELEM}_cache")
        with gr.Row():
            c["cache_refresh"] = gr.Button("Refresh", size="sm")
            c["cache_prune"] = gr.Button("Prune to the size limit", size="sm")
            c["cache_clear"] = gr.Button("Clear…", size="sm", elem_id=f"{ELEM}_cache_clear")
        with gr.Row(visible=False) as confirm_row:
            c["cache_clear_yes"] = gr.Button("Yes, delete the whole cache", size="sm", variant="stop",
                                             elem_id=f"{ELEM}_cache_clear_yes")
            c["cache_clear_no"] = gr.Button("Keep it", size="sm", elem_id=f"{ELEM}_cache_clear_no")
        c["cache_confirm"] = confirm_row


def _private() -> dict:
    """Event options that keep an internal event out of the public API (Gradio 5: ``show_api``;
    Gradio 6: ``api_visibility``)."""
    from .compat import gradio_major

    return {"api_visibility": "private"} if gradio_major() >= 6 else {"show_api": False}


def _wire_extract(handles: TabHandles, deps: TabDeps) -> None:
    c = handles.components
    private = _private()
    c["source"].change(bind(extract_panel.on_upload, deps), inputs=[c["source"]], outputs=[c["info"], c["poster"]],
                       **private)
    c["sample"].click(bind(extract_panel.use_sample, deps), outputs=[c["source"]], **private)
    results = [c["guide"], c["details"], c["preview"], c["preview_frame"], c["timeline"]]
    # One progress display: the status line under Extract (show_progress_on); the other outputs just change.
    run = c["extract"].click(bind(extract_panel.begin, deps), outputs=[*results, c["status"], c["cancel"]],
                             queue=False, show_progress="hidden", show_progress_on=[c["status"]], **private
                             ).then(bind(extract_panel.extract, deps), inputs=[c[k] for k in EXTRACT_INPUTS],
                                    outputs=[*results, c["cache_info"], c["status"]],
                                    show_progress_on=[c["status"]], api_name="extract", concurrency_limit=1)
    # Cancel goes back to disabled whatever the outcome. Gradio 5 runs ``.then`` after an error too;
    # Gradio 6's page runs only ``.failure`` listeners then, so both are wired where ``.failure`` exists.
    finish = dict(fn=bind(extract_panel.finish, deps), outputs=[c["cancel"], c["status"]], queue=False, show_progress="hidden",
                  **private)
    run.then(**finish)
    if hasattr(run, "failure"):
        run.failure(**finish)
    c["cancel"].click(bind(extract_panel.cancel, deps), inputs=None, outputs=None, api_name="cancel", queue=False)
    # The depth weights' status as soon as Depth is chosen, and again when the weights field changes;
    # the Flow backend choice only for flow.
    weights = [c["guide_type"], c["depth_weights_path"], c["depth_weights_file"]]
    for event in (c["guide_type"].change, c["depth_weights_path"].blur, c["depth_weights_file"].change):
        event(bind(weights_field.on_type, deps), inputs=weights, outputs=[c["depth_status"], c["backend"]],
              show_progress="hidden", **private)
    # The slider's number box: typing a frame and pressing Enter (or leaving the box) is an input event;
    # dragging ends with a release. Only the last of a burst of inputs is rendered.
    for event in (c["preview_frame"].input, c["preview_frame"].release):
        event(bind(extract_panel.on_preview, deps), inputs=[c["preview_frame"]], outputs=[c["preview"]],
              trigger_mode="always_last", show_progress="hidden", **private)
    # The raw data of the last run (its request is kept with it), served from the cache Extract filled.
    c["export"].click(bind(export_panel.export_raw, deps), outputs=[c["export_file"], c["export_status"]],
                      **private)


def _wire_cache(handles: TabHandles, deps: TabDeps) -> None:
    c = handles.components
    private = _private()
    c["cache_refresh"].click(bind(cache_panel.stats_text, deps), outputs=[c["cache_info"]], **private)
    c["cache_prune"].click(bind(cache_panel.prune, deps), outputs=[c["cache_info"]], **private)
    confirm = [c["cache_confirm"], c["cache_info"]]
    c["cache_clear"].click(bind(cache_panel.ask_clear, deps), outputs=confirm, **private)
    c["cache_clear_yes"].click(bind(cache_panel.confirm_clear, deps), outputs=confirm, **private)
    c["cache_clear_no"].click(bind(cache_panel.keep_cache, deps), outputs=confirm, **private)


def _wire_generator(handles: TabHandles, deps: TabDeps, host: dict, plugin: Any) -> None:
    c = handles.components
    private = _private()
    target = handles.target_outputs
    c["from_host"].click(bind(generator_panel.take_target, deps), outputs=target, **private)
    for component in target:
        component.input(bind(generator_panel.mark_edited, deps), outputs=None, queue=False, **private)
    if "download_weights" in c:
        c["download_weights"].click(bind(generator_panel.download_weights, deps),
                                    outputs=[c["weights_info"], c["download_weights"]], **private)
    for kind, handler in (("pose", generator_panel.download_pose_models),
                          ("contour", generator_panel.download_contour_weights)):
        if f"download_{kind}_weights" in c:
            c[f"download_{kind}_weights"].click(bind(handler, deps), outputs=[c[f"{kind}_weights_info"],
                                                                              c[f"download_{kind}_weights"]], **private)
    if "download_depth_weights" in c:
        c["download_depth_weights"].click(bind(generator_panel.download_depth_weights, deps),
                                          outputs=[c["depth_weights_info"], c["download_depth_weights"]], **private)
    model_target = host.get("model_choice_target")
    if model_target is None:  # a host without model switching: the switch request goes nowhere
        import gradio as gr

        model_target = c["model_target_sink"] = gr.Textbox(visible=False)
    send_outputs = [host["refresh_form_trigger"], model_target, c["send_status"]]
    event = c["send"].click(bind(generator_panel.send, deps), outputs=send_outputs, show_progress="hidden",
                            **private)
    if host.get("main_tabs") is not None:
        event.then(bind(generator_panel.goto_generator, deps), outputs=[host["main_tabs"]], show_progress="hidden",
                   **private)
    if handles.api_session is None:
        return
    c["generate"].click(bind_with_session(generator_panel.generate, deps, handles.api_session),
                        inputs=[c["prompt"]], outputs=[c["gen_video"], c["gen_status"]], **private)
    c["abort"].click(bind(generator_panel.abort, deps), outputs=[c["gen_status"]], queue=False, **private)
