"""The standalone app in Debian's headless Chromium, driven by Playwright."""
from __future__ import annotations

import os
import zipfile
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


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
LAPTOP = {"width": 1400, "height": 900}


def screenshot(page, name: str) -> Path:
    """Save a screenshot under test-artifacts/browser/ (git-ignored) to look at after the run."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport=LAPTOP)
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


def _type_into_revealed(page, field, value: str, tries: int = 20) -> None:
    """Type into a field that opening an accordion just revealed, until the value holds. Gradio 6 renders
    an accordion's children when it first opens and, once they have settled and one animation frame later,
    hands each its stored properties again: a value typed in between is put back to the old one, on screen
    and in what the next event sends (a robot types that fast; a person does not)."""
    frames = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done())))"
    for _ in range(tries):
        field.fill(value)
        field.press("Enter")
        page.evaluate(frames)
        page.wait_for_timeout(100)
        if field.input_value() == value:
            return
    raise AssertionError(f"{value!r} typed {tries} times did not hold: {field.input_value()!r}")


def test_upload_extract_shows_guide_and_chart(page, tmp_path):
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

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
    assert screenshot(page, "extract").stat().st_size > 0


def test_non_video_upload_shows_the_error(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a video")
    page.locator("#structure_video_source input[type=file]").set_input_files(str(bad))
    page.wait_for_function("document.querySelector('#structure_video_info')?.innerText.includes('not a readable video')")
    info = page.locator("#structure_video_info")
    assert "No structure video yet" not in info.inner_text()
    # the message is the panel's text, not an error badge drawn over it
    assert info.locator(".error").count() == 0 and page.locator(".toast-body.error").count() == 0
    screenshot(page, "non_video_upload")


def _upload_small(page, tmp_path, name="s.mp4", frames=12, width=160, height=96):
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

    source = write_sample_video(tmp_path / name, width=width, height=height, frames=frames, fps=12)
    page.locator("#structure_video_source input[type=file]").set_input_files(str(source))
    page.wait_for_function(f"document.querySelector('#structure_video_info')?.innerText.includes('{frames} frames')")
    page.locator("#structure_video_backend").get_by_text("DIS (OpenCV, CPU, fast)").click()


def _extract_small(page, tmp_path) -> None:
    _upload_small(page, tmp_path)
    _fill(page, "structure_video_resolution", "128x96")
    _fill(page, "structure_video_frames", "8")
    _fill(page, "structure_video_fps", "8")
    page.locator("#structure_video_extract").click()
    page.wait_for_selector("#structure_video_guide video[src]", timeout=120_000)
    page.wait_for_function("document.querySelector('#structure_video_status')?.innerText.includes('Done')")


def _visible_progress_owners(page) -> list:
    return page.evaluate("""() => [...new Set([...document.querySelectorAll('.progress-text, .eta-bar, .progress-level')]
        .filter(e => e.offsetParent !== null).map(e => (e.closest('[id]') || {}).id))]""")


def _in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP["height"]


def test_layout_fits_a_laptop_screen_with_one_progress_display(page, tmp_path):
    """At 1400×900: the source, the settings, Extract and the guide are all on screen without scrolling;
    during a run exactly one component shows progress; Cancel is only clickable while a run goes on."""
    _upload_small(page, tmp_path, "portrait.mp4", frames=40, width=96, height=160)
    _fill(page, "structure_video_resolution", "480x832")  # a portrait guide must not grow the page
    _fill(page, "structure_video_frames", "40")
    assert page.locator("#structure_video_cancel").is_disabled()
    page.evaluate("""() => { window.__owners = []; new MutationObserver(() => {
        const ids = [...document.querySelectorAll('.progress-text, .eta-bar, .progress-level')]
            .filter(e => e.offsetParent !== null).map(e => (e.closest('[id]') || {}).id);
        window.__owners.push([...new Set(ids)]); }).observe(document.body,
        {subtree: true, childList: true, attributes: true, characterData: true}); }""")
    page.locator("#structure_video_extract").click()
    page.wait_for_function("document.querySelector('#structure_video_cancel') && !document.querySelector('#structure_video_cancel').disabled")
    screenshot(page, "layout_running")
    page.wait_for_selector("#structure_video_guide video[src]", timeout=180_000)
    page.wait_for_function("document.querySelector('#structure_video_cancel').disabled")
    owners = page.evaluate("window.__owners")
    assert owners and max(len(ids) for ids in owners) == 1, [ids for ids in owners if len(ids) > 1][:3]
    assert {ids[0] for ids in owners if ids} == {"structure_video_status"}
    for selector in ("#structure_video_source", "#structure_video_resolution", "#structure_video_backend",
                     "#structure_video_extract", "#structure_video_guide", "#structure_video_status"):
        assert _in_viewport(page, selector), selector
    assert page.locator("#structure_video_guide").bounding_box()["height"] < 450  # portrait guide stays boxed
    screenshot(page, "layout_done")


def test_cancel_is_a_neutral_status_and_clears_the_panels(page, tmp_path):
    _upload_small(page, tmp_path, "long.mp4", frames=120, width=640, height=360)
    _fill(page, "structure_video_resolution", "832x480")
    _fill(page, "structure_video_frames", "120")
    page.locator("#structure_video_extract").click()
    page.wait_for_function("!document.querySelector('#structure_video_cancel').disabled")
    page.wait_for_function("document.querySelector('#structure_video_status .progress-text')")
    page.locator("#structure_video_cancel").click()
    page.wait_for_function("document.querySelector('#structure_video_status')?.innerText.includes('Cancelled')",
                           timeout=120_000)
    status = page.locator("#structure_video_status").inner_text()
    assert "Cancelled — nothing was written" in status
    assert page.locator("#structure_video_guide video[src]").count() == 0
    assert page.locator("#structure_video_details").inner_text().strip() == ""
    assert page.locator("#structure_video_preview img[src]").count() == 0
    assert page.locator(".toast-body.error").count() == 0  # no red "Error" toast
    assert page.get_by_text("Error", exact=True).count() == 0  # no Error badge on any panel
    page.wait_for_function("document.querySelector('#structure_video_cancel').disabled")
    screenshot(page, "cancelled")


def test_an_error_after_a_success_clears_the_stale_results(page, tmp_path):
    _extract_small(page, tmp_path)
    assert "8 frames" in page.locator("#structure_video_details").inner_text()
    _fill(page, "structure_video_resolution", "banana")
    page.locator("#structure_video_extract").click()
    page.get_by_text("banana").first.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('#structure_video_cancel').disabled")
    assert page.locator("#structure_video_guide video[src]").count() == 0
    assert page.locator("#structure_video_details").inner_text().strip() == ""
    assert page.locator("#structure_video_preview img[src]").count() == 0
    status = page.locator("#structure_video_status")
    page.wait_for_function("document.querySelector('#structure_video_status').innerText.includes('Not extracted')")
    assert "banana" in status.inner_text() and "Done" not in status.inner_text()  # no stale "Done"
    screenshot(page, "error_after_success")


def test_typing_a_preview_frame_and_enter_updates_the_preview(page, tmp_path):
    _extract_small(page, tmp_path)
    image = page.locator("#structure_video_preview img").first
    first = image.get_attribute("src")
    box = page.locator("#structure_video_preview_frame input[type=number]").first
    box.fill("6")
    box.press("Enter")
    page.wait_for_function("(old) => { const img = document.querySelector('#structure_video_preview img');"
                           " return img && img.getAttribute('src') !== old; }", arg=first, timeout=60_000)
    assert image.get_attribute("src") != first
    screenshot(page, "preview_frame_typed")


def test_depth_with_contrast_from_more_settings(page, tmp_path, monkeypatch):
    """Type Depth, Depth contrast set under More settings: a grey guide comes back and its details name
    the depth model. The weights are a tiny random-weight model found where a downloaded transformers
    model would be (the local Hugging Face cache; the app runs in this process)."""
    pytest.importorskip("transformers")
    import numpy as np

    from wan2gp_structure_video.preprocessors.weights import depth_weights
    from wan2gp_structure_video.preprocessors.annotators.depth_model import build_depth_model
    from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

    tiny = depth_weights.DepthArchitecture("custom", hidden=32, layers=4, heads=2, out_indices=(1, 2, 3, 4),
                                           features=8, out_channels=(4, 8, 16, 32), image_size=70)
    build_depth_model(tiny, seed=0).save_pretrained(tmp_path / "tiny-depth")
    monkeypatch.setattr(depth_weights, "hub_cache_folder", lambda *args, **kw: str(tmp_path / "tiny-depth"))
    _upload_small(page, tmp_path)
    _fill(page, "structure_video_resolution", "128x96")
    _fill(page, "structure_video_frames", "8")
    _fill(page, "structure_video_fps", "8")
    page.locator("#structure_video_type").get_by_text("Depth (near = bright)").click()
    page.locator("#structure_video_more").get_by_text("More settings").click()
    contrast = page.locator("#structure_video_depth_contrast input[type=number]")
    contrast.wait_for()
    assert page.locator("#structure_video_depth_smoothing").is_visible()
    _type_into_revealed(page, contrast, "2")
    screenshot(page, "depth_settings")
    page.locator("#structure_video_extract").click()
    page.wait_for_selector("#structure_video_guide video[src]", timeout=180_000)
    page.wait_for_function("document.querySelector('#structure_video_status')?.innerText.includes('Done')")
    details = page.locator("#structure_video_details").inner_text()
    assert "Depth model:" in details, details
    assert "Brightness: contrast 2, one brightness range for the whole clip" in details, details
    screenshot(page, "depth_done")
    frames = list(iter_frames(_guide_file(page)))
    assert len(frames) == 8 and all(int(np.abs(f.astype(int) - f[..., :1]).max()) <= 3 for f in frames)  # grey


def _guide_file(page) -> str:
    """The local path of the guide the page plays (Gradio serves it as ``…/file=<path>``)."""
    from urllib.parse import unquote

    src = page.locator("#structure_video_guide video").get_attribute("src")
    assert src and "file=" in src, src
    return unquote(src.split("file=", 1)[1])


def test_the_raw_data_download_appears_after_extract(page, tmp_path):
    _extract_small(page, tmp_path)
    page.locator("#structure_video_export_panel").get_by_text("Raw data (flows, depth maps or keypoints)").click()
    page.locator("#structure_video_export").click()
    page.wait_for_function(
        "document.querySelector('#structure_video_export_status')?.innerText.includes('from the cache')")
    status = page.locator("#structure_video_export_status").inner_text()
    assert "Exported flow flows.npy (11, 96, 128, 2)" in status
    link = page.locator("#structure_video_export_file a").first
    with page.expect_download() as download:
        link.click()
    target = tmp_path / "raw.zip"
    download.value.save_as(target)
    with zipfile.ZipFile(target) as archive:
        assert sorted(Path(n).name for n in archive.namelist()) == ["export.json", "flows.npy"]
    assert screenshot(page, "raw_export").stat().st_size > 0
