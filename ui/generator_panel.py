"""The generator panel (hosted only): target prefill, Send to Video Generator, Generate with VACE,
the RAFT and depth weights downloads. Handlers take the tab's :class:`~.deps.TabDeps` first (and the host's
API session second when they submit through it); ``ui/tab.py`` binds them to the components.
"""
# No "from __future__ import annotations": Gradio reads the handlers' hints (gr.Request) at wiring time.

import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional

import gradio as gr

from ..options import DEFAULT_DEPTH_VARIANT
from . import host_bridge
from .deps import TabDeps, session_key
from .failures import ends_cleanly
from .wording import ui_words

logger = logging.getLogger(__name__)


def weights_text(deps: TabDeps) -> str:
    found = host_bridge.host_weights_path(deps.plugin)
    if found:
        return f"RAFT weights: `{found}`"
    return ("RAFT weights `ckpts/flow/raft-things.pth` not found: *auto* uses DIS (CPU). "
            "Download them to use RAFT.")


def depth_weights_text(deps: TabDeps) -> str:
    found = host_bridge.host_depth_weights_path(deps.plugin)
    if found:
        return f"Depth weights: `{found}`"
    variant = host_bridge.host_depth_variant(deps.plugin) or DEFAULT_DEPTH_VARIANT
    return (f"Depth weights `ckpts/depth/depth_anything_v2_{variant}.pth` not found: the *depth* type needs them. "
            "Download them to use depth.")


#: The tab's words for the host's other models.
MODEL_WORDS = {"pose": ("DWPose models", "ckpts/pose/", "the *pose* type needs them"),
               "contour": ("Contour weights", "ckpts/scribble/netG_A_latest.pth",
                           "the *edges (Wan2GP model)* and *shapes* types need them")}


def model_text(deps: TabDeps, kind: str) -> str:
    """The status line of the host's ``pose`` or ``contour`` model files."""
    words, where, needs = MODEL_WORDS[kind]
    found = host_bridge.host_model_path(deps.plugin, kind)
    if found:
        return f"{words}: `{found}`"
    return f"{words} `{where}` not found: {needs} (the button downloads them)."


def download_model(deps: TabDeps, kind: str):
    """The "Download" button of the host's ``pose`` or ``contour`` model files."""
    words = MODEL_WORDS[kind][0]
    try:
        found = host_bridge.download_host_model(deps.plugin, kind)
    except Exception as exc:
        raise gr.Error(ui_words(f"Downloading the {words} failed: {exc}")) from exc
    return model_text(deps, kind), gr.update(visible=found is None)


@ends_cleanly("Downloading the pose models")
def download_pose_models(deps: TabDeps):
    return download_model(deps, "pose")


@ends_cleanly("Downloading the contour weights")
def download_contour_weights(deps: TabDeps):
    return download_model(deps, "contour")


@ends_cleanly("Taking the target from the Video Generator")
def take_target(deps: TabDeps, request: gr.Request = gr.Request()):
    """"Take from the Video Generator": the target from the generator's current model settings; from
    now on tab opens prefill again (until the user types a target)."""
    state = deps.host_state(request)
    host_bridge.mark_target_edited(state, False)
    target = host_bridge.target_from_host(state, deps.plugin)
    return target.resolution, target.frames, target.fps


def mark_edited(deps: TabDeps, request: gr.Request = gr.Request()) -> None:
    """The user typed a target: tab opens no longer overwrite it."""
    host_bridge.mark_target_edited(deps.host_state(request), True)


def prefill_on_tab_select(plugin: Any, state: Any):
    """What the host's tab-select event writes into the target (resolution, frames, fps): the
    generator's values, unless the user typed a target (then nothing changes)."""
    if host_bridge.target_edited(state):
        return gr.update(), gr.update(), gr.update()
    target = host_bridge.target_from_host(state, plugin)
    return target.resolution, target.frames, target.fps


@ends_cleanly("Downloading the RAFT weights")
def download_weights(deps: TabDeps):
    try:
        found = host_bridge.download_host_weights(deps.plugin)
    except Exception as exc:
        raise gr.Error(ui_words(f"Downloading the RAFT weights failed: {exc}")) from exc
    return weights_text(deps), gr.update(visible=found is None)


@ends_cleanly("Downloading the depth weights")
def download_depth_weights(deps: TabDeps):
    try:
        found = host_bridge.download_host_depth_weights(deps.plugin)
    except Exception as exc:
        raise gr.Error(ui_words(f"Downloading the depth weights failed: {exc}")) from exc
    return depth_weights_text(deps), gr.update(visible=found is None)


@ends_cleanly("Sending to the Video Generator")
def send(deps: TabDeps, request: gr.Request = gr.Request()):
    """Send to Video Generator: our guide into a VACE model's settings. Outputs: the host's
    ``refresh_form_trigger`` (its ``fill_inputs`` rebuilds the form from the settings), the host's
    ``model_choice_target`` (switches the generator to the VACE model when it was on another one),
    the status line. The tab switch follows (``goto_media_tab``)."""
    run, state = deps.run_for(request), deps.host_state(request)
    if not run or not run.get("guide"):
        raise gr.Error("Extract a guide first.")
    try:
        outcome = host_bridge.send_guide_to_settings(state, deps.plugin, run["guide"], run["frames"],
                                                     run["resolution"])
    except ValueError as exc:
        raise gr.Error(ui_words(str(exc))) from exc
    settings = outcome.settings
    text = (f"Sent to the Video Generator: control video `{Path(run['guide']).name}` in {outcome.model_words()}"
            + f". Process `{settings.get('video_prompt_type')}`, {settings.get('video_length')} frames, "
            f"{settings.get('resolution')}, fps from the control video.")
    if outcome.switched:
        return gr.update(), host_bridge.model_choice_value(outcome.model_type), text
    return str(time.time()), gr.update(), text


@ends_cleanly("Switching to the Video Generator")
def goto_generator(deps: TabDeps, request: gr.Request = gr.Request()):
    """Switch to the generator tab through the host's ``goto_media_tab(state)`` (it also keeps the
    host's tab bookkeeping), or directly when the host does not set it on the plugin."""
    goto = getattr(deps.plugin, "goto_media_tab", None)
    if callable(goto):
        return goto(deps.host_state(request))
    return gr.Tabs(selected="media_gen")


class ProgressCallbacks:
    """Duck-typed callbacks of Wan2GP's API session, forwarded to ``gr.Progress``."""

    def __init__(self, progress: Callable[..., Any]) -> None:
        self._progress = progress
        self._fraction = 0.0
        self.last_status = ""

    def on_status(self, text: Any) -> None:
        self.last_status = str(text or "").strip() or self.last_status
        self._report()

    def on_progress(self, update: Any) -> None:
        value = getattr(update, "progress", None)
        if value is None and isinstance(update, dict):
            value = update.get("progress")
        try:
            self._fraction = max(0.0, min(1.0, float(value or 0) / 100.0))
        except (TypeError, ValueError):
            return
        status = str(getattr(update, "status", "") or "")
        self.last_status = status or self.last_status
        self._report()

    def _report(self) -> None:
        try:
            self._progress(self._fraction, desc=self.last_status or "Generating")
        except Exception:
            pass


@ends_cleanly("Generating with VACE")
def generate(deps: TabDeps, api_session: Any, prompt: str, progress: gr.Progress = gr.Progress(),
             request: gr.Request = gr.Request()):
    """Generate with VACE through the host's API session; shows progress, returns (video, status)."""
    run, state = deps.run_for(request), deps.host_state(request)
    if not run or not run.get("guide"):
        raise gr.Error("Extract a guide first.")
    model_type = host_bridge.pick_vace_model_type(state, deps.plugin)
    base = host_bridge.current_model_settings(state, model_type)
    settings = host_bridge.vace_task_settings(run["guide"], run["frames"], run["resolution"], model_type,
                                              prompt=prompt or "", base=base)
    try:
        job = api_session.submit_task(settings, ProgressCallbacks(progress))
    except Exception as exc:
        raise gr.Error(f"Wan2GP refused the task: {exc}") from exc
    key = session_key(request)
    deps.jobs[key] = job
    try:
        result = job.result()
    finally:
        deps.jobs.pop(key, None)
    return host_bridge.result_summary(result)


def abort(deps: TabDeps, request: gr.Request = gr.Request()) -> str:
    job = deps.jobs.get(session_key(request))
    if job is not None:
        job.cancel()
        return "Aborting…"
    return "Nothing to abort."
