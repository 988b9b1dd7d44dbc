"""The project's stand-in for Wan2GP's ``WAN2GPPlugin`` and small Gradio 5/6 compatibility helpers.

Standalone (no Wan2GP on ``sys.path``) ``plugin.py`` subclasses :class:`WAN2GPPlugin` from here; it
offers the same methods as the host's base class (``shared/utils/plugins.py``) so one plugin class
serves both hosts. Nothing here imports gradio at module level.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional


@dataclass
class PluginTab:
    id: str
    label: str
    component_constructor: Callable[..., Any]
    position: int = -1


@dataclass
class InsertAfterRequest:
    target_component_id: str
    new_component_constructor: Callable[..., Any]


class WAN2GPPlugin:
    """Same surface as Wan2GP's base class; ``set_global`` goes to the small host's setter."""

    def __init__(self) -> None:
        self.tabs: Dict[str, PluginTab] = {}
        self.name = self.__class__.__name__
        self.version = "1.0.0"
        self.description = "No description provided."
        self.type = ["app"]
        self.uninstallable = True
        self._component_requests: List[str] = []
        self._global_requests: List[str] = []
        self._insert_after_requests: List[InsertAfterRequest] = []
        self._setup_complete = False
        self._data_hooks: Dict[str, List[Callable[..., Any]]] = {}
        self.tab_ids: List[str] = []
        self._set_wgp_global_func: Optional[Callable[[str, Any], Any]] = None
        self._custom_js_snippets: List[str] = []

    def setup_ui(self) -> None:
        pass

    def add_tab(self, tab_id: str, label: str, component_constructor: Callable[..., Any], position: int = -1) -> None:
        self.tabs[tab_id] = PluginTab(tab_id, label, component_constructor, position)

    def post_ui_setup(self, components: Dict[str, Any]) -> Dict[Any, Any]:
        return {}

    def on_tab_select(self, state: Dict[str, Any]) -> None:
        pass

    def on_tab_deselect(self, state: Dict[str, Any]) -> None:
        pass

    def on_model_change(self, state: Dict[str, Any], model_type: str) -> None:
        pass

    def request_component(self, component_id: str) -> None:
        if component_id not in self._component_requests:
            self._component_requests.append(component_id)

    def request_global(self, global_name: str) -> None:
        if global_name not in self._global_requests:
            self._global_requests.append(global_name)

    def set_global(self, variable_name: str, new_value: Any) -> Any:
        if self._set_wgp_global_func:
            return self._set_wgp_global_func(variable_name, new_value)
        return None

    @property
    def component_requests(self) -> List[str]:
        return self._component_requests.copy()

    @property
    def global_requests(self) -> List[str]:
        return self._global_requests.copy()

    def register_data_hook(self, hook_name: str, callback: Callable[..., Any]) -> None:
        self._data_hooks.setdefault(hook_name, []).append(callback)

    def add_custom_js(self, js_code: str) -> None:
        if isinstance(js_code, str) and js_code.strip():
            self._custom_js_snippets.append(js_code)

    @property
    def custom_js_snippets(self) -> List[str]:
        return self._custom_js_snippets.copy()

    def insert_after(self, target_component_id: str, new_component_constructor: Callable[..., Any]) -> None:
        self._insert_after_requests.append(InsertAfterRequest(target_component_id, new_component_constructor))


# Gradio helpers ------------------------------------------------------------------------------------

def gradio_major() -> int:
    import gradio as gr

    try:
        return int(str(gr.__version__).split(".")[0])
    except ValueError:
        return 0


def blocks_kwargs(title: str, css: str = "") -> dict:
    """Keyword arguments of ``gr.Blocks`` valid under Gradio 5 and 6 (css moved to ``launch`` in 6)."""
    kwargs: dict = {"title": title}
    if gradio_major() < 6 and css:
        kwargs["css"] = css
    return kwargs


def launch_kwargs(css: str = "") -> dict:
    """Keyword arguments of ``Blocks.launch`` that differ between Gradio 5 and 6."""
    return {"css": css} if gradio_major() >= 6 and css else {}


def upload_path(value: Any) -> Optional[str]:
    """The local path of an uploaded file/video value (str, dict or FileData-like), or None."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        text = str(value)
        return text or None
    if isinstance(value, dict):
        for key in ("path", "name", "video"):
            inner = value.get(key)
            if inner:
                return upload_path(inner)
        return None
    for attr in ("path", "name"):
        inner = getattr(value, attr, None)
        if isinstance(inner, str) and inner:
            return inner
    return None
