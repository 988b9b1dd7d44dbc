"""Which VACE model receives our guide when the generator is on a model that is not VACE.

Wan2GP knows many VACE models (``vace_class`` in its model definitions); a user has downloaded the weights
of few of them, and Wan2GP itself calls some only partially supported (``vace_14B_2_2``: "only PARTIAL
support of Vace 2.1" in its description). The choice, in order:

1. the generator's current model, when it is a VACE one;
2. the first VACE model whose weights the host locates, fully supported ones before partial ones (a
   finetune shares what the host says of the architecture it is built on);
3. when none is found (or the host cannot tell), the preference order :data:`VACE_MODEL_TYPES`, fully
   supported ones first (Wan2GP downloads the weights at the first generation).

"Weights located" follows ``wgp.py``'s loader: the file names are the ones its ``get_model_filename`` picks
for the configured quantization and dtype (main model, second model, each module), and each must be found
by its file locator ``fl.get_local_model_filename`` — so a model counts only when it runs without a download
of its transformer (the shared text encoder and VAE are the same for every Wan model and are not checked).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from ._host import host_callable, host_global

logger = logging.getLogger(__name__)

#: The VACE models to try first, in order of preference; the host's other VACE models follow.
VACE_MODEL_TYPES = ("vace_14B_2_2", "vace_14B", "vace_1.3B")
#: The words of a model description by which Wan2GP marks a model it supports only in part.
PARTIAL_SUPPORT_WORDS = "partial support"

#: Why a model was chosen (the status line's words).
REASON_CURRENT = "the generator's current model"
REASON_WEIGHTS = "its weights are downloaded"
REASON_WEIGHTS_PARTIAL = ("its weights are downloaded; Wan2GP supports it only partially and no fully "
                          "supported VACE model is downloaded")
REASON_NO_WEIGHTS = "no VACE weights were found; Wan2GP downloads them at the first generation"
REASON_UNKNOWN = "the host does not say which weights are downloaded"


@dataclass(frozen=True)
class VaceChoice:
    """The VACE model a guide goes to, its name as the host shows it, and why it was chosen."""

    model_type: str
    name: str
    reason: str

    @property
    def current(self) -> bool:
        return self.reason == REASON_CURRENT


def _model_def(model_type: str, plugin: Any) -> Optional[Mapping[str, Any]]:
    get_model_def = host_callable(plugin, "get_model_def")
    if get_model_def is None:
        return None
    try:
        found = get_model_def(model_type)
    except Exception:
        logger.debug("get_model_def(%r) failed", model_type, exc_info=True)
        return None
    return found if isinstance(found, Mapping) else None


def is_vace_model_type(model_type: Optional[str], plugin: Any = None) -> bool:
    """The host's ``test_vace_module`` when it offers one, else the name."""
    if not model_type:
        return False
    test = host_callable(plugin, "test_vace_module")
    if test is not None:
        try:
            return bool(test(model_type))
        except Exception:
            logger.debug("test_vace_module(%r) failed", model_type, exc_info=True)
    return "vace" in model_type.lower()


def model_name(model_type: str, plugin: Any = None) -> str:
    """The name the host shows for ``model_type`` ("Vace 14B"), else the type itself."""
    name = (_model_def(model_type, plugin) or {}).get("name")
    return str(name) if name else model_type


def partially_supported(model_type: str, plugin: Any = None) -> bool:
    """Whether Wan2GP's own description of the model, or of the architecture it is built on (a finetune of
    ``vace_14B_2_2`` inherits what the host says of ``vace_14B_2_2``), says it supports it only in part."""
    model_def = _model_def(model_type, plugin) or {}
    architecture = model_def.get("architecture")
    base_def = (_model_def(architecture, plugin) or {}) if isinstance(architecture, str) else {}
    return any(PARTIAL_SUPPORT_WORDS in str(d.get("description") or "").lower() for d in (model_def, base_def))


def vace_candidates(plugin: Any = None) -> list[str]:
    """The VACE models the host offers: :data:`VACE_MODEL_TYPES` first, then its others in its order.
    Models the host hides (``visible`` false) are left out. Without the host's list, the preference order."""
    models_def = host_global(plugin, "models_def", lambda value: isinstance(value, Mapping) and bool(value))
    if models_def is None:
        known = [t for t in VACE_MODEL_TYPES if _model_def(t, plugin) is not None]
        return known or list(VACE_MODEL_TYPES)
    offered = [t for t, d in models_def.items()
               if isinstance(d, Mapping) and d.get("visible", True) and is_vace_model_type(t, plugin)]
    return [t for t in VACE_MODEL_TYPES if t in offered] + [t for t in offered if t not in VACE_MODEL_TYPES]


def model_files(model_type: str, plugin: Any = None) -> Optional[list[str]]:
    """The weight files ``wgp.py`` loads for ``model_type`` (its ``get_model_filename`` for the main model,
    the second model and each module, with the host's quantization and dtype policy); None when the host
    offers no such functions or they fail."""
    get_filename = host_callable(plugin, "get_model_filename")
    get_prop = host_callable(plugin, "get_model_recursive_prop")
    model_def = _model_def(model_type, plugin)
    if get_filename is None or get_prop is None or model_def is None:
        return None
    quantization = host_global(plugin, "transformer_quantization", lambda v: isinstance(v, str)) or "int8"
    dtype_policy = host_global(plugin, "transformer_dtype_policy", lambda v: isinstance(v, str)) or ""
    pick: Callable[..., str] = lambda **kw: get_filename(model_type, quantization, dtype_policy, **kw)  # noqa: E731
    try:
        files = [pick()]
        if "URLs2" in model_def:
            files.append(pick(submodel_no=2))
        for module in get_prop(model_type, "modules", return_list=True) or []:
            if isinstance(module, str):  # a reference to another model's modules
                module = get_prop(module, "modules", sub_prop_name="_list", return_list=True)
            if isinstance(module, Mapping):
                files += [pick(URLs=module.get("URLs")), pick(URLs=module.get("URLs2"))]
            else:
                files.append(pick(URLs=module))
    except Exception:
        logger.debug("Listing the files of %r failed", model_type, exc_info=True)
        return None
    return [str(f) for f in files if f]


def weights_present(model_type: str, plugin: Any = None) -> Optional[bool]:
    """Whether the host's file locator finds every weight file of ``model_type``; None when it cannot tell."""
    fl = host_global(plugin, "fl", lambda value: value is not None)
    locate = getattr(fl, "get_local_model_filename", None)
    files = model_files(model_type, plugin)
    if not callable(locate) or files is None:
        return None
    try:
        return bool(files) and all(locate(name) is not None for name in files)
    except Exception:
        logger.debug("Locating the files of %r failed", model_type, exc_info=True)
        return None


def choose_vace_model(current: Optional[str], plugin: Any = None) -> VaceChoice:
    """The VACE model for our guide when the generator is on ``current`` (see the module docstring)."""
    if current and is_vace_model_type(current, plugin):
        return VaceChoice(current, model_name(current, plugin), REASON_CURRENT)
    candidates = vace_candidates(plugin)
    full = [t for t in candidates if not partially_supported(t, plugin)]
    ranked = full + [t for t in candidates if t not in full]
    present = {t: weights_present(t, plugin) for t in ranked}
    for model_type in ranked:
        if present[model_type]:
            reason = REASON_WEIGHTS if model_type in full else REASON_WEIGHTS_PARTIAL
            return VaceChoice(model_type, model_name(model_type, plugin), reason)
    preferred = [t for t in ranked if t in VACE_MODEL_TYPES] or ranked or [VACE_MODEL_TYPES[-1]]
    reason = REASON_UNKNOWN if all(value is None for value in present.values()) else REASON_NO_WEIGHTS
    return VaceChoice(preferred[0], model_name(preferred[0], plugin), reason)
