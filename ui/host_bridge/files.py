"""Files the tab shares with Wan2GP: the host's RAFT and depth weights (located with its ``fl``, downloaded with
its own downloader) and the host's output folder, under which the tab keeps its flow cache and its
outputs (guides, previews) so that the host's web server may serve them."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from ...options import DEFAULT_DEPTH_VARIANT, DEPTH_VARIANTS
from ._host import host_callable, host_global

logger = logging.getLogger(__name__)

HOST_WEIGHTS_FILE = "flow/raft-things.pth"
HOST_WEIGHTS_REPO = "DeepBeepMeep/Wan2.1"
#: The host's setting naming its Depth Anything V2 size, and the files per size (in ``ckpts/depth``).
HOST_DEPTH_VARIANT_KEY = "depth_anything_v2_variant"
#: The flow cache's folder inside the host's output folder (``server_config["save_path"]``).
HOST_CACHE_FOLDER = "structure_video_flow_cache"
#: The tab's own output folder inside the host's output folder.
HOST_OUTPUT_FOLDER = "structure_video"


def weights_locator(plugin: Any) -> Optional[Callable[[str], Optional[str]]]:
    """A locator backed by the host's ``fl.locate_file`` (None standalone)."""
    fl = host_global(plugin, "fl", lambda value: value is not None)
    locate = getattr(fl, "locate_file", None)
    if not callable(locate):
        return None

    def locator(name: str) -> Optional[str]:
        try:
            return locate(name, error_if_none=False)
        except TypeError:
            return locate(name)

    return locator


def host_weights_path(plugin: Any) -> Optional[str]:
    """Where the host has ``flow/raft-things.pth``, None when missing or standalone."""
    locator = weights_locator(plugin)
    if locator is None:
        return None
    try:
        found = locator(HOST_WEIGHTS_FILE)
    except Exception:
        return None
    return str(found) if found and Path(str(found)).is_file() else None


def can_download_weights(plugin: Any) -> bool:
    return host_callable(plugin, "process_files_def") is not None


def download_host_weights(plugin: Any) -> Optional[str]:
    """Download RAFT weights through the host's own downloader (the user asked for it)."""
    download = host_callable(plugin, "process_files_def")
    if download is None:
        return None
    download(repoId=HOST_WEIGHTS_REPO, sourceFolderList=["flow"], fileList=[["raft-things.pth"]])
    return host_weights_path(plugin)


def host_depth_variant(plugin: Any) -> Optional[str]:
    """The host's ``depth_anything_v2_variant`` setting, read now (it may change while Wan2GP runs);
    None standalone or when it names no Depth Anything V2 size (the pipeline then looks for vitl first)."""
    config = host_global(plugin, "server_config", lambda value: isinstance(value, Mapping))
    if not config:
        return None
    variant = config.get(HOST_DEPTH_VARIANT_KEY, DEFAULT_DEPTH_VARIANT)
    return variant if variant in DEPTH_VARIANTS else None


def host_depth_file(plugin: Any) -> str:
    """The depth weights file name of the host's variant (``depth_anything_v2_vitl.pth``)."""
    return f"depth_anything_v2_{host_depth_variant(plugin) or DEFAULT_DEPTH_VARIANT}.pth"


def host_depth_weights_path(plugin: Any) -> Optional[str]:
    """Where the host has its variant's ``depth/depth_anything_v2_<variant>.pth``, None when missing or standalone."""
    locator = weights_locator(plugin)
    if locator is None:
        return None
    try:
        found = locator(f"depth/{host_depth_file(plugin)}")
    except Exception:
        return None
    return str(found) if found and Path(str(found)).is_file() else None


def download_host_depth_weights(plugin: Any) -> Optional[str]:
    """Download the host's depth weights through its own downloader (the user asked for it)."""
    download = host_callable(plugin, "process_files_def")
    if download is None:
        return None
    download(repoId=HOST_WEIGHTS_REPO, sourceFolderList=["depth"], fileList=[[host_depth_file(plugin)]])
    return host_depth_weights_path(plugin)


#: The host's files of its other control types (its core shared files): folder under ckpts → file names.
HOST_MODEL_FILES = {"pose": ("pose", ("yolox_l.onnx", "dw-ll_ucoco_384.onnx")),
                    "contour": ("scribble", ("netG_A_latest.pth",))}


def host_model_path(plugin: Any, kind: str) -> Optional[str]:
    """Where the host has all the files of ``kind`` (``pose``: the folder; ``contour``: the file), None when
    one is missing or standalone."""
    locator = weights_locator(plugin)
    if locator is None:
        return None
    folder, names = HOST_MODEL_FILES[kind]
    found = []
    for name in names:
        try:
            path = locator(f"{folder}/{name}")
        except Exception:
            return None
        if not path or not Path(str(path)).is_file():
            return None
        found.append(Path(str(path)))
    return str(found[0].parent.parent) if kind == "pose" else str(found[0])


def download_host_model(plugin: Any, kind: str) -> Optional[str]:
    """Download the files of ``kind`` through the host's own downloader (the user asked for it)."""
    download = host_callable(plugin, "process_files_def")
    if download is None:
        return None
    folder, names = HOST_MODEL_FILES[kind]
    download(repoId=HOST_WEIGHTS_REPO, sourceFolderList=[folder], fileList=[list(names)])
    return host_model_path(plugin, kind)


def host_save_path(plugin: Any) -> Optional[Path]:
    """The host's output folder (``server_config["save_path"]``, Wan2GP's default ``outputs``, relative
    to its working folder); None standalone (standalone hosts inject an empty config)."""
    config = host_global(plugin, "server_config", lambda value: isinstance(value, Mapping))
    if not config:
        return None
    try:
        return Path(str(config.get("save_path") or "outputs")).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def host_cache_dir(plugin: Any) -> Optional[Path]:
    """The flow cache folder when hosted (under the host's output folder). None standalone, or when
    ``$WAN2GP_STRUCTURE_VIDEO_HOME`` is set (an explicit choice of the user wins)."""
    from ...paths import HOME_ENV

    if os.environ.get(HOME_ENV):
        return None
    save_path = host_save_path(plugin)
    return save_path / HOST_CACHE_FOLDER if save_path is not None else None


def host_output_dir(plugin: Any) -> Optional[Path]:
    """The tab's output folder when hosted: inside the host's output folder, which Wan2GP serves."""
    save_path = host_save_path(plugin)
    return save_path / HOST_OUTPUT_FOLDER if save_path is not None else None
