"""Shared helpers of the UI tests: a standalone app running in-process on a free port; a fake host's
file locator and downloader."""
from __future__ import annotations

import contextlib
import socket
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def fake_host_files(ckpts: Path, **host: Any) -> tuple[SimpleNamespace, list]:
    """A plugin whose host locates files under ``ckpts`` (``fl.locate_file``) and whose downloader
    (``process_files_def``) writes the files it is asked for there; and the list of its downloads."""
    downloads: list = []

    def process_files_def(repoId, sourceFolderList, fileList):
        downloads.append((repoId, sourceFolderList, fileList))
        (ckpts / sourceFolderList[0]).mkdir(parents=True, exist_ok=True)
        for name in fileList[0]:
            (ckpts / sourceFolderList[0] / name).write_bytes(b"weights")

    def locate_file(name, error_if_none=True):
        return str(ckpts / name) if (ckpts / name).is_file() else None

    return SimpleNamespace(fl=SimpleNamespace(locate_file=locate_file), process_files_def=process_files_def,
                           **host), downloads


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app():
    """Yield the URL of the standalone app launched in this process; closed afterwards."""
    from wan2gp_structure_video.ui.compat import launch_kwargs
    from wan2gp_structure_video.ui.standalone import CSS, build_app

    demo, plugin = build_app()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                allowed_paths=[str(plugin.handles.deps.outputs.ensure())], **launch_kwargs(CSS))
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read(64)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        demo.close()


EXTRACT_FIELDS = ("resolution", "frames", "fps", "guide_type", "treatment", "fit", "start", "end", "range_unit",
                  "motion_strength", "backend", "iterations", "batch_size", "depth_contrast", "depth_smoothing",
                  "depth_weights_path", "depth_weights_file")


#: The depth settings (added later, at the end) when a test does not set them: the tab's defaults.
DEPTH_DEFAULTS = {"depth_contrast": 1.0, "depth_smoothing": 0, "depth_weights_path": "", "depth_weights_file": None}


def extract_via_api(client, source, args: dict):
    """Call the app's ``/extract`` endpoint with an uploaded ``source`` and the tab's settings ``args``."""
    import gradio_client

    values = {**DEPTH_DEFAULTS, **args}
    return client.predict(gradio_client.handle_file(str(source)), *(values[name] for name in EXTRACT_FIELDS),
                          api_name="/extract")


def video_path(value) -> str:
    """The local path of a returned video value (a path, or a dict as some Gradio versions return)."""
    if isinstance(value, dict):
        value = value.get("video") or value
        if isinstance(value, dict):
            value = value.get("path") or value.get("name")
    return str(value)
