"""The small standalone host: a ``gr.Blocks`` with tabs that loads the plugin the way Wan2GP does
(instantiate, ``setup_ui``, inject globals, ``post_ui_setup``, build the tabs), with its own
``clear_gen_cache`` (the GPU lock is the process lock the pipeline uses by default). No VACE model here, so the generator buttons stay hidden.

Run: ``wan2gp-structure-video app`` or ``python -m wan2gp_structure_video.ui.standalone``.
"""
from __future__ import annotations

import argparse
import gc
import logging
import sys
from typing import Any, Callable, Optional, Sequence

logger = logging.getLogger(__name__)

CSS = "#structure_video_details p { margin: 0.2em 0; }"


class StandaloneHost:
    """The globals a Wan2GP plugin may ask for, as far as they make sense without Wan2GP."""

    def __init__(self) -> None:
        self.globals: dict[str, Any] = {
            "clear_gen_cache": self.clear_gen_cache,
            "server_config": {},
        }

    @staticmethod
    def clear_gen_cache() -> None:
        gc.collect()

    def set_global(self, name: str, value: Any) -> None:
        if name not in self.globals:
            raise KeyError(f"Unknown global {name!r}")
        self.globals[name] = value

    def inject(self, plugin: Any) -> None:
        plugin._set_wgp_global_func = self.set_global
        for name in plugin.global_requests:
            if name in self.globals:
                setattr(plugin, name, self.globals[name])


def load_plugin(plugin_class: Optional[type] = None):
    """Instantiate the plugin class and run setup_ui, as Wan2GP's loader does."""
    if plugin_class is None:
        from ..plugin import StructureVideoPlugin as plugin_class
    plugin = plugin_class()
    plugin.setup_ui()
    return plugin


def build_app(plugin_class: Optional[type] = None):
    """(gr.Blocks, plugin): the plugin's tabs inside a small Blocks app."""
    import gradio as gr

    from .compat import blocks_kwargs

    host = StandaloneHost()
    plugin = load_plugin(plugin_class)
    host.inject(plugin)
    with gr.Blocks(**blocks_kwargs("Structure Video", CSS)) as demo:
        plugin.post_ui_setup({})
        with gr.Tabs(elem_id="main_tabs"):
            for tab in plugin.tabs.values():
                with gr.Tab(tab.label, id=f"plugin_{tab.id}"):
                    tab.component_constructor()
    demo.queue(default_concurrency_limit=2)
    demo.structure_video_plugin = plugin  # type: ignore[attr-defined]
    return demo, plugin


#: Loggers that speak at INFO for every request Gradio makes to itself; the app keeps them at WARNING.
CHATTY_LOGGERS = ("httpx", "httpcore")


def quiet_chatty_loggers() -> None:
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def launch(host: str = "127.0.0.1", port: Optional[int] = 7860, share: bool = False,
           prevent_thread_lock: bool = False, **kwargs: Any):
    """Serve the app; prints one "Running on URL" line (Gradio's own banner and share hint are off)."""
    from .compat import launch_kwargs

    quiet_chatty_loggers()
    demo, plugin = build_app()
    demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True, quiet=True,
                allowed_paths=[str(plugin.handles.deps.outputs.ensure())], **launch_kwargs(CSS), **kwargs)
    _announce(demo)
    if not prevent_thread_lock:
        demo.block_thread()  # serve until Ctrl+C, as Gradio's own launch would
    return demo


def _announce(demo: Any) -> None:
    print(f"Running on {demo.local_url}" + (f" and {demo.share_url}" if getattr(demo, "share_url", None) else ""),
          flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link (opt-in)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m wan2gp_structure_video.ui.standalone``: the same port check and one-line errors
    (exit status 2) as ``wan2gp-structure-video app``."""
    from ..errors import StructureVideoError
    from ..ports import check_port

    parser = argparse.ArgumentParser(prog="wan2gp-structure-video app",
                                     description="Run the Structure Video tab as a small standalone web app.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_port(args.host, args.port)
    except StructureVideoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    launch(args.host, args.port, args.share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
