"""The depth weights field under More settings: a path (a .pth file or a transformers model folder)
or an uploaded file, its status shown as soon as the Depth type is chosen, and the short message a
depth run without weights gets, naming this page's controls (not the command line's options, and
Wan2GP's downloader only where the page has its button)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from ..options import DEFAULT_DEPTH_VARIANT
from . import host_bridge
from .compat import upload_path
from .deps import TabDeps

LABEL = "Depth weights"
WHERE = f'"{LABEL}" under More settings'


def chosen_weights(path_text: Any, file_value: Any) -> Optional[str]:
    """The weights the user gave: an uploaded file wins over a typed path; None when neither."""
    uploaded = upload_path(file_value)
    if uploaded:
        return str(uploaded)
    text = str(path_text or "").strip().strip('"')
    return text or None


def _download(deps: TabDeps) -> str:
    hosted = host_bridge.can_download_weights(deps.plugin)
    return ', or click "Download depth weights"' if hosted else ""


def missing_message(deps: TabDeps) -> str:
    """What a depth run without weights says: this page's controls only."""
    download = _download(deps)
    return (f"The Depth type needs Depth Anything V2 weights and none were found: give the path of a .pth "
            f"file (e.g. depth_anything_v2_vitl.pth) or of a transformers model folder in {WHERE}, or upload "
            f"the .pth file there{download}.")


def on_type(deps: TabDeps, guide_type: str, path_text: Any = None, file_value: Any = None) -> tuple:
    """When the type (or the weights field) changes: the depth weights' status, shown for Depth only, and
    the Flow backend choice, shown for flow only (the middle column stays short enough that Extract
    stays on the first screen)."""
    import gradio as gr

    return status_text(deps, guide_type, path_text, file_value), gr.update(visible=guide_type == "flow")


def status_text(deps: TabDeps, guide_type: str, path_text: Any = None, file_value: Any = None) -> Any:
    """The status of the depth weights while the Depth type is chosen (hidden for the other types)."""
    import gradio as gr

    from ..errors import StructureVideoError

    if guide_type != "depth":
        return gr.update(value="", visible=False)
    from ..preprocessors.weights.depth_weights import find_depth_weights

    explicit = chosen_weights(path_text, file_value)
    try:
        found = find_depth_weights(host_bridge.host_depth_variant(deps.plugin) or DEFAULT_DEPTH_VARIANT, explicit,
                                   host_locator=host_bridge.weights_locator(deps.plugin))
    except StructureVideoError as exc:
        from .wording import ui_words

        return gr.update(value=f"**Depth weights:** {ui_words(str(exc))}", visible=True)
    if found is None:
        return gr.update(value=f"**Depth weights: none found.** Set {WHERE} (a .pth file or a model folder, or "
                               f"upload the .pth){_download(deps)}.", visible=True)
    return gr.update(value=f"**Depth weights:** `{Path(found.path).name}` ({found.origin}, {found.variant}).",
                     visible=True)
