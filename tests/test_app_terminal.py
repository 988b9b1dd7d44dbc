"""The app's terminal: one line per user error (no traceback), and the standalone entry point's
port-taken message is the CLI's."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from ui_helpers import extract_via_api, free_port  # noqa: E402

from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video  # noqa: E402

ARGS = dict(resolution="banana", frames=8, fps=8, guide_type="flow", treatment="adjust", fit="crop", start=None,
            end=None, range_unit="frames", motion_strength=1.0, backend="dis", iterations=20, batch_size=0)


def test_a_user_error_is_one_terminal_line(tmp_path):
    """The real entry point in its own process, driven through its API: two user errors, two lines."""
    source = write_sample_video(tmp_path / "s.mp4", width=160, height=96, frames=12, fps=12)
    port = free_port()
    env = {**os.environ, "WAN2GP_STRUCTURE_VIDEO_HOME": str(tmp_path / "home")}
    app = subprocess.Popen([sys.executable, "-m", "wan2gp_structure_video.ui.standalone", "--port", str(port)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env)
    try:
        assert app.stdout.readline().startswith("Running on http://127.0.0.1:"), "the app did not start"
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        for _ in range(2):
            with pytest.raises(Exception, match="banana"):
                extract_via_api(client, source, ARGS)
    finally:
        app.terminate()
        terminal = app.communicate(timeout=60)[0]
    assert "Traceback" not in terminal, terminal
    assert len([line for line in terminal.splitlines() if "banana" in line]) == 2, terminal  # one line per error


def test_standalone_module_says_the_clis_port_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        lines = []
        for command in (["-m", "wan2gp_structure_video.ui.standalone"], ["-m", "wan2gp_structure_video.cli", "app"]):
            proc = subprocess.run([sys.executable, *command, "--port", port], capture_output=True, text=True,
                                  timeout=120, cwd=tmp_path)
            assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
            lines.append(proc.stderr.strip())
    assert lines[0] == lines[1] and lines[0].startswith(f"error: port {port} is in use") and "pass --port" in lines[0]
