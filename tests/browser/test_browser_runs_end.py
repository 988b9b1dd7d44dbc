"""Issue 24 in headless Chromium: with More settings open Extract and the status line stay on screen
(1280×720 and 1400×900); one progress text; an unexpected error ends the run on the page; choosing
Depth shows the weights' status."""
from __future__ import annotations

import re

import pytest

from browser.test_browser import _fill, _upload_small, app_url, browser, screenshot  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

SIZES = [{"width": 1280, "height": 720}, {"width": 1400, "height": 900}]


def _open_page(browser, app_url, viewport):  # noqa: F811
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(app_url)
    page.wait_for_selector("#structure_video_extract")
    return context, page


def _upload(page, tmp_path, seed: int) -> None:
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

    source = write_sample_video(tmp_path / f"s{seed}.mp4", width=640, height=360, frames=120, fps=24, seed=seed)
    page.locator("#structure_video_source input[type=file]").set_input_files(str(source))
    page.wait_for_function("document.querySelector('#structure_video_info')?.innerText.includes('120 frames')")
    page.locator("#structure_video_backend").get_by_text("DIS (OpenCV, CPU, fast)").click()


def _on_screen(page, selector: str, viewport: dict) -> bool:
    """On the first screen of the page (scrolled to the top, as the page opens)."""
    page.evaluate("window.scrollTo(0, 0)")
    box = page.locator(selector).bounding_box()
    return (box is not None and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]
            and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"])


@pytest.mark.parametrize("viewport", SIZES, ids=lambda v: f"{v['width']}x{v['height']}")
def test_extract_and_status_stay_visible_with_more_settings_open(browser, app_url, tmp_path, viewport):  # noqa: F811
    context, page = _open_page(browser, app_url, viewport)
    try:
        _upload(page, tmp_path, seed=7100 + viewport["width"])  # its own flows: no cache hit
        _fill(page, "structure_video_resolution", "832x480")
        _fill(page, "structure_video_frames", "81")
        page.locator("#structure_video_more").get_by_text("More settings").click()
        page.locator("#structure_video_depth_weights_path").wait_for()
        page.evaluate("""() => { window.__texts = []; new MutationObserver(() => {
            const status = document.querySelector('#structure_video_status');
            if (status) window.__texts.push(status.innerText.trim()); }).observe(document.body,
            {subtree: true, childList: true, characterData: true}); }""")
        for selector in ("#structure_video_extract", "#structure_video_status"):
            assert _on_screen(page, selector, viewport), selector
        page.locator("#structure_video_extract").click()
        page.wait_for_function("document.querySelector('#structure_video_status').innerText.includes('Done')",
                               timeout=180_000)
        assert page.locator("#structure_video_depth_weights_path").is_visible()  # More settings still open
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, f"more_settings_open_{viewport['width']}x{viewport['height']}")
        for selector in ("#structure_video_extract", "#structure_video_status"):
            assert _on_screen(page, selector, viewport), selector
        texts = [t for t in page.evaluate("window.__texts") if t]
        assert texts and not [t for t in texts if "Extracting" in t], texts[:5]
        # one progress text: the stage's count is never said twice ("flow 3/39 — optical flow 3/39")
        counts = [re.findall(r"\b\d+/\d+\b", t) for t in texts]
        assert not [t for t, found in zip(texts, counts) if len(found) != len(set(found))], texts
        assert [t for t in texts if re.search(r"(?i)optical flow \d+/\d+", t)], set(texts)  # the stage's words
    finally:
        context.close()


def test_an_unexpected_error_ends_the_run_on_the_page(browser, app_url, tmp_path, monkeypatch):  # noqa: F811
    from wan2gp_structure_video.ui import extract_panel, failures

    def broken(*args, **kwargs):
        raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(extract_panel, "run_extraction", broken)
    context, page = _open_page(browser, app_url, SIZES[0])
    try:
        _upload_small(page, tmp_path)
        _fill(page, "structure_video_resolution", "128x96")
        page.locator("#structure_video_extract").click()
        page.wait_for_function("document.querySelector('#structure_video_status').innerText.includes('Not extracted')",
                               timeout=60_000)
        page.wait_for_function("document.querySelector('#structure_video_cancel').disabled")
        status = page.locator("#structure_video_status").inner_text()
        assert "torchvision::nms does not exist" in status and str(failures.log_path()) in status, status
        assert "RuntimeError" not in status
        from wan2gp_structure_video.ui.compat import gradio_major

        if gradio_major() >= 6:  # Gradio 5.29's page draws every error's toast, even gr.Error(visible=False)
            toasts = page.locator(".toast-body.error")
            assert toasts.count() == 0, toasts.all_inner_texts()  # one message: the status line, no toast
        assert page.locator("#structure_video_extract").is_enabled()
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "unexpected_error")
        assert _on_screen(page, "#structure_video_status", SIZES[0])  # the whole message, at 1280×720
    finally:
        context.close()


def test_choosing_depth_shows_the_weights_status(browser, app_url, monkeypatch):  # noqa: F811
    from wan2gp_structure_video.preprocessors.weights import depth_weights

    monkeypatch.setattr(depth_weights, "default_search_dirs", lambda: [])
    monkeypatch.setattr(depth_weights, "hub_cache_folder", lambda *args, **kw: None)
    context, page = _open_page(browser, app_url, SIZES[0])
    try:
        status = page.locator("#structure_video_depth_status")
        assert not status.is_visible()
        page.locator("#structure_video_type").get_by_text("Depth (near = bright)").click()
        page.wait_for_function("document.querySelector('#structure_video_depth_status')?.innerText.includes('none found')")
        text = status.inner_text()
        assert '"Depth weights" under More settings' in text and "--" not in text and "downloader" not in text
        page.evaluate("window.scrollTo(0, 0)")
        screenshot(page, "depth_weights_status")
        assert _on_screen(page, "#structure_video_extract", SIZES[0])
    finally:
        context.close()
