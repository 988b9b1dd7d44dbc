"""The standalone app in Debian's headless Chromium, driven by Playwright."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("STRUCTURE_VIDEO_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

from ui_helpers import running_app  # noqa: E402


@pytest.fixture(scope="module")
def app_url():
    with running_app() as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.console_messages = []  # type: ignore[attr-defined]
    page.on("console", lambda message: page.console_messages.append(message.text))
    page.set_default_timeout(30_000)
    page.goto(app_url)
    page.wait_for_selector("#structure_video_extract")
    yield page
    context.close()


def assert_no_argument_warnings(messages) -> None:
    """No "Too many arguments provided for the endpoint." in the console. Under Gradio 5 (Wan2GP's pin)
    the page's own client prints it for every event that has inputs, in any Gradio 5 app: it looks the
    event up among the *unnamed* API endpoints by its index, finds nothing and compares the inputs with an
    empty parameter list (Gradio 6 skips the check when the endpoint is unknown). Nothing an app can change,
    so the check runs under Gradio 6."""
    from wan2gp_structure_video.ui.compat import gradio_major

    if gradio_major() >= 6:
        assert not [m for m in messages if "Too many arguments" in m], messages


def _fill(page, elem_id: str, value: str) -> None:
    field = page.locator(f"#{elem_id} input, #{elem_id} textarea").first
    field.fill(value)
    field.press("Tab")


def test_upload_extract_shows_guide_and_chart(page, tmp_path):
    from wan2gp_structure_video.preprocessors.sample_video import write_sample_video

    source = write_sample_video(tmp_path / "s.mp4", width=160, height=96, frames=12, fps=12)
    page.locator("#structure_video_source input[type=file]").set_input_files(str(source))
    page.wait_for_function("document.querySelector('#structure_video_info')?.innerText.includes('12 frames')")
    _fill(page, "structure_video_resolution", "128x96")
    _fill(page, "structure_video_frames", "8")
    _fill(page, "structure_video_fps", "8")
    page.locator("#structure_video_backend").get_by_text("DIS (OpenCV, CPU, fast)").click()
    page.locator("#structure_video_extract").click()
    page.wait_for_selector("#structure_video_guide video[src]", timeout=120_000)
    page.wait_for_selector("#structure_video_timeline canvas, #structure_video_timeline svg")
    details = page.locator("#structure_video_details").inner_text()
    assert "8 frames" in details and "128×96" in details and "Summary:" in details
    assert_no_argument_warnings(page.console_messages)
    page.screenshot(path=str(tmp_path / "extract.png"), full_page=True)
    assert (tmp_path / "extract.png").stat().st_size > 0


def test_non_video_upload_shows_the_error(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a video")
    page.locator("#structure_video_source input[type=file]").set_input_files(str(bad))
    page.get_by_text("not a readable video").first.wait_for(timeout=30_000)
    page.screenshot(path=str(tmp_path / "error.png"), full_page=True)
