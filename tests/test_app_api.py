"""The standalone app through its Gradio API (gradio_client), as a remote user would drive it."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from ui_helpers import extract_via_api, running_app, video_path  # noqa: E402

from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video  # noqa: E402
from wan2gp_structure_video.preprocessors.video.video_io import probe_video  # noqa: E402

EXTRACT_DEFAULTS = dict(resolution="128x96", frames=8, fps=8, guide_type="flow", treatment="adjust", fit="crop",
                        start=None, end=None, range_unit="frames", motion_strength=1.0, backend="dis",
                        iterations=20, batch_size=0, depth_contrast=1.0, depth_smoothing=0)


@pytest.fixture(scope="module")
def app_url():
    with running_app() as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    return gradio_client.Client(app_url, verbose=False)





def test_extract_returns_playable_guide_of_the_right_size_and_count(client, tmp_path):
    # a source no other test uses: a cache hit would leave the memory chart without samples
    source = write_sample_video(tmp_path / "s.mp4", width=160, height=96, frames=12, fps=12, seed=4242)
    guide, details, preview, _slider, chart, cache_info, status = extract_via_api(client, source, EXTRACT_DEFAULTS)
    assert status.startswith("Done: 8 frames")
    info = probe_video(video_path(guide))
    assert (info.width, info.height, info.frame_count) == (128, 96, 8)
    assert info.codec in ("h264", "libx264")
    assert "dis" in details.lower() and "8 frames" in details
    # the memory chart is Gradio's own plot: long-format rows t / series / mib (never silently absent)
    rows = chart["value"]["data"] if isinstance(chart, dict) and "value" in chart else chart["data"]
    assert rows and all(len(row) == 3 for row in rows), chart
    assert "Flow cache" in cache_info


def test_a_call_written_before_the_depth_settings_still_works(client, tmp_path):
    """API callers that pass only the settings /extract had before Depth contrast and smoothing were
    added (at the end) get the tab's defaults for those."""
    import gradio_client

    from ui_helpers import EXTRACT_FIELDS

    source = write_sample_video(tmp_path / "s.mp4", width=160, height=96, frames=12, fps=12, seed=77)
    older = [EXTRACT_DEFAULTS[name] for name in EXTRACT_FIELDS if not name.startswith("depth_")]
    *_, status = client.predict(gradio_client.handle_file(str(source)), *older, api_name="/extract")
    assert status.startswith("Done: 8 frames")


def test_extract_canny_snaps_resolution(client, tmp_path):
    source = write_sample_video(tmp_path / "s.mp4", width=160, height=96, frames=12, fps=12)
    guide, details, *_ = extract_via_api(client, source, {**EXTRACT_DEFAULTS, "guide_type": "canny", "resolution": "130x100", "frames": 5})
    info = probe_video(video_path(guide))
    assert (info.width, info.height, info.frame_count) == (128, 96, 5)
    assert "snapped" in details.lower()


def test_bad_upload_gives_a_clear_error(client, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(Exception) as caught:
        extract_via_api(client, bad, EXTRACT_DEFAULTS)
    message = str(caught.value)
    assert "not a readable video" in message and "notes.mp4" in message


def test_bad_target_gives_a_clear_error(client, tmp_path):
    source = write_sample_video(tmp_path / "s.mp4", width=160, height=96, frames=12, fps=12)
    with pytest.raises(Exception) as caught:
        extract_via_api(client, source, {**EXTRACT_DEFAULTS, "resolution": "banana"})
    assert "banana" in str(caught.value) or "resolution" in str(caught.value).lower()


def test_app_command_serves_on_localhost_and_prints_one_line(tmp_path):
    """The ``app`` command serves the page and says where in one line of its own: no httpx request
    log, no Gradio banner or share hint."""
    import os
    import subprocess
    import sys
    import threading
    import time
    import urllib.request

    from ui_helpers import free_port

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "wan2gp_structure_video.cli", "app", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.decode(errors="replace").rstrip("\n")
                                                          for line in proc.stdout), daemon=True)
    reader.start()
    announced = f"Running on http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 90
        while True:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except OSError:
                assert proc.poll() is None, "\n".join(lines)
                assert time.time() < deadline, "the app did not start within 90 s"
                time.sleep(0.5)
        assert b"Structure Video" in page or b"gradio" in page.lower()
        # The page answers as soon as the server runs; the line is printed just after: wait for it.
        while announced not in lines and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # anything printed right after the line would show here
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    reader.join(10)
    output = "\n".join(lines)
    lines = [line for line in lines if line.strip()]
    assert announced in lines, output
    assert not [line for line in lines if "httpx" in line or "HTTP Request" in line], output
    assert "share=True" not in output and "public link" not in output, output
