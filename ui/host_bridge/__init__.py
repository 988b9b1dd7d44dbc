"""The one adapter between the tab and Wan2GP (no gradio here). Everything the plugin reads from or
writes to the host goes through this package:

* ``settings``: the current model's settings (target prefill), Send to Video Generator (our guide
  in a VACE model's settings), the task of "Generate with VACE";
* ``vace_choice``: which VACE model receives the guide (the current one, else one whose weights the host
  locates, fully supported first);
* ``files``: the host's RAFT, depth, pose and contour weights (and its depth variant setting), its output folder (our cache and outputs live under it);
* ``hooks``: ``clear_gen_cache``, the offload registry, GPU residents and the GPU lock.

Standalone (no ``wgp`` module running) every function falls back to the project's own defaults.
"""
from ._host import host_module
from .files import (HOST_CACHE_FOLDER, HOST_OUTPUT_FOLDER, HOST_WEIGHTS_FILE, HOST_WEIGHTS_REPO, can_download_weights,
                    download_host_depth_weights, download_host_model, download_host_weights, host_cache_dir,
                    host_depth_variant, host_depth_weights_path, host_model_path, host_output_dir, host_save_path,
                    host_weights_path, weights_locator)
from .vace_choice import VACE_MODEL_TYPES, VaceChoice, choose_vace_model, is_vace_model_type, weights_present
from .hooks import PROCESS_ID, PROCESS_NAME, HostHooks, install_host_hooks
from .settings import (DEFAULT_FPS, DEFAULT_FRAMES, DEFAULT_RESOLUTION, GUIDE_PROCESS_LETTERS, TARGET_EDITED_KEY,
                       SendOutcome, Target, current_model_settings, current_model_type,
                       guide_settings, mark_target_edited, merge_video_prompt_type,
                       model_choice_value, model_fps, normalize_resolution, pick_vace_model_type, result_summary,
                       send_guide_to_settings, target_edited, target_from_host, vace_task_settings)

__all__ = [
    "DEFAULT_FPS", "DEFAULT_FRAMES", "DEFAULT_RESOLUTION", "GUIDE_PROCESS_LETTERS", "HOST_CACHE_FOLDER",
    "HOST_OUTPUT_FOLDER", "HOST_WEIGHTS_FILE", "HOST_WEIGHTS_REPO", "HostHooks", "PROCESS_ID", "PROCESS_NAME",
    "SendOutcome", "TARGET_EDITED_KEY", "Target", "VACE_MODEL_TYPES", "VaceChoice", "choose_vace_model", "can_download_weights",
    "current_model_settings", "current_model_type", "download_host_depth_weights", "download_host_weights",
    "download_host_model", "host_model_path",
    "host_depth_variant", "host_depth_weights_path", "guide_settings", "host_cache_dir",
    "host_module", "host_output_dir", "host_save_path", "host_weights_path", "install_host_hooks",
    "is_vace_model_type", "mark_target_edited", "merge_video_prompt_type", "model_choice_value", "model_fps",
    "normalize_resolution", "pick_vace_model_type", "result_summary", "send_guide_to_settings", "target_edited",
    "target_from_host", "vace_task_settings", "weights_locator", "weights_present",
]
