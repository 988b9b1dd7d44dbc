"""Structure Video installed and driven through Wan2GP's own plugin machinery (see conftest.py)."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_wgp  # noqa: E402
from wan2gp_structure_video.preprocessors.video.sample_video import SAMPLE_FRAMES  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
REPO_NAME = "wan2gp-structure-video"
URL = f"https://github.com/example-author/{REPO_NAME}"
ARTIFACTS = Path(os.environ.get("STRUCTURE_VIDEO_ARTIFACTS", REPO / "test-artifacts" / "host"))
CHROMIUM = os.environ.get("STRUCTURE_VIDEO_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
#: The weight files of Vace 1.3B (its transformer and its VACE module) in Wan2GP's model definitions.
VACE_1_3B_FILES = ("wan2.1_text2video_1.3B_mbf16.safetensors", "wan2.1_Vace_1_3B_module.safetensors")
STATE = {"model_type": "vace_1.3B", "active_form": "add",
         "all_settings": {"vace_1.3B": {"resolution": "832x480", "video_length": 81, "video_prompt_type": "PV",
                                        "video_guide": None, "force_fps": "", "prompt": ""}},
         "gen": {"queue": [], "file_list": [], "audio_file_list": []}}


@pytest.fixture(scope="module")
def installed(host_modules, tmp_path_factory):
    """The plugin installed from a GitHub URL by the host's ``install_plugin_from_url``: git's
    ``url.<base>.insteadOf`` points the URL at a local clone of this repository's committed HEAD."""
    work = tmp_path_factory.mktemp("wan2gp")
    mirror = work / "mirror" / "example-author" / REPO_NAME
    subprocess.run(["git", "clone", "--quiet", "--bare", str(REPO), str(mirror)], check=True)
    gitconfig = work / "gitconfig"
    gitconfig.write_text(f'[url "file://{work / "mirror"}/"]\n\tinsteadOf = https://github.com/\n')
    old = {k: os.environ.get(k) for k in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM")}
    os.environ.update(GIT_CONFIG_GLOBAL=str(gitconfig), GIT_CONFIG_NOSYSTEM="1")
    cwd = os.getcwd()
    os.chdir(work)  # the host keeps its catalogs in its working folder
    try:
        manager = host_modules.plugins.PluginManager(plugins_dir=str(work / "plugins"))
        manager.set_server_config({"enabled_plugins": []}, str(work / "wgp_config.json"))
        message = manager.install_plugin_from_url(URL)
    finally:
        os.chdir(cwd)
        for key, value in old.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    yield types_ns(work=work, manager=manager, message=message, plugin_dir=work / "plugins" / REPO_NAME)


def types_ns(**kw):
    import types

    return types.SimpleNamespace(**kw)


def test_install_from_url_clones_the_committed_head(installed):
    assert installed.message.startswith("[Success]"), installed.message
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    cloned = subprocess.run(["git", "-C", str(installed.plugin_dir), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout
    assert cloned == head and (installed.plugin_dir / "plugin.py").is_file()


def cli_backed_session_class(host_modules):
    """The host's ``GradioWanGPSession`` (its ``plugin_ui_context``, click wrapper, callback binding and
    progress forwarding unchanged) whose jobs run on the host's CLI runner (``shared/api_cli.py`` →
    the fake's ``validate_task`` / ``generate_media`` recorder) instead of the main web queue, which
    needs the real ``wgp``. Like a web-queue job, a submitted job hands a load-queue token back, so
    the wrapper's follow-up step (the one that shows progress) runs as it does in Wan2GP."""
    import time

    base = host_modules.api_webui.GradioWanGPSession

    class CliBackedSession(base):
        def _ensure_session(self):
            if self._session is None:
                self._session = host_modules.api.WanGPSession(root=host_modules.root, console_output=False)
            return self._session

        def submit_task(self, settings, callbacks=None):
            job = super().submit_task(settings, callbacks)
            job._webui_load_queue_token = str(time.time_ns())
            job._mark_webui_submission_ready()
            return job

    return CliBackedSession


@pytest.fixture(scope="module")
def app(installed, host_modules):
    """Enable, load (the host's loader), inject globals, build the generate form, ``post_ui_setup`` twice
    (generate and edit forms), build the plugin tabs with the host's ``WAN2GPApplication`` (its API
    session and ``plugin_ui_context``) and its tab events."""
    outputs = installed.work / "outputs"
    wgp = fake_wgp.make_module(host_modules.root, outputs)
    (outputs / "ckpts").mkdir(parents=True, exist_ok=True)
    for name in VACE_1_3B_FILES:  # the user has downloaded Vace 1.3B (Send picks it from t2v)
        (outputs / "ckpts" / name).write_bytes(b"")
    original_clear_gen_cache = wgp.clear_gen_cache
    fake_wgp.install(wgp)
    wgp.server_config["enabled_plugins"] = [REPO_NAME]
    manager = installed.manager
    manager.load_plugins_from_directory([REPO_NAME])
    plugin = manager.plugins[REPO_NAME]
    plugin._wangp_session = cli_backed_session_class(host_modules)(init_fn=None, plugin=plugin)
    manager.inject_globals({**vars(wgp), "set_wgp_global": wgp.set_wgp_global})
    application = host_modules.plugins.WAN2GPApplication.__new__(host_modules.plugins.WAN2GPApplication)
    application.plugin_manager, application.tab_to_plugin_map = manager, {}
    application.all_rendered_tabs, application.enabled_plugins = [], [REPO_NAME]
    with gr.Blocks() as demo:
        with gr.Tabs(selected="media_gen") as main_tabs:
            with gr.Tab("Media Generator", id="media_gen"):
                form = fake_wgp.build_generate_form(wgp, {**STATE})
            form["main_tabs"] = main_tabs
            with gr.Tab("Edit", id="edit"):
                edit_form = fake_wgp.build_generate_form(wgp, {**STATE}, main=False)
                edit_form["main_tabs"] = main_tabs
            manager.run_component_insertion_and_setup(form)
            manager.run_component_insertion_and_setup(edit_form)
            application._create_plugin_tabs(main_tabs, form["state"])
        save_fields = [form[name] for name in fake_wgp.FORM_FIELDS]

        def set_save_form_event(trigger):  # wgp's: selecting a plugin tab first saves the generator's form
            return trigger(fn=form["save_inputs"], inputs=[form["state"], *save_fields], outputs=None)

        application._setup_tab_events(main_tabs, form["state"], set_save_form_event)
    demo.queue()
    wgp.app = application
    yield types_ns(demo=demo, plugin=plugin, wgp=wgp, form=form, edit_form=edit_form, outputs=outputs,
                   application=application, original_clear_gen_cache=original_clear_gen_cache)
    plugin.uninstall_hooks()
    sys.modules.pop("wgp", None)


def test_loaded_by_the_host_with_hooks_once_and_the_generate_form(app):
    plugin = app.plugin
    assert type(plugin).__name__ == "StructureVideoPlugin"
    assert plugin.host_components()["refresh_form_trigger"] is app.form["refresh_form_trigger"]
    assert plugin.handles.hosted and plugin.handles.api_session is plugin._wangp_session
    # the host's tab-select event (wired by its WAN2GPApplication) writes into our target fields
    fns = list(app.demo.fns.values() if isinstance(app.demo.fns, dict) else app.demo.fns)
    selects = [fn for fn in fns if getattr(fn.fn, "__name__", "") == "_handle_one_tab_selection"]
    assert [[c._id for c in fn.outputs] for fn in selects] == [
        [c._id for c in (plugin.handles.components["resolution"], plugin.handles.components["frames"],
                         plugin.handles.components["fps"])]]


def test_the_hosts_clear_gen_cache_releases_the_pool(app):
    """``wgp.clear_gen_cache`` is our wrapper (set through the host's ``set_wgp_global``, once for two
    ``post_ui_setup`` calls); the host's own ``release_model`` then releases a built annotator, and the
    host's original still runs, once."""
    import torch

    wrapper = app.wgp.clear_gen_cache
    assert wrapper is not app.original_clear_gen_cache
    assert getattr(wrapper, "_structure_video_original") is app.original_clear_gen_cache
    hooks = app.plugin._hooks
    pool = hooks.pool
    pool.register("probe", lambda: torch.nn.Linear(2, 2), replace=True)
    with pool.use("probe", "cpu", teardown="keep"):
        pass
    assert pool.is_built("probe")
    before = len(app.wgp.calls)
    app.wgp.release_model()  # the host's own path: looks clear_gen_cache up at call time
    assert not pool.is_built("probe")
    assert app.wgp.calls[before:] == [("clear_gen_cache",)]
    state = hooks.memory_state()
    assert state["host_released"][-1:] == ["probe"]
    # the same answer through the plugin's API endpoint, whose schema the API page (Wan2GP's start-up check
    # loads it with the page) can describe
    assert "/structure_video_memory" in app.demo.get_api_info()["named_endpoints"] and state["annotators"]["probe"]["built"] is False


def test_only_generate_goes_through_the_api_session_wrapper(app, host_modules):
    """The host's own ``_callback_uses_api_session`` (session still unset) judges our click callbacks."""
    fns = list(app.demo.fns.values() if isinstance(app.demo.fns, dict) else app.demo.fns)
    by_name = {getattr(fn.fn, "__name__", ""): fn for fn in fns}
    probe = host_modules.api_webui.GradioWanGPSession(init_fn=None)
    from wan2gp_structure_video.ui import extract_panel, generator_panel
    from wan2gp_structure_video.ui.deps import bind, bind_with_session

    deps = app.plugin.handles.deps
    assert not probe._callback_uses_api_session(bind(extract_panel.extract, deps))
    assert not probe._callback_uses_api_session(bind(extract_panel.cancel, deps))
    assert not probe._callback_uses_api_session(bind(generator_panel.abort, deps))
    assert probe._callback_uses_api_session(bind_with_session(generator_panel.generate, deps, probe))
    # in the built app: Extract and Cancel are plain Gradio events with their own progress …
    assert by_name["extract"].show_progress == "full" and by_name["extract"].api_name == "extract"
    # … while Generate was wrapped by the host (its start step hides progress, a follow-up shows it)
    assert by_name["generate"].show_progress == "hidden"


def test_generate_task_passes_the_hosts_normalisation_and_validation(app, host_modules, tmp_path):
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
    from wan2gp_structure_video.ui import host_bridge

    guide = write_sample_video(app.outputs / "structure_video" / "g.mp4", width=128, height=96, frames=9, fps=16)
    state = {**STATE}
    settings = host_bridge.vace_task_settings(str(guide), 9, "128x96", host_bridge.pick_vace_model_type(state, app.plugin),
                                              prompt="a cat", base=host_bridge.current_model_settings(state))
    session = host_modules.api.WanGPSession(root=host_modules.root, console_output=False)
    task = session._normalize_task(settings, task_index=1)
    task = session._absolutize_task_paths(task, Path.cwd())
    params = task["params"]
    assert params["model_type"] == "vace_1.3B" and params["video_guide"] == str(guide.resolve())
    assert params["video_prompt_type"] == "V" and params["force_fps"] == "control" and task["length"] == 9
    result = session.run_task(settings)  # the host's CLI runner → the fake's generation recorder
    assert result.success and result.generated_files and Path(result.generated_files[0]).is_file()
    assert app.wgp.generated[-1]["video_guide"] == str(guide.resolve())


@pytest.mark.browser
def test_in_the_browser_extract_send_generate(app):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    sys.path.insert(0, str(REPO / "tests"))
    from ui_helpers import free_port

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    allowed_paths=[str(app.outputs)])
    messages: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.on("console", lambda message: messages.append(message.text))
            page.set_default_timeout(60_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_role("tab", name="Structure Video").click()
            # the host's tab-select event prefilled the target from the generator's settings
            page.wait_for_function("document.querySelector('#structure_video_resolution textarea, "
                                   "#structure_video_resolution input')?.value === '832x480'")
            page.locator("#structure_video_sample").click()
            page.wait_for_function("document.querySelector('#structure_video_info')?.innerText"
                                   f".includes('{SAMPLE_FRAMES} frames')")
            for elem, value in (("structure_video_resolution", "320x192"), ("structure_video_frames", "17"),
                                ("structure_video_fps", "16")):
                field = page.locator(f"#{elem} input, #{elem} textarea").first
                field.fill(value)
                field.press("Tab")
            page.locator("#structure_video_backend").get_by_text("DIS (OpenCV, CPU, fast)").click()
            page.locator("#structure_video_extract").click()
            # Extract's own per-batch progress shows (stage done/total), not hidden by the host's wrapper
            page.wait_for_function(PROGRESS_JS, arg=r"(flow|render|decode|encode)\S* \d+/\d+", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "1_extract_progress.png"), full_page=True)
            page.wait_for_selector("#structure_video_guide video[src]", timeout=180_000)
            page.screenshot(path=str(ARTIFACTS / "2_extracted.png"), full_page=True)
            page.locator("#structure_video_send").click()
            page.wait_for_selector("#fake_wgp_video_guide video[src]", timeout=60_000)
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "3_after_send.png"), full_page=True)
            assert page.locator("#fake_wgp_video_guide").is_visible()
            settings = app.wgp.get_current_model_settings(_live_state(app))
            guide = Path(settings["video_guide"])
            assert guide.is_file() and guide.is_relative_to(app.outputs / "structure_video")
            assert "V" in settings["video_prompt_type"] and not set("PDESLCMUGBH") & set(settings["video_prompt_type"])
            assert settings["video_length"] == 17 and settings["resolution"] == "320x192"
            assert ("update_video_prompt_type", True, "") in app.wgp.calls
            # Generate with VACE: through the host's API-session wrapper; progress, then the result
            page.get_by_role("tab", name="Structure Video").click()
            page.wait_for_timeout(1500)  # the host's tab-select prefill has run: what the user typed stays
            assert page.locator("#structure_video_resolution textarea, #structure_video_resolution input").first \
                .input_value() == "320x192"
            page.locator("#structure_video_generate_panel").get_by_text("Generate with VACE").first.click()
            page.locator("#structure_video_prompt textarea").fill("a paper boat on a river")
            page.locator("#structure_video_generate").click()
            page.wait_for_function(PROGRESS_JS, arg=r"Denoising \d/4", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "4_generate_progress.png"), full_page=True)
            page.wait_for_selector("#structure_video_gen_video video[src]", timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "5_generated.png"), full_page=True)
            assert "Done" in page.locator("#structure_video_gen_status").inner_text()
            task = app.wgp.generated[-1]
            assert task["video_guide"] == str(guide) and task["prompt"] == "a paper boat on a river"
            assert task["model_type"] == "vace_1.3B" and task["video_prompt_type"] == "V"
            # the user switches the generator to a model that is not VACE (the host saves the VACE form first);
            # Send then picks the VACE model whose weights are downloaded and switches the generator to it
            page.get_by_role("tab", name="Media Generator").click()
            page.locator("#fake_wgp_model_choice input").click()
            page.get_by_role("option", name="t2v", exact=True).click()
            page.wait_for_function("document.querySelector('#fake_wgp_model')?.innerText.includes('t2v')")
            live = _live_state(app)
            assert live["model_type"] == "t2v" and ("save_inputs", "vace_1.3B") in app.wgp.calls
            page.get_by_role("tab", name="Structure Video").click()
            page.locator("#structure_video_send").click()
            page.wait_for_function("document.querySelector('#fake_wgp_model')?.innerText.includes('vace_1.3B')")
            page.wait_for_selector("#fake_wgp_video_guide video[src]")
            page.screenshot(path=str(ARTIFACTS / "6_after_send_with_model_switch.png"), full_page=True)
            assert ("change_model", "vace_1.3B") in app.wgp.calls and live["model_type"] == "vace_1.3B"
            assert live["all_settings"]["vace_1.3B"]["video_guide"] == str(guide)
            assert not live["all_settings"]["t2v"].get("video_guide") and live["all_settings"]["t2v"][
                "video_prompt_type"] == ""
            status = page.locator("#structure_video_send_status").inner_text()
            assert "Vace 1.3B" in status and "its weights are downloaded" in status, status
            browser.close()
    finally:
        app.demo.close()
    from wan2gp_structure_video.ui.compat import gradio_major

    if gradio_major() >= 6:  # Gradio 5's own client prints it for every event with inputs (tests/browser)
        assert not [m for m in messages if "Too many arguments" in m], messages


PROGRESS_JS = """(pattern) => {
  const re = new RegExp(pattern);
  return [...document.querySelectorAll('.progress-text, .progress-level, .meta-text, .meta-text-center, .eta-bar')]
    .some(e => re.test(e.innerText || ''));
}"""


def _live_state(app):
    """The per-session ``state`` of the (single) browser session."""
    holder = app.demo.state_holder
    sessions = list(getattr(holder, "session_data", {}).values()) or list(getattr(holder, "_data", {}).values())
    component_id = app.form["state"]._id
    for session_state in sessions:
        try:
            return session_state[component_id]
        except Exception:
            continue
    raise LookupError("no live state")
