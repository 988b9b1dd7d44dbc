"""The plugin against a recording fake Wan2GP host that loads it through the host's own steps.

The repository is linked under an arbitrary folder name in a fake ``plugins/`` dir placed first on
``sys.path``; a fake ``shared.utils.plugins`` provides the base class; ``<folder>.plugin`` is imported
and the single subclass picked with the host's filter; then ``setup_ui`` → globals injected →
components set and ``post_ui_setup`` twice → tabs built (with an API session) inside ``gr.Blocks``.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

gr = pytest.importorskip("gradio")

REPO = Path(__file__).resolve().parents[1]


# The fake host ------------------------------------------------------------------------------------

class HostBase:
    """Wan2GP's WAN2GPPlugin, reduced to what the loader and the plugin touch."""

    def __init__(self):
        self.tabs = {}
        self.name = self.__class__.__name__
        self._component_requests, self._global_requests = [], []
        self._insert_after_requests, self._data_hooks, self._custom_js_snippets = [], {}, []
        self._set_wgp_global_func = None

    def setup_ui(self):
        pass

    def add_tab(self, tab_id, label, component_constructor, position=-1):
        self.tabs[tab_id] = types.SimpleNamespace(id=tab_id, label=label, component_constructor=component_constructor)

    def post_ui_setup(self, components):
        return {}

    def on_tab_select(self, state):
        pass

    def on_tab_deselect(self, state):
        pass

    def on_model_change(self, state, model_type):
        pass

    def request_component(self, component_id):
        if component_id not in self._component_requests:
            self._component_requests.append(component_id)

    def request_global(self, global_name):
        if global_name not in self._global_requests:
            self._global_requests.append(global_name)

    def set_global(self, variable_name, new_value):
        if self._set_wgp_global_func:
            return self._set_wgp_global_func(variable_name, new_value)

    @property
    def component_requests(self):
        return self._component_requests.copy()

    @property
    def global_requests(self):
        return self._global_requests.copy()

    def register_data_hook(self, hook_name, callback):
        self._data_hooks.setdefault(hook_name, []).append(callback)

    def add_custom_js(self, js_code):
        self._custom_js_snippets.append(js_code)

    def insert_after(self, target_component_id, new_component_constructor):
        self._insert_after_requests.append((target_component_id, new_component_constructor))


class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
        return record

    def names(self):
        return [call[0] for call in self.calls]


class FakeJob:
    def __init__(self, settings, callbacks, outfile):
        self.settings, self.callbacks, self.cancelled_flag = settings, callbacks, False
        self._outfile = outfile
        self.done = True

    def result(self):
        self.callbacks.on_status("Denoising")
        self.callbacks.on_progress(types.SimpleNamespace(progress=50))
        return types.SimpleNamespace(success=True, generated_files=[self._outfile], errors=[], cancelled=False)

    def cancel(self):
        self.cancelled_flag = True


class FakeSession:
    def __init__(self, outfile):
        self.submitted: list[dict] = []
        self.outfile = outfile

    def submit_task(self, settings, callbacks=None):
        self.submitted.append(settings)
        return FakeJob(settings, callbacks, self.outfile)


def constructor_accepts_api(constructor) -> bool:
    """Wan2GP's rule: a constructor with at least one positional parameter gets the API session."""
    params = list(inspect.signature(constructor).parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 1


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """Install the fake host modules; yield a namespace; undo everything afterwards."""
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    folder = "some_structure_plugin"
    (plugins_dir / folder).symlink_to(REPO, target_is_directory=True)
    monkeypatch.syspath_prepend(str(plugins_dir))
    recorder = Recorder()

    shared = types.ModuleType("shared")
    utils = types.ModuleType("shared.utils")
    plugins_mod = types.ModuleType("shared.utils.plugins")
    plugins_mod.WAN2GPPlugin = HostBase
    locks = types.ModuleType("shared.utils.process_locks")
    for name in ("acquire_GPU_ressources", "release_GPU_ressources", "register_GPU_resident",
                 "unregister_GPU_resident"):
        setattr(locks, name, recorder(name))
    registry = types.ModuleType("shared.utils.offload_registry")
    registry.register_offloadobj = recorder("register_offloadobj")
    registry.unregister_offloadobj = recorder("unregister_offloadobj")
    shared.utils, utils.plugins, utils.process_locks, utils.offload_registry = utils, plugins_mod, locks, registry

    wgp = types.ModuleType("wgp")
    wgp.original_clear_gen_cache = recorder("clear_gen_cache")
    wgp.clear_gen_cache = wgp.original_clear_gen_cache
    wgp.server_config = {"save_path": str(tmp_path / "outputs")}
    wgp.get_model_def = lambda model_type: {"fps": 16} if model_type in ("vace_1.3B", "t2v") else None
    wgp.test_vace_module = lambda model_type: "vace" in model_type

    def set_wgp_global(name, value):
        if not hasattr(wgp, name):
            raise KeyError(name)
        recorder("set_global")(name, value)
        setattr(wgp, name, value)

    wgp.set_wgp_global = set_wgp_global
    for name, module in {"shared": shared, "shared.utils": utils, "shared.utils.plugins": plugins_mod,
                         "shared.utils.process_locks": locks, "shared.utils.offload_registry": registry,
                         "wgp": wgp}.items():
        monkeypatch.setitem(sys.modules, name, module)
    ns = types.SimpleNamespace(folder=folder, recorder=recorder, wgp=wgp, plugins_dir=plugins_dir)
    yield ns
    plugin = getattr(ns, "plugin", None)
    if plugin is not None and hasattr(plugin, "uninstall_hooks"):
        plugin.uninstall_hooks()
    for name in [n for n in sys.modules if n == folder or n.startswith(folder + ".")]:
        del sys.modules[name]


def load_like_the_host(ns):
    module = importlib.import_module(f"{ns.folder}.plugin")
    base = sys.modules["shared.utils.plugins"].WAN2GPPlugin
    found = [obj for _name, obj in inspect.getmembers(module, inspect.isclass)
             if issubclass(obj, base) and obj != base]
    assert len(found) == 1, found
    plugin = found[0]()
    plugin.setup_ui()
    ns.plugin = plugin
    return plugin


def inject_globals(plugin, ns, names=None):
    plugin._set_wgp_global_func = ns.wgp.set_wgp_global
    for name in plugin.global_requests:
        if names is None or name in names:
            if hasattr(ns.wgp, name):
                setattr(plugin, name, getattr(ns.wgp, name))


def host_form(state_value: dict, include=None) -> dict:
    """The host's generate form (called inside a Blocks); returns components by id."""
    components: dict[str, Any] = {"state": gr.State(state_value)}
    with gr.Tabs() as main_tabs:
        with gr.Tab("Media Generator", id="media_gen"):
            components["video_guide"] = gr.Video(label="Control video")
            components["video_prompt_type"] = gr.Text(value="PVA")
            components["video_length"] = gr.Slider(5, 241, value=81, step=4)
            components["resolution"] = gr.Text(value="832x480")
            components["force_fps"] = gr.Text(value="")
            components["refresh_form_trigger"] = gr.Text(visible=False)
            components["model_choice_target"] = gr.Text(visible=False)
    components["main_tabs"] = main_tabs
    if include is not None:
        components = {k: v for k, v in components.items() if k in include}
    return components


def set_components_and_post_setup(plugin, components):
    for comp_id in plugin.component_requests:
        if comp_id in components and getattr(plugin, comp_id, None) is None:
            setattr(plugin, comp_id, components[comp_id])
    return plugin.post_ui_setup({k: components[k] for k in plugin.component_requests if k in components})


def build_tabs(plugin, session):
    for tab in plugin.tabs.values():
        with gr.Tab(tab.label, id=f"plugin_{tab.id}"):
            if constructor_accepts_api(tab.component_constructor):
                tab.component_constructor(session)
            else:
                tab.component_constructor()


def event_fn(demo, name: str):
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    for block_fn in fns:
        if getattr(block_fn.fn, "__name__", "") == name:
            return block_fn
    raise LookupError(name)


STATE = {"model_type": "t2v", "active_form": "add",
         "all_settings": {"t2v": {"resolution": "1280x720", "video_length": 49, "force_fps": ""}}}


# Tests ----------------------------------------------------------------------------------------------

def test_loads_through_the_host_steps_and_installs_hooks_once(fake_host, tmp_path):
    plugin = load_like_the_host(fake_host)
    assert type(plugin).__name__ == "StructureVideoPlugin"
    assert isinstance(plugin, HostBase)
    assert set(plugin.tabs) == {"structure_video"} and plugin.tabs["structure_video"].label == "Structure Video"
    for comp in ("state", "main_tabs", "video_guide", "video_prompt_type", "video_length", "resolution",
                 "force_fps", "refresh_form_trigger", "model_choice_target"):
        assert comp in plugin.component_requests
    assert "clear_gen_cache" in plugin.global_requests
    inject_globals(plugin, fake_host)
    session = FakeSession(str(tmp_path / "generated.mp4"))
    with gr.Blocks() as demo:
        generate_form = host_form(STATE)
        assert set_components_and_post_setup(plugin, generate_form) in ({}, None)
        edit_form = host_form(STATE)
        set_components_and_post_setup(plugin, edit_form)
        build_tabs(plugin, session)
    # hooks: clear_gen_cache wrapped exactly once, the original still runs
    assert fake_host.recorder.names().count("set_global") == 1
    assert fake_host.wgp.clear_gen_cache is not fake_host.wgp.original_clear_gen_cache
    pool = plugin._hooks.pool  # a built annotator is released by the host's call, then the original runs
    pool.register("contract-probe", lambda: torch.nn.Linear(2, 2), replace=True)
    with pool.use("contract-probe", "cpu", teardown="keep"):
        pass
    before = fake_host.recorder.names().count("clear_gen_cache")
    fake_host.wgp.clear_gen_cache()
    assert not pool.is_built("contract-probe")
    assert fake_host.recorder.names().count("clear_gen_cache") == before + 1
    assert plugin._hooks.memory_state()["host_released"][-1:] == ["contract-probe"]
    pool.release("contract-probe")
    # the memory endpoint: Gradio can describe the API (Wan2GP's start-up page check needs it, under 5.29 too)
    assert "/structure_video_memory" in demo.get_api_info()["named_endpoints"]
    # the tab is hosted, talks to the generate form (first post_ui_setup), got the API session
    handles = plugin.handles
    assert handles.hosted and handles.api_session is session
    assert plugin.host_components()["video_guide"] is generate_form["video_guide"]
    assert {"send", "generate", "abort", "from_host"} <= set(handles.components)
    send = event_fn(demo, "send")
    assert send.outputs[:2] == [generate_form["refresh_form_trigger"], generate_form["model_choice_target"]]
    assert any(generate_form["main_tabs"] in fn.outputs for fn in _fns(demo))  # the tab switch follows Send
    assert plugin.on_tab_outputs == [handles[k] for k in ("resolution", "frames", "fps")]
    # on_tab_select prefills the target from the generator's current model settings …
    state = {**STATE}
    assert plugin.on_tab_select(state) == ("1280x720", 49, 16.0)
    # … until the user types a target; "take from the Video Generator" prefills again
    request = browser_session(plugin, state)
    event_fn(demo, "mark_edited").fn(request)
    assert all(isinstance(v, dict) and v.get("__type__") == "update" and len(v) == 1 for v in plugin.on_tab_select(state))
    assert event_fn(demo, "take_target").fn(request) == ("1280x720", 49, 16.0)
    assert plugin.on_tab_select(state) == ("1280x720", 49, 16.0)


def browser_session(plugin, state, run=None, key="session-1"):
    """A browser session whose host ``state`` (and last extraction ``run``) the tab's handlers find
    through the session store, as in a live app; returns its request."""
    deps = plugin.handles.deps
    deps.blocks = types.SimpleNamespace(state_holder={key: {deps.state_component._id: state}})
    request = types.SimpleNamespace(session_hash=key)
    if run is not None:
        deps.set_run(request, run)
    return request


def _fns(demo):
    return list(demo.fns.values() if isinstance(demo.fns, dict) else demo.fns)


def test_send_to_generator_and_generate_with_vace(fake_host, tmp_path):
    from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

    plugin = load_like_the_host(fake_host)
    inject_globals(plugin, fake_host)
    session = FakeSession(str(tmp_path / "generated.mp4"))
    with gr.Blocks() as demo:
        form = host_form(STATE)
        set_components_and_post_setup(plugin, form)
        build_tabs(plugin, session)
    guide = write_sample_video(tmp_path / "guide.mp4", width=128, height=96, frames=9, fps=16)
    run = {"guide": str(guide), "source": str(guide), "fit": "crop", "indices": list(range(9)), "frames": 9,
           "resolution": "128x96", "fps": 16.0}
    send = event_fn(demo, "send")
    # the current model (t2v) is not a VACE model: Send writes the guide into a VACE model's settings
    # and switches the generator to it; nothing is written into the t2v settings
    state = {"model_type": "t2v", "active_form": "add", "all_settings": {"t2v": {"video_prompt_type": "PVA"}}}
    refresh, target, status = send.fn(browser_session(plugin, state, run))
    vace = state["all_settings"]["vace_1.3B"]
    assert vace["video_guide"] == str(Path(guide).resolve()) and vace["video_prompt_type"] == "V"
    assert vace["video_length"] == 9 and vace["resolution"] == "128x96" and vace["force_fps"] == "control"
    assert state["all_settings"]["t2v"] == {"video_prompt_type": "PVA"}
    assert target.startswith("vace_1.3B|") and isinstance(refresh, dict) and "vace_1.3B" in status
    assert state["ignore_save_form"] and state["skip_resolution_transfer_on_model_switch"] == "vace_1.3B"
    # the current model is a VACE one: its live settings, through the host's own functions
    calls = []
    live = {"video_prompt_type": "PVA", "video_guide": None, "resolution": "832x480"}
    fake_host.wgp.get_current_model_settings = lambda st: live
    fake_host.wgp.update_video_prompt_type = lambda st, **kw: (calls.append(kw), live.update(
        video_prompt_type=live["video_prompt_type"] + "V"))
    state = {"model_type": "vace_1.3B", "all_settings": {"vace_1.3B": live}}
    refresh, target, status = send.fn(browser_session(plugin, state, run))
    assert calls == [{"any_video_guide": True, "process_type": ""}]
    assert live["video_guide"] == str(Path(guide).resolve()) and live["video_prompt_type"] == "AV"
    assert live["video_length"] == 9 and live["resolution"] == "128x96"
    assert float(refresh) > 0 and isinstance(target, dict) and "switches" not in status
    with pytest.raises(gr.Error):
        send.fn(browser_session(plugin, state, key="no-extraction-yet"))

    generate = event_fn(demo, "generate")
    video, status = generate.fn("a cat walking", gr.Progress(), browser_session(plugin, {**STATE}, run))
    settings = session.submitted[-1]
    assert settings["model_type"] == "vace_1.3B"
    assert settings["video_guide"] == os.path.abspath(guide) and os.path.isabs(settings["video_guide"])
    assert settings["video_prompt_type"] == "V"
    assert settings["video_length"] == 9 and settings["resolution"] == "128x96"
    assert settings["force_fps"] == "control" and settings["prompt"] == "a cat walking"
    assert "state" not in settings
    assert video == str(tmp_path / "generated.mp4") and "Done" in status


def test_missing_globals_and_components_are_tolerated(fake_host):
    plugin = load_like_the_host(fake_host)
    inject_globals(plugin, fake_host, names=())  # the host had none of them
    with gr.Blocks():
        form = host_form(STATE, include={"state"})
        set_components_and_post_setup(plugin, form)
        set_components_and_post_setup(plugin, form)
        build_tabs(plugin, None)
    handles = plugin.handles
    assert not handles.hosted and "send" not in handles.components and "generate" not in handles.components
    assert "extract" in handles.components


def test_partial_host_form_still_sends(fake_host):
    plugin = load_like_the_host(fake_host)
    inject_globals(plugin, fake_host)
    with gr.Blocks() as demo:
        form = host_form(STATE, include={"state", "refresh_form_trigger"})
        set_components_and_post_setup(plugin, form)
        build_tabs(plugin, None)
    assert plugin.handles.hosted and "generate" not in plugin.handles.components
    send = event_fn(demo, "send")
    assert send.outputs[0] is form["refresh_form_trigger"]


def _uses_api_session(fn, session) -> bool:
    """Wan2GP's rule (``_callback_uses_api_session`` in shared/api_webui.py) while its session is still
    unset: a callback matches when its defaults, closure cells or referenced globals hold the session
    object or None. tests/host/ checks the host's own function."""
    values = list(getattr(fn, "__defaults__", None) or ()) + list((getattr(fn, "__kwdefaults__", None) or {}).values())
    values += [cell.cell_contents for cell in getattr(fn, "__closure__", None) or ()]
    try:
        values += list(inspect.getclosurevars(fn).globals.values())
    except TypeError:
        pass
    return any(value is None or value is session for value in values)


def test_only_generate_is_an_api_session_click(fake_host, tmp_path):
    plugin = load_like_the_host(fake_host)
    inject_globals(plugin, fake_host)
    session = FakeSession(str(tmp_path / "generated.mp4"))
    with gr.Blocks() as demo:
        set_components_and_post_setup(plugin, host_form(STATE))
        build_tabs(plugin, session)
    assert _uses_api_session(event_fn(demo, "generate").fn, session)
    for name in ("extract", "begin", "finish", "cancel", "abort", "send", "use_sample", "take_target",
                 "ask_clear", "confirm_clear", "prune"):
        assert not _uses_api_session(event_fn(demo, name).fn, session), name


def test_standalone_app_uses_the_same_plugin_class():
    from wan2gp_structure_video.plugin import StructureVideoPlugin
    from wan2gp_structure_video.ui.standalone import build_app

    demo, plugin = build_app()
    try:
        assert type(plugin) is StructureVideoPlugin
        assert not plugin.handles.hosted and "send" not in plugin.handles.components
        assert plugin._hooks is not None and plugin._hooks.installed
    finally:
        plugin.uninstall_hooks()


def test_plugin_module_exposes_exactly_one_subclass_standalone():
    from wan2gp_structure_video import plugin as module
    from wan2gp_structure_video.ui.compat import WAN2GPPlugin

    found = [obj for _n, obj in inspect.getmembers(module, inspect.isclass)
             if issubclass(obj, WAN2GPPlugin) and obj is not WAN2GPPlugin]
    assert [cls.__name__ for cls in found] == ["StructureVideoPlugin"]


def test_plugin_info_and_requirements():
    import json

    info = json.loads((REPO / "plugin_info.json").read_text())
    for key in ("name", "version", "description", "author", "url", "type", "wan2gp_version"):
        assert info.get(key), key
    assert set(info["type"]) == {"app", "processor"}
    pinned_by_host = {"gradio", "numpy", "mmgp", "torch", "torchvision", "opencv-python", "opencv-python-headless", "av"}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = line.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
            assert name not in pinned_by_host, line


def test_host_bridge_pure_functions():
    from wan2gp_structure_video.ui import host_bridge as hb

    assert hb.merge_video_prompt_type("PVA") == "AV"
    assert hb.merge_video_prompt_type("ULV") == "V"
    assert hb.merge_video_prompt_type(None) == "V"
    assert hb.merge_video_prompt_type("VI") == "IV"
    assert hb.target_from_host({}) == hb.Target()
    assert hb.target_from_host({"model_type": "x", "all_settings": {"x": {"resolution": "bad", "video_length": "z",
                                                                         "force_fps": "24"}}}) == \
        hb.Target("832x480", 81, 24.0)
    assert hb.target_from_host({"active_form": "edit", "edit_model_type": "e", "model_type": "m",
                                "all_settings": {"e": {"video_length": 33}}}).frames == 33
    assert hb.normalize_resolution((640, 352)) == "640x352"
    assert hb.weights_locator(object()) is None


def test_readme_catalog_entry_matches_plugin_info():
    """The plugins.json entry the README proposes parses and says what plugin_info.json says."""
    import json
    import re

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("**Catalog entry**"):]
    entry = json.loads(re.search(r"```json\n(.*?)\n```", section, re.S).group(1))
    info = json.loads((REPO / "plugin_info.json").read_text())
    for key in ("name", "author", "version", "description", "url", "wan2gp_version"):
        assert entry[key] == info[key], key
    assert re.fullmatch(r"https://github\.com/[^/]+/[^/]+", entry["url"])


def test_no_tab_event_takes_client_side_state(fake_host, tmp_path):
    """Per-session data (the last run's file paths, the host's state) stays on the server, keyed by the
    browser session: no event of the tab takes a gr.State input whose value the client sends back."""
    plugin = load_like_the_host(fake_host)
    inject_globals(plugin, fake_host)
    with gr.Blocks() as demo:
        form = host_form(STATE)
        set_components_and_post_setup(plugin, form)
        build_tabs(plugin, FakeSession(str(tmp_path / "g.mp4")))
    ours = [fn for fn in _fns(demo) if "wan2gp_structure_video" in getattr(fn.fn, "__module__", "")
            or fake_host.folder in getattr(fn.fn, "__module__", "")]
    assert len(ours) >= 12
    for block_fn in ours:
        assert not [c for c in block_fn.inputs if isinstance(c, gr.State)], block_fn.fn.__name__
