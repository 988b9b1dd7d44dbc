"""Wan2GP entry point: the Structure Video tab.

Wan2GP imports ``<folder>.plugin`` and instantiates the first class of this module that subclasses
its ``WAN2GPPlugin`` (and is not the base itself): :class:`StructureVideoPlugin` is the only one.
Standalone (no Wan2GP on the path) the base class is the project's own stand-in with the same methods.
"""
from __future__ import annotations

import logging
from typing import Any, Dict

try:
    from shared.utils.plugins import WAN2GPPlugin
except ImportError:  # standalone app, CLI, tests
    from .ui.compat import WAN2GPPlugin

logger = logging.getLogger(__name__)

TAB_ID = "structure_video"
TAB_LABEL = "Structure Video"
#: The API endpoint that answers what the annotator pool holds (``HostHooks.memory_state``).
MEMORY_API_NAME = "structure_video_memory"
#: Host globals the tab uses (names the host lacks are skipped silently by Wan2GP).
GLOBALS = ("clear_gen_cache", "server_config", "fl", "process_files_def", "get_model_def", "test_vace_module",
           "get_current_model_settings", "update_video_prompt_type", "get_default_settings", "models_def",
           "get_model_filename", "get_model_recursive_prop", "transformer_quantization", "transformer_dtype_policy")
#: Host form components (local variable names of Wan2GP's form builder).
COMPONENTS = ("state", "main_tabs", "video_guide", "video_prompt_type", "video_length", "resolution",
              "force_fps", "refresh_form_trigger", "model_choice_target")


def add_memory_endpoint(hooks: Any) -> None:
    """The ``structure_video_memory`` API endpoint (no inputs; a JSON answer): what the annotator pool holds
    and what the host's ``clear_gen_cache`` released. A hidden textbox's event, not a button's (the host
    wraps plugin button clicks) nor ``gr.api`` (its answer type breaks Gradio 5.29's API page, and with it
    the page check Wan2GP's start-up runs)."""
    import gradio as gr

    with gr.Column(visible=False):
        trigger = gr.Textbox(visible=False)
        answer = gr.JSON(visible=False)
    trigger.change(hooks.memory_state, inputs=None, outputs=answer, api_name=MEMORY_API_NAME)


class StructureVideoPlugin(WAN2GPPlugin):
    """Declares the tab, requests what it needs from the host and installs the memory hooks once."""

    def __init__(self) -> None:
        super().__init__()
        from . import __version__

        self.name = "Structure Video"
        self.version = __version__
        self.description = ("Turn any video into a VACE control video (optical flow, canny or raw) fitted to the "
                            "generation, with strict GPU memory control.")
        self.type = ["app", "processor"]
        self._host_components: Dict[str, Any] = {}
        self._hooks = None
        self.handles = None  # the built tab (TabHandles)

    # lifecycle ---------------------------------------------------------------------------------------
    def setup_ui(self) -> None:
        for name in GLOBALS:
            self.request_global(name)
        for name in COMPONENTS:
            self.request_component(name)
        self.add_tab(TAB_ID, TAB_LABEL, self.create_tab)

    def post_ui_setup(self, components: Dict[str, Any]) -> Dict[Any, Any]:
        """Keep the first set of host components (the generate form) and install the hooks once."""
        for name, component in (components or {}).items():
            if component is not None and self._host_components.get(name) is None:
                self._host_components[name] = component
        self.install_hooks()
        return {}

    def install_hooks(self):
        """The host hooks (``ui/host_bridge``), installed once; None when installing failed."""
        if self._hooks is not None and getattr(self._hooks, "installed", False):
            return self._hooks
        try:
            from .ui.host_bridge import install_host_hooks

            self._hooks = install_host_hooks(self)
        except Exception:  # never break the host's UI setup
            logger.exception("Structure Video: installing the host hooks failed")
        return self._hooks

    def uninstall_hooks(self) -> None:
        if self._hooks is not None:
            self._hooks.uninstall()
            self._hooks = None

    def host_components(self) -> Dict[str, Any]:
        """Requested host components: attributes set by the host (first wins), then post_ui_setup's dict."""
        found = dict(self._host_components)
        for name in COMPONENTS:
            value = getattr(self, name, None)
            if value is not None:
                found[name] = value
        return found

    def create_tab(self, api_session: Any = None) -> None:
        """Tab constructor; one positional parameter, so Wan2GP passes its in-process API session."""
        from .ui.tab import build_tab

        hooks = self.install_hooks()  # idempotent; covers hosts that skip post_ui_setup
        self.handles = build_tab(self, api_session, hooks=hooks)
        if hooks is not None:
            add_memory_endpoint(hooks)
        if self.handles.hosted:  # the host's tab-select event writes on_tab_select's values there
            self.on_tab_outputs = self.handles.target_outputs

    def on_tab_select(self, state: Dict[str, Any]) -> Any:
        """Prefill the target from the generator, unless the user typed one (``generator_panel``)."""
        if not getattr(self, "on_tab_outputs", None):
            return None
        from .ui.generator_panel import prefill_on_tab_select

        return prefill_on_tab_select(self, state)
