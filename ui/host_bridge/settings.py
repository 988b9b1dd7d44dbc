"""What the tab exchanges with Wan2GP's generator, without gradio: reading the current model's
settings (the target prefill), writing our guide into a VACE model's settings ("Send to Video
Generator": the host's form follows the settings), and the task "Generate with VACE" submits.

Everything is defensive: the host's ``state`` and globals are foreign data, any of them may be
missing; then the functions fall back to the standalone defaults.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ...options import DEFAULT_RESOLUTION, DEFAULTS
from ._host import host_callable, host_global
from .vace_choice import VaceChoice, choose_vace_model, is_vace_model_type

logger = logging.getLogger(__name__)

DEFAULT_FRAMES: int = DEFAULTS["frames"]
DEFAULT_FPS: float = DEFAULTS["fps"]
#: The guide-processing letters of Wan2GP's ``video_prompt_type`` (wgp ``all_guide_processes``):
#: they select which preprocessor the host runs on the control video. Our guide is already the
#: control signal, so all of them go and only ``V`` ("use VACE raw format") stays. ``U`` would keep
#: the control frames unchanged in the output and ``L`` would make the host run its own RAFT again.
GUIDE_PROCESS_LETTERS = "OPEDSLCMUGBH"
#: Key in the host's per-session ``state``: the user typed a target in the tab (no prefill then).
TARGET_EDITED_KEY = "structure_video_target_edited"


@dataclass(frozen=True)
class Target:
    """What the generation needs: guide size, frame count, fps."""

    resolution: str = DEFAULT_RESOLUTION
    frames: int = DEFAULT_FRAMES
    fps: float = DEFAULT_FPS


def current_model_type(state: Any) -> Optional[str]:
    """The model type of the form the user is on (``add`` or ``edit``), like wgp's get_state_model_type."""
    if not isinstance(state, Mapping):
        return None
    key = "model_type" if state.get("active_form", "add") == "add" else "edit_model_type"
    value = state.get(key) or state.get("model_type")
    return value if isinstance(value, str) and value else None


def current_model_settings(state: Any, model_type: Optional[str] = None) -> dict:
    """The settings of the current model in ``state["all_settings"]`` (empty when unknown)."""
    if not isinstance(state, Mapping):
        return {}
    model_type = model_type or current_model_type(state)
    all_settings = state.get("all_settings")
    if not isinstance(all_settings, Mapping) or model_type is None:
        return {}
    settings = all_settings.get(model_type)
    return dict(settings) if isinstance(settings, Mapping) else {}


def normalize_resolution(value: Any) -> Optional[str]:
    """``"832x480"`` from "832x480", "832X480", (832, 480); None when unreadable."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        try:
            width, height = int(value[0]), int(value[1])
        except (TypeError, ValueError):
            return None
        return f"{width}x{height}" if width > 0 and height > 0 else None
    if isinstance(value, str):
        parts = value.lower().replace(" ", "").split("x")
        if len(parts) == 2 and all(p.isdigit() for p in parts) and all(int(p) > 0 for p in parts):
            return f"{int(parts[0])}x{int(parts[1])}"
    return None


def model_fps(plugin: Any, model_type: Optional[str]) -> Optional[float]:
    """The model's native fps (``model_def["fps"]``, 16 for Wan) when the host can tell."""
    if not model_type:
        return None
    get_model_def = host_callable(plugin, "get_model_def")
    if get_model_def is None:
        return None
    try:
        model_def = get_model_def(model_type) or {}
        fps = model_def.get("fps")
        return float(fps) if fps else None
    except Exception:  # foreign code: a failure only means "no prefill"
        logger.debug("get_model_def(%r) failed", model_type, exc_info=True)
        return None


def target_from_host(state: Any, plugin: Any = None) -> Target:
    """The target prefilled from the host's current model settings, defaults where unknown."""
    model_type = current_model_type(state)
    settings = current_model_settings(state, model_type)
    resolution = normalize_resolution(settings.get("resolution")) or DEFAULT_RESOLUTION
    try:
        frames = int(settings.get("video_length") or DEFAULT_FRAMES)
    except (TypeError, ValueError):
        frames = DEFAULT_FRAMES
    fps: Optional[float] = None
    force = settings.get("force_fps")
    if isinstance(force, (int, float)) and force > 0:
        fps = float(force)
    elif isinstance(force, str) and force.strip().isdigit() and int(force) > 0:
        fps = float(force)
    if fps is None:
        fps = model_fps(plugin, model_type) or DEFAULT_FPS
    return Target(resolution, max(1, frames), fps)


def merge_video_prompt_type(current: Any) -> str:
    """``current`` with ``V`` added, the host's other guide-processing letters removed, the rest kept."""
    text = current if isinstance(current, str) else ""
    kept = "".join(ch for ch in text if ch not in GUIDE_PROCESS_LETTERS and ch != "V")
    return kept + "V"


def pick_vace_model_type(state: Any, plugin: Any = None) -> str:
    """The VACE model of "Generate with VACE" and Send (see ``vace_choice``)."""
    return choose_vace_model(current_model_type(state), plugin).model_type


def vace_task_settings(guide_path: str, frames: int, resolution: str, model_type: str,
                       prompt: str = "", base: Optional[Mapping[str, Any]] = None) -> dict:
    """The settings dict of one VACE generation driven by our guide (for ``api_session.submit_task``)."""
    settings = {key: value for key, value in (base or {}).items()
                if key not in ("state", "video_guide", "video_mask", "video_source", "image_refs")}
    settings.update({
        "model_type": model_type,
        "video_guide": os.path.abspath(str(guide_path)),
        "video_prompt_type": "V",
        "video_length": int(frames),
        "resolution": normalize_resolution(resolution) or resolution,
        "force_fps": "control",
    })
    if prompt:
        settings["prompt"] = prompt
    settings.setdefault("prompt", "")
    return settings


def result_summary(generation_result: Any) -> tuple[Optional[str], str]:
    """(first generated video or None, status text) of an API ``GenerationResult``."""
    files = list(getattr(generation_result, "generated_files", None) or [])
    errors = [str(e) for e in (getattr(generation_result, "errors", None) or [])]
    if getattr(generation_result, "cancelled", False):
        return None, "Generation cancelled."
    if getattr(generation_result, "success", False) and files:
        return files[0], f"Done: {files[0]}"
    return (files[0] if files else None), "Generation failed: " + ("; ".join(errors) or "no output")


# Send to Video Generator ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SendOutcome:
    """What Send changed: the VACE model whose settings now hold the guide, and whether the generator
    must switch to it (``model_choice_target``) before its form shows them."""

    choice: VaceChoice
    switched: bool
    settings: dict

    @property
    def model_type(self) -> str:
        return self.choice.model_type

    def model_words(self) -> str:
        """The status line's words for the model: its name, its type, and — after a switch — why."""
        words = f"**{self.choice.name}** (`{self.model_type}`)"
        return words + (f"; the generator switches to it: {self.choice.reason}" if self.switched else "")


def guide_settings(guide_path: str, frames: int, resolution: str) -> dict:
    """The settings keys our guide sets in a VACE model (besides ``video_prompt_type``)."""
    return {
        "video_guide": str(Path(guide_path).resolve()),
        "video_length": int(frames),
        "resolution": normalize_resolution(resolution) or resolution,
        "force_fps": "control",
    }


def _live_settings(state: dict, model_type: str, plugin: Any) -> dict:
    """The live settings dict of ``model_type`` in ``state`` (created from the host's defaults when the
    user never opened that model), like wgp's ``get_model_settings`` / ``set_model_settings``."""
    all_settings = state.get("all_settings")
    if not isinstance(all_settings, dict):
        all_settings = state["all_settings"] = {}
    settings = all_settings.get(model_type)
    if not isinstance(settings, dict):
        defaults = host_callable(plugin, "get_default_settings")
        settings = {}
        if defaults is not None:
            try:
                settings = dict(defaults(model_type) or {})
            except Exception:
                logger.debug("get_default_settings(%r) failed", model_type, exc_info=True)
        all_settings[model_type] = settings
    return settings


def send_guide_to_settings(state: Any, plugin: Any, guide_path: str, frames: int, resolution: str) -> SendOutcome:
    """Write our guide into the settings of a VACE model in the host's per-session ``state``.

    The current model when it is a VACE one — through the host's own ``get_current_model_settings``
    and ``update_video_prompt_type(state, any_video_guide=True, process_type="")`` when it offers
    them; else the VACE model ``vace_choice.choose_vace_model`` picks, which the generator then switches to: the host
    saves the old model's form nowhere (``ignore_save_form``) and keeps our resolution
    (``skip_resolution_transfer_on_model_switch``), as its own "use these settings" actions do.
    """
    if not isinstance(state, dict):
        raise ValueError("The Video Generator's state is unavailable: open the Video Generator tab once, then Send.")
    values = guide_settings(guide_path, frames, resolution)
    choice = choose_vace_model(current_model_type(state), plugin)
    if choice.current:
        current = choice.model_type
        get_current = host_callable(plugin, "get_current_model_settings")
        settings = get_current(state) if get_current is not None else _live_settings(state, current, plugin)
        settings.update(values)
        update_prompt_type = host_callable(plugin, "update_video_prompt_type")
        if update_prompt_type is not None:
            settings["video_prompt_type"] = "".join(
                ch for ch in str(settings.get("video_prompt_type") or "") if ch not in GUIDE_PROCESS_LETTERS + "V")
            update_prompt_type(state, any_video_guide=True, process_type="")
        else:
            settings["video_prompt_type"] = merge_video_prompt_type(settings.get("video_prompt_type"))
        return SendOutcome(choice, False, settings)
    target = choice.model_type
    settings = _live_settings(state, target, plugin)
    settings.update(values)
    settings["video_prompt_type"] = merge_video_prompt_type(settings.get("video_prompt_type"))
    state["ignore_save_form"] = True
    state["skip_resolution_transfer_on_model_switch"] = target
    return SendOutcome(choice, True, settings)


def model_choice_value(model_type: str) -> str:
    """The value that makes Wan2GP's ``model_choice_target`` switch the generator to ``model_type``."""
    return f"{model_type}|{time.time()}"


def mark_target_edited(state: Any, edited: bool = True) -> None:
    """Remember in the host's per-session state that the user typed the target (prefill then waits
    for the explicit "take from the Video Generator" action)."""
    if isinstance(state, dict):
        state[TARGET_EDITED_KEY] = bool(edited)


def target_edited(state: Any) -> bool:
    return bool(isinstance(state, Mapping) and state.get(TARGET_EDITED_KEY))
