"""Finding, recognising, converting and loading RAFT weights — never downloading them.

RAFT always runs as torchvision's ``raft_large`` / ``raft_small``. Weights come, in order, from
an explicit file, from Wan2GP's ``ckpts/flow/raft-things.pth`` (princeton-vl layout, renamed onto
torchvision's modules by :func:`convert_princeton_state_dict`), or from torchvision's own files
when they already sit in the torch hub cache. Nothing here touches the network.

Finding weights imports neither torch nor torchvision (the ``auto`` backend looks for them on every
run, DIS included); torch loads to read a file, torchvision's RAFT module only to build the model.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence
from urllib.parse import urlparse
from ...errors import WeightsError, WeightsNotFoundError
from ...options import RAFT_MODELS
from .weights_files import file_fingerprint, layout_from_keys, load_checkpoint, locate_with_host

logger = logging.getLogger(__name__)

RAFT_LAYOUTS = ("princeton", "torchvision", "random")
#: Where Wan2GP keeps its RAFT weights, relative to a ``ckpts`` folder.
HOST_WEIGHTS = "flow/raft-things.pth"

_PRINCETON_ROOTS = ("fnet.", "cnet.", "update_block.encoder.", "update_block.gru.", "update_block.mask.")
_TORCHVISION_ROOTS = ("feature_encoder.", "context_encoder.", "update_block.motion_encoder.",
                      "update_block.recurrent_block.", "mask_predictor.")

# Preference among torchvision's files in the hub cache: Chairs+Things first (the training data of
# Wan2GP's raft-things.pth, i.e. the flows VACE saw), newer recipe first; fine-tuned ones after.
_HUB_PREFERENCE = ("C_T_V2", "C_T_V1", "C_T_SKHT_V2", "C_T_SKHT_V1", "C_T_SKHT_K_V2", "C_T_SKHT_K_V1")
#: File names of torchvision's ``Raft_Large_Weights`` / ``Raft_Small_Weights`` in that order, spelled
#: here so that looking for them needs no torchvision (a test checks them against its enums).
HUB_FILES = {
    "large": ("raft_large_C_T_V2-1bb1363a.pth", "raft_large_C_T_V1-22a6c225.pth",
              "raft_large_C_T_SKHT_V2-ff5fadd5.pth", "raft_large_C_T_SKHT_V1-0b8c9e55.pth",
              "raft_large_C_T_SKHT_K_V2-b5c70766.pth", "raft_large_C_T_SKHT_K_V1-4a6a5039.pth"),
    "small": ("raft_small_C_T_V2-01064c6d.pth", "raft_small_C_T_V1-ad48884c.pth"),
}


@dataclass(frozen=True)
class WeightsSource:
    """Where a RAFT model's weights come from (``path`` None: random weights, tests only)."""

    model: str
    path: Optional[str]
    layout: str
    origin: str
    seed: int = 0

    def identity(self) -> str:
        """A stable id of these weights for cache keys (fast: hashes the file's ends and size)."""
        if self.path is None:
            return f"random:{self.seed}"
        return f"{self.layout}:{file_fingerprint(self.path, label='RAFT weights')}"


# --------------------------------------------------------------------------- layouts and renames

def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    """``"princeton"`` or ``"torchvision"`` from the keys (a leading ``module.`` is ignored)."""
    return layout_from_keys((_strip_module(str(k)) for k in state_dict),
                            {"princeton": _PRINCETON_ROOTS, "torchvision": _TORCHVISION_ROOTS},
                            what="a RAFT state dict",
                            hint="pass raft-things.pth or a torchvision raft_large/raft_small file")


_ENCODERS = {"fnet": "feature_encoder", "cnet": "context_encoder"}
_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    # encoders: stem, residual/bottleneck blocks, final 1x1 conv
    (r"^(feature_encoder|context_encoder)\.conv1\.", r"\1.convnormrelu.0."),
    (r"^(feature_encoder|context_encoder)\.norm1\.", r"\1.convnormrelu.1."),
    (r"^(feature_encoder|context_encoder)\.conv2\.", r"\1.conv."),
    (r"^(feature_encoder|context_encoder)\.(layer\d+\.\d+)\.conv([123])\.", r"\1.\2.convnormrelu\3.0."),
    (r"^(feature_encoder|context_encoder)\.(layer\d+\.\d+)\.norm([123])\.", r"\1.\2.convnormrelu\3.1."),
    (r"^(feature_encoder|context_encoder)\.(layer\d+\.\d+)\.downsample\.([01])\.", r"\1.\2.downsample.\3."),
    # update block: motion encoder, GRU (large: separable, two convs per gate; small: one), heads
    (r"^update_block\.encoder\.convc([12])\.", r"update_block.motion_encoder.convcorr\1.0."),
    (r"^update_block\.encoder\.convf([12])\.", r"update_block.motion_encoder.convflow\1.0."),
    (r"^update_block\.encoder\.conv\.", r"update_block.motion_encoder.conv.0."),
    (r"^update_block\.gru\.conv([zrq])([12])\.", r"update_block.recurrent_block.convgru\2.conv\1."),
    (r"^update_block\.gru\.conv([zrq])\.", r"update_block.recurrent_block.convgru1.conv\1."),
    (r"^update_block\.mask\.0\.", r"mask_predictor.convrelu.0."),
    (r"^update_block\.mask\.2\.", r"mask_predictor.conv."),
    (r"^update_block\.flow_head\.(conv[12])\.", r"update_block.flow_head.\1."),
))
_BLOCK_NORM = re.compile(r"^(?P<block>(?:fnet|cnet)\.layer\d+\.\d+)\.norm(?P<n>[34])\.(?P<rest>.+)$")


def _is_downsample_alias(key: str, keys: set[str]) -> bool:
    """Princeton blocks register their downsample norm twice: as ``normN`` and as ``downsample.1``.

    Residual blocks (large) call it ``norm3``; bottleneck blocks (small), which have a real
    ``norm3`` after ``conv3``, call it ``norm4``.
    """
    match = _BLOCK_NORM.match(key)
    if match is None:
        return False
    block, n, rest = match.group("block"), match.group("n"), match.group("rest")
    bottleneck = any(k.startswith(f"{block}.conv3.") for k in keys)
    if n != ("4" if bottleneck else "3"):
        return False
    return f"{block}.downsample.1.{rest}" in keys


def convert_princeton_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Rename a princeton-vl RAFT state dict onto torchvision's module names (no tensor changes).

    Strips a leading ``module.``, drops the ``normN`` aliases of ``downsample.1``, and renames
    every other key (see DESIGN.md, "RAFT facts"); a key no rule covers raises ``WeightsError``.
    """
    stripped: dict[str, Any] = {}
    for key, value in state_dict.items():
        name = _strip_module(str(key))
        if name in stripped:
            raise WeightsError(f"RAFT weights hold {name!r} twice (with and without 'module.'): re-save the file.")
        stripped[name] = value
    keys = set(stripped)
    converted: dict[str, Any] = {}
    leftovers: list[str] = []
    for name, value in stripped.items():
        if _is_downsample_alias(name, keys):
            continue
        head, dot, tail = name.partition(".")
        renamed = f"{_ENCODERS[head]}{dot}{tail}" if head in _ENCODERS else name
        for pattern, replacement in _RENAMES:
            new, hits = pattern.subn(replacement, renamed, count=1)
            if hits:
                renamed = new
                break
        else:
            leftovers.append(name)
            continue
        if renamed in converted:
            raise WeightsError(f"RAFT weights map two keys onto {renamed!r}: the file is not a princeton-vl RAFT.")
        converted[renamed] = value
    if leftovers:
        shown = ", ".join(sorted(leftovers)[:4]) + (" …" if len(leftovers) > 4 else "")
        raise WeightsError(f"RAFT weights have {len(leftovers)} key(s) with no torchvision counterpart ({shown}): "
                           "pass a princeton-vl RAFT (raft-things.pth) or a torchvision RAFT file.")
    return converted


def infer_model_size(state_dict: Mapping[str, Any]) -> Optional[str]:
    """``"large"`` / ``"small"`` for a torchvision-layout state dict, None when it cannot tell."""
    if "update_block.recurrent_block.convgru2.convz.weight" in state_dict:
        return "large"
    if "update_block.recurrent_block.convgru1.convz.weight" in state_dict:
        return "small"
    return None


# --------------------------------------------------------------------------- finding files

#: The plugin's own folder (``preprocessors/weights/`` is two levels below it); inside Wan2GP it is
#: ``<Wan2GP>/plugins/<name>/``, whose ``ckpts`` sits two levels above.
PLUGIN_ROOT = Path(__file__).resolve().parents[2]

def default_search_dirs() -> list[Path]:
    """Candidate Wan2GP ``ckpts`` folders, most specific first (they may not exist).

    ``$WAN2GP_CKPTS``; ``$WAN2GP_ROOT/ckpts``; the host's ``ckpts`` when this plugin sits in
    Wan2GP's ``plugins/<name>/`` folder; ``./ckpts`` (Wan2GP runs from its own root).
    """
    candidates: list[Path] = []
    if os.environ.get("WAN2GP_CKPTS"):
        candidates.append(Path(os.environ["WAN2GP_CKPTS"]).expanduser())
    if os.environ.get("WAN2GP_ROOT"):
        candidates.append(Path(os.environ["WAN2GP_ROOT"]).expanduser() / "ckpts")
    if PLUGIN_ROOT.parent.name == "plugins":
        candidates.append(PLUGIN_ROOT.parent.parent / "ckpts")
    candidates.append(Path.cwd() / "ckpts")
    unique: list[Path] = []
    for path in candidates:
        resolved = path.resolve()
        if resolved not in unique:
            unique.append(resolved)
    return unique


def hub_checkpoint_names(model: str) -> list[str]:
    """File names of torchvision's RAFT weights for ``model``, in order of preference."""
    return list(HUB_FILES["large" if model == "large" else "small"])


def torchvision_hub_names(model: str) -> list[str]:
    """The same names read from torchvision's weight enums (imports torchvision: tests only)."""
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    enum = Raft_Large_Weights if model == "large" else Raft_Small_Weights
    members = sorted(enum, key=lambda w: _HUB_PREFERENCE.index(w.name) if w.name in _HUB_PREFERENCE
                     else len(_HUB_PREFERENCE))
    return [Path(urlparse(w.url).path).name for w in members]


def torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``, computed as torch does (``$TORCH_HOME/hub``, else
    ``$XDG_CACHE_HOME/torch/hub``, else ``~/.cache/torch/hub``) while torch is not loaded."""
    torch = sys.modules.get("torch")
    if torch is not None:  # it may have been moved with torch.hub.set_dir
        return Path(torch.hub.get_dir())
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))).expanduser() / "hub"


def _check_model(model: str) -> None:
    if model not in RAFT_MODELS:
        raise WeightsError(f"RAFT model {model!r} is unknown: use one of {', '.join(RAFT_MODELS)}.")


def _explicit_source(model: str, explicit_path: str) -> WeightsSource:
    path = Path(explicit_path).expanduser()
    if not path.exists():
        raise WeightsNotFoundError(f"RAFT weights file {path} does not exist: check --raft-weights.")
    if path.is_dir():
        raise WeightsError(f"RAFT weights path {path} is a folder: pass the .pth file itself.")
    state_dict = read_state_dict(path)
    layout = detect_layout(state_dict)
    converted = convert_princeton_state_dict(state_dict) if layout == "princeton" else state_dict
    _check_size(converted, model, path)
    return WeightsSource(model, str(path.resolve()), layout, "explicit path")


def find_raft_weights(model: str = "large", explicit_path: Optional[str] = None, *,
                      search_dirs: Optional[Sequence[Path]] = None,
                      host_locator: Optional[Callable[[str], Optional[str]]] = None,
                      hub_dir: Optional[Path] = None) -> Optional[WeightsSource]:
    """The first RAFT weights found on disk for ``model``, or None.

    Order: ``explicit_path`` (missing → ``WeightsNotFoundError``; read and checked now);
    ``host_locator("flow/raft-things.pth")`` then ``<dir>/flow/raft-things.pth`` for each search
    dir (large only); torchvision's files in ``<hub_dir or torch.hub.get_dir()>/checkpoints/``.
    """
    _check_model(model)
    if explicit_path:
        return _explicit_source(model, explicit_path)
    if model == "large":
        host = locate_with_host(host_locator, HOST_WEIGHTS)
        if host is not None:
            return WeightsSource(model, str(host), "princeton", f"Wan2GP {HOST_WEIGHTS}")
        for folder in (default_search_dirs() if search_dirs is None else search_dirs):
            candidate = Path(folder).expanduser() / HOST_WEIGHTS
            if candidate.is_file():
                return WeightsSource(model, str(candidate.resolve()), "princeton", f"Wan2GP ckpts/{HOST_WEIGHTS}")
    checkpoints = Path(hub_dir if hub_dir is not None else torch_hub_dir()).expanduser() / "checkpoints"
    for name in hub_checkpoint_names(model):
        candidate = checkpoints / name
        if candidate.is_file():
            return WeightsSource(model, str(candidate.resolve()), "torchvision", f"torch hub cache ({name})")
    logger.debug("No RAFT-%s weights found on disk", model)
    return None


# --------------------------------------------------------------------------- loading

def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a weights file safely (``weights_only``) into a flat ``{name: tensor}`` dict."""
    return load_checkpoint(path, label="RAFT weights",
                           hint="pass a valid .pth state dict (princeton-vl raft-things.pth or torchvision RAFT)")


def _check_size(state_dict: Mapping[str, Any], model: str, path: Any) -> None:
    size = infer_model_size(state_dict)
    if size is not None and size != model:
        raise WeightsError(f"RAFT weights {path} are for RAFT-{size}, not RAFT-{model}: "
                           f"use --raft-model {size} or other weights.")


def build_raft(model: str) -> Any:
    """torchvision's RAFT architecture (a ``torch.nn.Module``) with its default (random)
    initialisation; never downloads."""
    _check_model(model)
    from torchvision.models.optical_flow import raft_large, raft_small

    return raft_large(weights=None, progress=False) if model == "large" else raft_small(weights=None, progress=False)


def load_raft(source: Optional[WeightsSource], model: str = "large", *, seed: int = 0) -> Any:
    """A ready RAFT on the CPU: eval mode, gradients off; ``source`` None → random weights from ``seed``."""
    _check_model(model)
    import torch

    if source is None or source.path is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(source.seed if source is not None else seed)
            net = build_raft(model)
        logger.info("RAFT-%s with random weights (seed %d)", model, source.seed if source is not None else seed)
    else:
        state_dict = {_strip_module(k): v for k, v in read_state_dict(source.path).items()}
        layout = detect_layout(state_dict)
        if layout != source.layout:
            logger.info("RAFT weights %s have the %s layout (expected %s)", source.path, layout, source.layout)
        if layout == "princeton":
            state_dict = convert_princeton_state_dict(state_dict)
        _check_size(state_dict, model, source.path)
        net = build_raft(model)
        try:
            net.load_state_dict(state_dict, strict=True)
        except RuntimeError as exc:
            missing = set(net.state_dict()) - set(state_dict)
            unexpected = set(state_dict) - set(net.state_dict())
            detail = (f"{len(missing)} missing, {len(unexpected)} unexpected key(s)" if missing or unexpected
                      else "tensor shapes differ")
            raise WeightsError(f"RAFT weights {source.path} do not fit RAFT-{model} ({detail}): "
                               "pass weights made for this RAFT size.") from exc
        logger.info("RAFT-%s loaded from %s (%s, %s layout)", model, source.path, source.origin, layout)
    net.eval()
    net.requires_grad_(False)
    return net
