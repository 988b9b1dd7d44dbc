"""Finding, recognising and converting Depth Anything V2 weights — never downloading them.

Depth always runs as Hugging Face transformers' ``DepthAnythingForDepthEstimation``. Weights come,
in order, from an explicit path, from Wan2GP's ``ckpts/depth/depth_anything_v2_<variant>.pth``
(through the host's file locator, then the same ``ckpts`` folders RAFT is searched in), or from
a transformers model already in the local Hugging Face cache. The variant the caller names (the
host's ``depth_anything_v2_variant`` setting) is preferred at every step; another V2 variant found
on disk is used after it, and the source says which one it is.

Layouts, the variant table and the rename to transformers are in ``depth_layouts``.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ...errors import WeightsError, WeightsNotFoundError
from ...options import DEFAULT_DEPTH_VARIANT, DEPTH_VARIANTS
from .raft_weights import default_search_dirs
from .depth_layouts import (ATTENTION_NAMES, HOW_TO_GET, VARIANT_BY_HIDDEN, VARIANTS, DepthArchitecture,
                            architecture_from_shapes, convert_original_state_dict, detect_depth_layout, rename_attention,
                            tensor_shape)
from .weights_files import HostLocator, file_fingerprint, load_checkpoint, locate_with_host, named_tensors

__all__ = [  # the layouts' names too: callers find everything about depth weights here
    "ATTENTION_NAMES", "HOW_TO_GET", "VARIANTS", "DepthArchitecture", "architecture_from_shapes",
    "convert_original_state_dict", "detect_depth_layout", "rename_attention", "DepthWeightsSource", "HOST_FILES",
    "HUB_REPOS", "find_depth_weights", "require_depth_weights", "read_key_shapes", "read_depth_state_dict",
    "variant_preference", "describe_search", "hub_cache_folder", "explicit_depth_source", "transformers_weights_file"]

logger = logging.getLogger(__name__)

#: The variant of a transformers model folder whose size is none of the V2 variants.
CUSTOM_VARIANT = "custom"
DEPTH_LAYOUTS = ("original", "transformers", "random")
#: Wan2GP's file for each variant, relative to a ``ckpts`` folder (the host ships vitl and vitb).
HOST_FILES = {variant: f"depth/depth_anything_v2_{variant}.pth" for variant in DEPTH_VARIANTS}
#: transformers conversions of the same checkpoints on the Hugging Face hub (looked up in the local cache only).
HUB_REPOS = {"vits": "depth-anything/Depth-Anything-V2-Small-hf",
             "vitb": "depth-anything/Depth-Anything-V2-Base-hf",
             "vitl": "depth-anything/Depth-Anything-V2-Large-hf"}
#: transformers' weight file names in a model folder, in order of preference.
TRANSFORMERS_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
@dataclass(frozen=True)
class DepthWeightsSource:
    """Where a depth model's weights come from (``path`` None: random weights, tests and benchmarks)."""

    variant: str
    path: Optional[str]
    layout: str
    origin: str
    seed: int = 0

    @property
    def is_folder(self) -> bool:
        return self.path is not None and Path(self.path).is_dir()

    def identity(self) -> str:
        """A stable id of these weights for cache keys (fast: hashes the files' ends and sizes)."""
        if self.path is None:
            return f"random:{self.variant}:{self.seed}"
        path = Path(self.path)
        if path.is_dir():
            parts = [file_fingerprint(path / "config.json", label="depth model config"),
                     file_fingerprint(transformers_weights_file(path), label="depth weights")]
            return f"{self.layout}:{'+'.join(parts)}"
        return f"{self.layout}:{file_fingerprint(path, label='depth weights')}"


def transformers_weights_file(folder: Path) -> Path:
    """The weights file of a transformers model folder; ``WeightsError`` when it holds none."""
    for name in TRANSFORMERS_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise WeightsError(f"Depth model folder {folder} holds no {' or '.join(TRANSFORMERS_WEIGHT_FILES)}: "
                       "pass a transformers model folder saved with save_pretrained, or a .pth file.")


def read_depth_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a weights file safely (``.safetensors``, or ``.pth``/``.bin`` with ``weights_only``)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return load_checkpoint(path, label="depth weights", hint=HOW_TO_GET)
    try:
        from safetensors.torch import load_file
        loaded = load_file(str(path), device="cpu")
    except Exception as exc:  # header and format errors all mean "unreadable"
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise WeightsError(f"Cannot read depth weights {path} ({reason}): {HOW_TO_GET}.") from exc
    return named_tensors(loaded, path, label="depth weights", hint=HOW_TO_GET)


def read_key_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of a weights file; safetensors headers are read without loading tensors."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
            with safe_open(str(path), framework="pt") as handle:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        except Exception as exc:
            raise WeightsError(f"Cannot read depth weights {path} ({exc}): {HOW_TO_GET}.") from exc
    try:  # memory-mapped: only the names and the tensors' metadata are read
        state_dict = load_checkpoint(path, label="depth weights", hint=HOW_TO_GET, mmap=True)
    except WeightsError:  # not a zip-format checkpoint (mmap needs one): read it whole, or say why not
        state_dict = read_depth_state_dict(path)
    return {key: tuple(value.shape) for key, value in state_dict.items()}


def _folder_is_depth_model(folder: Path) -> bool:
    config = folder / "config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("model_type") == "depth_anything"
    except (OSError, ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------- finding weights

def variant_preference(variant: Optional[str]) -> list[str]:
    """Variants to look for, the named one first (an unknown name, e.g. ``da3_metric_large``, → vitl first)."""
    first = variant if variant in DEPTH_VARIANTS else DEFAULT_DEPTH_VARIANT
    if variant and variant not in DEPTH_VARIANTS:
        logger.info("Depth variant %r is not a Depth Anything V2 variant; looking for %s first", variant, first)
    return [first] + [v for v in reversed(DEPTH_VARIANTS) if v != first]


def explicit_depth_source(explicit_path: str | os.PathLike[str]) -> DepthWeightsSource:
    """Recognise the file or folder the user named (read and checked now)."""
    path = Path(explicit_path).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(f"Depth weights {path} do not exist: check --depth-weights.")
    if path.is_dir():
        if not _folder_is_depth_model(path):
            raise WeightsError(f"Depth weights folder {path} is not a transformers DepthAnything model (its "
                               "config.json must say model_type 'depth_anything'): pass such a folder or a .pth file.")
        shapes = read_key_shapes(transformers_weights_file(path))
        if detect_depth_layout(shapes) != "transformers":
            raise WeightsError(f"Depth model folder {path} holds original-layout weights: pass the .pth file itself.")
        # A folder brings its own config.json, so any DepthAnything size loads (tests use tiny ones).
        hidden = tensor_shape(shapes.get("backbone.embeddings.cls_token", (0,)))[-1]
        return DepthWeightsSource(VARIANT_BY_HIDDEN.get(hidden, CUSTOM_VARIANT), str(path.resolve()), "transformers",
                                  "explicit path")
    shapes = read_key_shapes(path)
    layout = detect_depth_layout(shapes)
    arch = architecture_from_shapes(shapes)
    return DepthWeightsSource(arch.variant, str(path.resolve()), layout, "explicit path")


def hub_cache_folder(repo_id: str, cache_dir: Optional[str | os.PathLike[str]] = None) -> Optional[Path]:
    """The snapshot folder of ``repo_id`` in the local Hugging Face cache, or None (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    config = try_to_load_from_cache(repo_id, "config.json", cache_dir=None if cache_dir is None else str(cache_dir))
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    if not any((folder / name).is_file() for name in TRANSFORMERS_WEIGHT_FILES):
        return None
    return folder


def find_depth_weights(variant: Optional[str] = DEFAULT_DEPTH_VARIANT, explicit_path: Optional[str] = None, *,
                       host_locator: Optional[HostLocator] = None,
                       search_dirs: Optional[Sequence[Path]] = None,
                       hf_cache_dir: Optional[str | os.PathLike[str]] = None) -> Optional[DepthWeightsSource]:
    """The first Depth Anything V2 weights found on disk, or None.

    Order: ``explicit_path`` (missing → ``WeightsNotFoundError``; read and checked now); for each
    variant of :func:`variant_preference`: ``host_locator("depth/depth_anything_v2_<v>.pth")``,
    then ``<dir>/depth/depth_anything_v2_<v>.pth`` for each search dir (RAFT's folders); last,
    the transformers conversions (:data:`HUB_REPOS`) already in the local Hugging Face cache.
    """
    if explicit_path:
        return explicit_depth_source(explicit_path)
    order = variant_preference(variant)
    folders = default_search_dirs() if search_dirs is None else list(search_dirs)
    for name in order:
        host = locate_with_host(host_locator, HOST_FILES[name])
        if host is not None:
            return DepthWeightsSource(name, str(host), "original", f"Wan2GP {HOST_FILES[name]}")
        for folder in folders:
            candidate = Path(folder).expanduser() / HOST_FILES[name]
            if candidate.is_file():
                return DepthWeightsSource(name, str(candidate.resolve()), "original",
                                          f"Wan2GP ckpts/{HOST_FILES[name]}")
    for name in order:
        snapshot = hub_cache_folder(HUB_REPOS[name], hf_cache_dir)
        if snapshot is not None:
            return DepthWeightsSource(name, str(snapshot), "transformers", f"Hugging Face cache ({HUB_REPOS[name]})")
    logger.debug("No Depth Anything V2 weights found on disk")
    return None


def describe_search(variant: Optional[str] = DEFAULT_DEPTH_VARIANT, *, search_dirs: Optional[Sequence[Path]] = None,
                    hosted: bool = False) -> str:
    """Where :func:`find_depth_weights` looks, in words (for the not-found message)."""
    order = variant_preference(variant)
    folders = default_search_dirs() if search_dirs is None else list(search_dirs)
    files = ", ".join(str(Path(d) / HOST_FILES[order[0]]) for d in folders) or "no ckpts folder"
    host = "Wan2GP's file locator, " if hosted else ""
    return (f"{host}{files} (and the {', '.join(order[1:])} files beside them), and the Hugging Face cache "
            f"({', '.join(HUB_REPOS[v] for v in order)})")


def require_depth_weights(variant: Optional[str] = DEFAULT_DEPTH_VARIANT, explicit_path: Optional[str] = None, *,
                          host_locator: Optional[HostLocator] = None,
                          search_dirs: Optional[Sequence[Path]] = None,
                          hf_cache_dir: Optional[str | os.PathLike[str]] = None) -> DepthWeightsSource:
    """:func:`find_depth_weights`, or a one-line ``WeightsNotFoundError`` saying where it looked and what to do."""
    source = find_depth_weights(variant, explicit_path, host_locator=host_locator, search_dirs=search_dirs,
                                hf_cache_dir=hf_cache_dir)
    if source is not None:
        return source
    where = describe_search(variant, search_dirs=search_dirs, hosted=host_locator is not None)
    raise WeightsNotFoundError(f"No Depth Anything V2 weights found (looked in {where}): {HOW_TO_GET}.")
