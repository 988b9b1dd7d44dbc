"""What the tab exchanges with Wan2GP, as pure functions (no gradio): reading the host's current
model settings, the values "Send to Video Generator" writes, the task "Generate with VACE" submits,
and the host's RAFT weights locator/downloader.

Everything is defensive: the host's ``state`` and globals are foreign data, any of them may be
missing; then the functions fall back to the standalone defaults.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

logger = logging.getLogger(__name__)

DEFAULT_RESOLUTION = "832x480"
DEFAULT_FRAMES = 81
DEFAULT_FPS = 16.0
#: The guide-processing letters of Wan2GP's ``video_prompt_type`` (wgp ``all_guide_processes``):
#: they select which preprocessor the host runs on the control video. Our guide is already the
#: control signal, so all of them go and only ``V`` ("use VACE raw format") stays. ``U`` would keep
#: the control frames unchanged in the output and ``L`` would make the host run its own RAFT again.
GUIDE_PROCESS_LETTERS = "OPEDSLCMUGBH"
HOST_WEIGHTS_FILE = "flow/raft-things.pth"
HOST_WEIGHTS_REPO = "DeepBeepMeep/Wan2.1"
VACE_MODEL_TYPES = ("vace_14B_2_2", "vace_14B", "vace_1.3B")
#: The flow cache's folder inside the host's output folder (``server_config["save_path"]``).
HOST_CACHE_FOLDER = "structure_video_flow_cache"


@dataclass(frozen=True)
class Target:
    """What the generation needs: guide size, frame count, fps."""

    resolution: str = DEFAULT_RESOLUTION
    frames: int = DEFAULT_FRAMES
    fps: float = DEFAULT_FPS


def host_module() -> Any:
    """The running ``wgp`` module, or None standalone."""
    return sys.modules.get("wgp")


def _host_global(plugin: Any, name: str, accept: Callable[[Any], bool]) -> Any:
    """A host global: the live ``wgp`` attribute first (the host may have reassigned it), then the
    plugin's injected snapshot; the first value ``accept`` takes, else None."""
    host = host_module()
    for source in (host, plugin):
        value = getattr(source, name, None) if source is not None else None
        if accept(value):
            return value
    return None


def _host_callable(plugin: Any, name: str) -> Optional[Callable[..., Any]]:
    """A host function (see ``_host_global``)."""
    return _host_global(plugin, name, callable)


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
    get_model_def = _host_callable(plugin, "get_model_def")
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


def send_to_generator_values(guide_path: str, current_prompt_type: Any, frames: int, resolution: str) -> dict:
    """The values "Send to Video Generator" writes into the host's form, by component id."""
    return {
        "video_guide": str(Path(guide_path).resolve()),
        "video_prompt_type": merge_video_prompt_type(current_prompt_type),
        "video_length": int(frames),
        "resolution": normalize_resolution(resolution) or resolution,
    }


def is_vace_model_type(model_type: Optional[str], plugin: Any = None) -> bool:
    if not model_type:
        return False
    test = _host_callable(plugin, "test_vace_module")
    if test is not None:
        try:
            return bool(test(model_type))
        except Exception:
            logger.debug("test_vace_module(%r) failed", model_type, exc_info=True)
    return "vace" in model_type.lower()


def pick_vace_model_type(state: Any, plugin: Any = None) -> str:
    """The current model when it is a VACE one, else the first VACE type the host knows."""
    current = current_model_type(state)
    if is_vace_model_type(current, plugin):
        return current  # type: ignore[return-value]
    get_model_def = _host_callable(plugin, "get_model_def")
    if get_model_def is not None:
        for candidate in VACE_MODEL_TYPES:
            try:
                if get_model_def(candidate):
                    return candidate
            except Exception:
                continue
    return VACE_MODEL_TYPES[-1]


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


def weights_locator(plugin: Any) -> Optional[Callable[[str], Optional[str]]]:
    """A locator backed by the host's ``fl.locate_file`` (None standalone)."""
    fl = _host_global(plugin, "fl", lambda value: value is not None)
    locate = getattr(fl, "locate_file", None)
    if not callable(locate):
        return None

    def locator(name: str) -> Optional[str]:
        try:
            return locate(name, error_if_none=False)
        except TypeError:
            return locate(name)

    return locator


def host_weights_path(plugin: Any) -> Optional[str]:
    """Where the host has ``flow/raft-things.pth``, None when missing or standalone."""
    locator = weights_locator(plugin)
    if locator is None:
        return None
    try:
        found = locator(HOST_WEIGHTS_FILE)
    except Exception:
        return None
    return str(found) if found and Path(str(found)).is_file() else None


def can_download_weights(plugin: Any) -> bool:
    return _host_callable(plugin, "process_files_def") is not None


def download_host_weights(plugin: Any) -> Optional[str]:
    """Download RAFT weights through the host's own downloader (the user asked for it)."""
    download = _host_callable(plugin, "process_files_def")
    if download is None:
        return None
    download(repoId=HOST_WEIGHTS_REPO, sourceFolderList=["flow"], fileList=[["raft-things.pth"]])
    return host_weights_path(plugin)


def host_cache_dir(plugin: Any) -> Optional[Path]:
    """The flow cache folder when hosted: under the host's output folder (``server_config["save_path"]``,
    Wan2GP's default ``outputs``, relative to its working folder). None standalone, or when
    ``$WAN2GP_STRUCTURE_VIDEO_HOME`` is set (an explicit choice of the user wins)."""
    from ..paths import HOME_ENV

    if os.environ.get(HOME_ENV):
        return None
    config = _host_global(plugin, "server_config", lambda value: isinstance(value, Mapping))
    if not config:  # standalone hosts inject an empty config
        return None
    save_path = config.get("save_path") or "outputs"
    try:
        return Path(str(save_path)).expanduser().resolve() / HOST_CACHE_FOLDER
    except (OSError, RuntimeError, ValueError):
        return None


def result_summary(generation_result: Any) -> tuple[Optional[str], str]:
    """(first generated video or None, status text) of an API ``GenerationResult``."""
    files = list(getattr(generation_result, "generated_files", None) or [])
    errors = [str(e) for e in (getattr(generation_result, "errors", None) or [])]
    if getattr(generation_result, "cancelled", False):
        return None, "Generation cancelled."
    if getattr(generation_result, "success", False) and files:
        return files[0], f"Done: {files[0]}"
    return (files[0] if files else None), "Generation failed: " + ("; ".join(errors) or "no output")
