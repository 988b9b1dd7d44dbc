"""A small stand-in for Wan2GP's ``wgp.py`` (which cannot be imported without its model stack),
registered as ``wgp``. It reproduces, from the reference, what the plugin touches: per-model settings
in ``state``, ``get_current_model_settings``, ``update_video_prompt_type``, a generate form whose
``refresh_form_trigger`` rebuilds the components from the settings (``fill_inputs``), the
``model_choice_target`` switch, ``clear_gen_cache`` / ``release_model``, the main tabs, the bridge
components of the API session, and — for the API session's CLI runner — ``validate_task`` and a
``generate_media`` recorder that writes a small video instead of running a model.
"""
from __future__ import annotations

import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any, Optional

GUIDE_PROCESSES = "PDESLCMUVGBH"  # wgp's video_guide_processes letters (V included: "use VACE raw format")
HF = "https://huggingface.co/DeepBeepMeep/"
#: A few of Wan2GP's model definitions (``defaults/*.json``: names, descriptions, weight URLs, modules).
MODELS_DEF: dict[str, dict[str, Any]] = {
    "t2v": {"name": "Wan2.1 Text2video 14B", "fps": 16, "architecture": "t2v",
            "URLs": [HF + "Wan2.1/resolve/main/wan2.1_text2video_14B_mbf16.safetensors",
                     HF + "Wan2.1/resolve/main/wan2.1_text2video_14B_quanto_mbf16_int8.safetensors"]},
    "t2v_1.3B": {"name": "Wan2.1 Text2video 1.3B", "fps": 16, "architecture": "t2v_1.3B",
                 "URLs": [HF + "Wan2.1/resolve/main/wan2.1_text2video_1.3B_mbf16.safetensors"]},
    "t2v_2_2": {"name": "Wan2.2 Text2video 14B", "fps": 16, "architecture": "t2v_2_2",
                "URLs": [HF + "Wan2.2/resolve/main/wan2.2_text2video_14B_high_mbf16.safetensors",
                         HF + "Wan2.2/resolve/main/wan2.2_text2video_14B_high_quanto_mbf16_int8.safetensors"],
                "URLs2": [HF + "Wan2.2/resolve/main/wan2.2_text2video_14B_low_mbf16.safetensors",
                          HF + "Wan2.2/resolve/main/wan2.2_text2video_14B_low_quanto_mbf16_int8.safetensors"]},
    "vace_14B_2_2": {"name": "Wan2.2 Vace 14B", "fps": 16, "architecture": "vace_14B_2_2", "URLs": "t2v_2_2",
                     "URLs2": "t2v_2_2", "modules": ["vace_14B"],
                     "description": "There is so far only PARTIAL support of Vace 2.1 which is currently used."},
    "vace_14B_lightning_3p_2_2": {"name": "Wan2.2 Vace Lightning 3 Phases 14B", "architecture": "vace_14B_2_2",
                                  "URLs": "t2v_2_2", "URLs2": "t2v_2_2", "modules": ["vace_14B"],
                                  "description": "This finetune uses the Lightning 4 steps Loras Accelerator."},
    "vace_14B": {"name": "Vace 14B", "fps": 16, "architecture": "vace_14B", "URLs": "t2v",
                 "modules": [[HF + "Wan2.1/resolve/main/wan2.1_Vace_14B_module_mbf16.safetensors",
                              HF + "Wan2.1/resolve/main/wan2.1_Vace_14B_module_quanto_mbf16_int8.safetensors"]]},
    "vace_1.3B": {"name": "Vace 1.3B", "fps": 16, "architecture": "vace_1.3B", "URLs": "t2v_1.3B",
                  "modules": [[HF + "Wan2.1/resolve/main/wan2.1_Vace_1_3B_module.safetensors"]],
                  "guide_preprocessing": {"selection": ["", "PV", "DV", "EV", "V"]}},
}


def host_model_defs(root: Path) -> dict[str, dict[str, Any]]:
    """Wan2GP's own model definitions (``defaults/*.json`` of the checkout at ``root``), as ``wgp.py``'s
    ``refresh_model_defs`` reads them; ``vace_class`` set as its Wan handler does (a ``vace_…`` architecture)."""
    models = {}
    for path in sorted((root / "defaults").glob("*.json")):
        model_def = json.loads(path.read_text(encoding="utf-8"))["model"]
        model_def["vace_class"] = str(model_def.get("architecture", "")).startswith("vace_")
        models[path.stem] = model_def
    return models


class Locator:
    """Wan2GP's ``fl`` (``shared/utils/files_locator.py``) reduced to what the plugin calls: files are
    looked up by their base name in the checkpoints folders."""

    def __init__(self, *folders: Path) -> None:
        self.folders = [Path(f) for f in folders]

    def locate_file(self, name: str, error_if_none: bool = True) -> Optional[str]:
        name = os.path.basename(name) if name.startswith("http") else name
        for folder in self.folders:
            if (folder / name).is_file():
                return str(folder / name)
        if error_if_none:
            raise FileNotFoundError(name)
        return None

    def get_local_model_filename(self, name: str) -> Optional[str]:
        return self.locate_file(name, error_if_none=False)


def make_module(root: Path, outputs: Path, models_def: Optional[dict] = None, fl: Any = None) -> types.ModuleType:
    """The ``wgp`` module; ``__file__`` names ``root/wgp.py`` so the host's API runtime accepts it.
    ``models_def``: :data:`MODELS_DEF` unless given; ``fl``: a :class:`Locator` of ``outputs/ckpts``."""
    wgp = types.ModuleType("wgp")
    wgp.__file__ = str(root / "wgp.py")
    wgp.server_config = {"save_path": str(outputs), "image_save_path": str(outputs),
                         "audio_save_path": str(outputs), "enabled_plugins": []}
    wgp.save_path = wgp.image_save_path = wgp.audio_save_path = str(outputs)
    wgp.settings_version = 2.5
    wgp.gen_in_progress = False
    wgp.wan_model = None
    wgp.offloadobj = None
    wgp.calls = []  # what the host's functions were asked, in order
    wgp.generated = []  # the tasks the generation recorder received
    wgp.models_def = json.loads(json.dumps(MODELS_DEF if models_def is None else models_def))
    for model_def in wgp.models_def.values():
        model_def.setdefault("vace_class", str(model_def.get("architecture", "")).startswith("vace_"))
    wgp.fl = fl if fl is not None else Locator(outputs / "ckpts")
    wgp.transformer_quantization, wgp.transformer_dtype_policy = "int8", ""

    def get_model_def(model_type):
        return wgp.models_def.get(model_type)

    def test_vace_module(model_type):
        return (get_model_def(model_type) or {}).get("vace_class", False)

    def get_model_recursive_prop(model_type, prop="URLs", sub_prop_name=None, return_list=True, stack=()):
        """wgp's: a property, following references to other models (a string names one)."""
        value = (get_model_def(model_type) or {}).get(prop)
        if value is None:
            return [] if return_list else None
        if sub_prop_name == "_list":
            value = value[0]
        if isinstance(value, str):
            assert len(stack) < 10, stack
            return get_model_recursive_prop(value, prop, sub_prop_name, return_list, (*stack, value))
        return value

    def get_model_filename(model_type, quantization="int8", dtype_policy="", module_type=None, submodel_no=1,
                           URLs=None):
        """wgp's choice among a model's weight files: the quantized one when int8 is asked, else the first."""
        if URLs is None:
            URLs = (get_model_def(model_type) or {}).get("URLs" if submodel_no <= 1 else f"URLs{submodel_no}", [])
            if isinstance(URLs, str):
                return get_model_filename(URLs, quantization, dtype_policy, submodel_no=submodel_no)
        choices = URLs if isinstance(URLs, list) else [URLs]
        if not choices:
            return ""
        quantized = [c for c in choices if "quanto" in os.path.basename(c) and "int8" in os.path.basename(c)]
        return quantized[0] if quantization == "int8" and quantized else choices[0]

    def get_default_settings(model_type):
        return {"prompt": "", "resolution": "832x480", "video_length": 81, "video_prompt_type": "",
                "video_guide": None, "force_fps": "", "num_inference_steps": 4, "image_mode": 0}

    def get_state_model_type(state):
        return state["model_type" if state.get("active_form", "add") == "add" else "edit_model_type"]

    def get_model_settings(state, model_type):
        return (state.get("all_settings") or {}).get(model_type)

    def set_model_settings(state, model_type, settings):
        state.setdefault("all_settings", {})[model_type] = settings

    def get_current_model_settings(state):
        model_type = get_state_model_type(state)
        settings = get_model_settings(state, model_type)
        if settings is None:
            settings = get_default_settings(model_type)
            set_model_settings(state, model_type, settings)
        return settings

    def update_video_prompt_type(state, any_video_guide=False, any_video_mask=False, any_background_image_ref=False,
                                 process_type=None, default_update=""):
        wgp.calls.append(("update_video_prompt_type", any_video_guide, process_type))
        settings = get_current_model_settings(state)
        current = settings.get("video_prompt_type") or ""
        if process_type is not None:
            current = "".join(ch for ch in current if ch not in GUIDE_PROCESSES)
        letters = default_update + ("V" if any_video_guide else "") + ("A" if any_video_mask else "")
        settings["video_prompt_type"] = current + "".join(ch for ch in letters if ch not in current)

    def clear_gen_cache():
        wgp.calls.append(("clear_gen_cache",))

    def release_model():
        wgp.wan_model = None
        wgp.clear_gen_cache()  # looked up at call time, as wgp.py does

    def set_wgp_global(name, value):
        if not hasattr(wgp, name):
            return f"Error: Global variable '{name}' does not exist."
        setattr(wgp, name, value)

    def download_ffmpeg():
        pass

    def _is_edit_task_params(params):
        return str((params or {}).get("mode", "") or "").startswith("edit_")

    def validate_task(task, state, skip_validate_settings=False):
        """What the plugin's task must satisfy here: a known VACE model and, with "V", a readable guide."""
        params = dict(task.get("params", {}))
        model_type = params.get("model_type")
        if get_model_def(model_type) is None:
            return None, f"Unknown model {model_type}"
        if "V" in (params.get("video_prompt_type") or "") and not Path(str(params.get("video_guide"))).is_file():
            return None, "You must provide a Control Video"
        if "x" not in str(params.get("resolution", "")):
            return None, "Invalid resolution"
        return params, ""

    def generate_media(task, send_cmd, plugin_data=None, state=None, model_type=None, prompt="", video_guide=None,
                       video_length=81, resolution="832x480", video_prompt_type="", force_fps="", **_ignored):
        """The recorder that replaces a generation: progress over 4 steps, then a small video."""
        from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

        wgp.generated.append(dict(task["params"]))
        for step in range(4):
            if state["gen"].get("abort"):
                return False
            send_cmd("progress", [(step + 1, 4), f"Denoising {step + 1}/4"])
            time.sleep(0.4)
        width, height = (int(v) for v in str(resolution).split("x"))
        out = Path(wgp.save_path) / f"recorded_{int(time.time() * 1000)}.mp4"
        write_sample_video(out, width=min(width, 160), height=min(height, 96), frames=8, fps=16)
        state["gen"]["file_list"].append(str(out))
        send_cmd("output")
        return True

    for fn in (get_model_def, test_vace_module, get_model_recursive_prop, get_model_filename, get_default_settings, get_state_model_type, get_model_settings,
               set_model_settings, get_current_model_settings, update_video_prompt_type, clear_gen_cache,
               release_model, set_wgp_global, download_ffmpeg, _is_edit_task_params, validate_task, generate_media):
        setattr(wgp, fn.__name__, fn)
    return wgp


FORM_FIELDS = ("video_prompt_type", "video_guide", "video_length", "resolution", "force_fps")


def build_generate_form(wgp: types.ModuleType, state_value: dict, main: bool = True) -> dict:
    """The generator tab's components the plugin requests, with the host's events (call inside Blocks
    and inside a ``gr.Tabs`` named ``main_tabs``). Returns them by id (local names of wgp's builder)."""
    import gradio as gr

    def eid(name: str):  # like wgp, only the generate tab's form carries element ids
        return name if main else None

    c: dict[str, Any] = {}
    settings = state_value["all_settings"][state_value["model_type"]]  # like wgp, the form starts from them
    c["state"] = gr.State(state_value)
    c["model_header"] = gr.Markdown(f"Model: {state_value['model_type']}", elem_id=eid("fake_wgp_model"))
    c["model_choice"] = gr.Dropdown(list(wgp.models_def), value=state_value["model_type"], label="Model",
                                    elem_id=eid("fake_wgp_model_choice"))
    c["refresh_form_trigger"] = gr.Text(interactive=False, visible=False)
    c["model_choice_target"] = gr.Text(interactive=False, visible=False, elem_id=eid("wangp_model_choice_target"))
    c["video_prompt_type"] = gr.Text(value=settings.get("video_prompt_type", ""), visible=False,
                                     elem_id=eid("fake_wgp_video_prompt_type"))
    c["video_guide"] = gr.Video(label="Control Video", visible="V" in settings.get("video_prompt_type", ""),
                                elem_id=eid("fake_wgp_video_guide"))
    c["video_length"] = gr.Slider(5, 241, value=settings.get("video_length", 81), step=1, label="Number of frames",
                                  elem_id=eid("fake_wgp_video_length"))
    c["resolution"] = gr.Text(value=settings.get("resolution", "832x480"), label="Resolution",
                              elem_id=eid("fake_wgp_resolution"))
    c["force_fps"] = gr.Text(value=settings.get("force_fps", ""), label="Force fps", elem_id=eid("fake_wgp_force_fps"))
    # the API session's bridge to the main queue (shared/api_webui.py resolves them by elem_id / api_name)
    c["load_queue_trigger"] = gr.Text(visible=False, elem_id=eid("wangp_main_load_queue_trigger"))
    c["abort_client_id"] = gr.Text(visible=False, elem_id=eid("wangp_main_abort_client_id"))
    c["load_queue_trigger"].change(lambda token: None, inputs=[c["load_queue_trigger"]], api_name="load_queue_action")
    c["abort_client_id"].change(lambda cid: None, inputs=[c["abort_client_id"]], api_name="abort_generation")

    form = [c[name] for name in FORM_FIELDS]

    def fill_inputs(state):
        settings = wgp.get_current_model_settings(state)
        prompt_type = settings.get("video_prompt_type") or ""
        guide = settings.get("video_guide")
        return (f"Model: {wgp.get_state_model_type(state)}", wgp.get_state_model_type(state), prompt_type,
                gr.update(value=guide, visible="V" in prompt_type), settings.get("video_length", 81),
                settings.get("resolution", "832x480"), settings.get("force_fps", ""))

    def save_inputs(state, *values):
        """wgp's: the form's values into the current model's settings, unless a switch asked not to."""
        wgp.calls.append(("save_inputs", wgp.get_state_model_type(state)))
        if state.pop("ignore_save_form", False):
            return
        settings = wgp.get_current_model_settings(state)
        for name, value in zip(FORM_FIELDS, values):
            settings[name] = value

    def change_model(state, target):
        model_type = str(target or "").split("|", 1)[0].strip()
        if model_type:
            wgp.calls.append(("change_model", model_type))
            state.pop("skip_resolution_transfer_on_model_switch", None)
            state["model_type"] = model_type

    c["save_inputs"] = save_inputs
    outputs = [c["model_header"], c["model_choice"], *form]
    c["refresh_form_trigger"].change(fill_inputs, inputs=[c["state"]], outputs=outputs, show_progress="hidden")
    for trigger, source in ((c["model_choice_target"].change, c["model_choice_target"]),
                            (c["model_choice"].input, c["model_choice"])):  # a plugin's switch, the user's
        trigger(save_inputs, inputs=[c["state"], *form], outputs=None).then(
            change_model, inputs=[c["state"], source], outputs=None).then(
            fill_inputs, inputs=[c["state"]], outputs=outputs)
    return c


def install(wgp: types.ModuleType) -> None:
    sys.modules["wgp"] = wgp
