"""What every weights lookup shares (RAFT, Depth Anything): a cheap fingerprint for cache keys,
the layout a checkpoint's key names belong to, safe reading of ``.pth`` files, and asking the
host's file locator. Nothing here touches the network; torch loads only to read a file.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from ...errors import WeightsError

logger = logging.getLogger(__name__)

HostLocator = Callable[[str], Optional[str]]
_MIB = 1 << 20


def file_fingerprint(path: str | os.PathLike[str], *, label: str = "weights") -> str:
    """sha256 of a file's size, first MiB and last MiB (cached per size and modification time).

    ``label`` names the file in error messages (``"RAFT weights"``, ``"depth weights"``).
    """
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise WeightsError(f"Cannot read {label} {path}: {exc.strerror or exc}; check the path.") from exc
    return _fingerprint(os.fspath(path), stat.st_size, stat.st_mtime_ns, label)


@functools.lru_cache(maxsize=64)
def _fingerprint(path: str, size: int, mtime_ns: int, label: str) -> str:
    digest = hashlib.sha256(str(size).encode())
    try:
        with open(path, "rb") as handle:
            digest.update(handle.read(_MIB))
            if size > _MIB:
                handle.seek(max(_MIB, size - _MIB))
                digest.update(handle.read(_MIB))
    except OSError as exc:
        raise WeightsError(f"Cannot read {label} {path}: {exc.strerror or exc}; check its permissions.") from exc
    return digest.hexdigest()


def layout_from_keys(keys: Iterable[str], families: Mapping[str, tuple[str, ...]], *, what: str, hint: str) -> str:
    """The one layout (name → key prefixes) the key names belong to.

    ``WeightsError`` when they belong to none or to several: "Not <what> (keys are neither …)".
    """
    names = [str(k) for k in keys]
    hits = [name for name, roots in families.items() if any(k.startswith(roots) for k in names)]
    if len(hits) == 1:
        return hits[0]
    kind = "a mix of" if hits else "neither of"
    sample = ", ".join(names[:3]) or "no keys"
    raise WeightsError(f"Not {what} (keys are {kind} the {' and '.join(families)} layouts; first: {sample}): {hint}.")


def load_checkpoint(path: str | os.PathLike[str], *, label: str, hint: str, mmap: bool = False) -> dict[str, Any]:
    """A ``.pth`` file read safely (``weights_only``, on the CPU) as a flat ``{name: tensor}`` dict.

    ``state_dict`` / ``model`` wrappers are removed. ``mmap`` maps the tensors instead of reading
    them (zip-format checkpoints only: cheap when only names and shapes are needed).
    """
    import torch

    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # pickle, zip and unsupported-global errors all mean "unreadable"
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise WeightsError(f"Cannot read {label} {path} ({reason}): {hint}.") from exc
    return named_tensors(loaded, path, label=label, hint=hint)


def named_tensors(loaded: Any, path: Any, *, label: str, hint: str) -> dict[str, Any]:
    """The ``{name: tensor}`` dict inside a loaded checkpoint; ``WeightsError`` when there is none."""
    import torch

    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping) \
                and not any(isinstance(v, torch.Tensor) for v in loaded.values()):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not loaded \
            or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()):
        raise WeightsError(f"{label[:1].upper()}{label[1:]} {path} hold no state dict of named tensors: {hint}.")
    return dict(loaded)


def locate_with_host(host_locator: Optional[HostLocator], relative: str) -> Optional[Path]:
    """The file the host's locator (Wan2GP's ``fl.locate_file``) finds for ``relative``, or None."""
    if host_locator is None:
        return None
    try:
        found = host_locator(relative)
    except Exception as exc:  # the host's locator is foreign code: never let it break the search
        logger.warning("Wan2GP's file locator failed for %s: %s", relative, exc)
        return None
    if found and Path(found).is_file():
        return Path(found).resolve()
    return None
