"""Finding Wan2GP's contour weights (``ckpts/scribble/netG_A_latest.pth``) — never downloading them.

Both the host's "Canny" and its "Shapes" run this one file. Order: an explicit path; the host's file
locator (inside Wan2GP); ``scribble/netG_A_latest.pth`` under each candidate ``ckpts`` folder
(``$WAN2GP_CKPTS``, ``$WAN2GP_ROOT/ckpts``, the Wan2GP folder above the plugin, ``./ckpts``).
No torch here: finding the file is cheap and happens before any model loads.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ...errors import WeightsError, WeightsNotFoundError
from .raft_weights import default_search_dirs
from .weights_files import HostLocator, file_fingerprint, locate_with_host

logger = logging.getLogger(__name__)

#: Where Wan2GP keeps the contour network, relative to a ``ckpts`` folder.
CONTOUR_HOST_FILE = "scribble/netG_A_latest.pth"
CONTOUR_HOW_TO_GET = ("Wan2GP downloads it with its core files the first time it fetches a model (DeepBeepMeep/Wan2.1, "
                      "folder scribble), or pass --contour-weights PATH")


@dataclass(frozen=True)
class ContourWeightsSource:
    """Where the contour network's weights come from (``path`` None: random weights, tests only)."""

    path: Optional[str]
    origin: str
    seed: int = 0

    def identity(self) -> str:
        """A stable id of these weights for cache keys (hashes the file's ends and size)."""
        if self.path is None:
            return f"random:{self.seed}"
        return f"netG_A:{file_fingerprint(self.path, label='contour weights')}"


def find_contour_weights(explicit_path: Optional[str] = None, *, host_locator: Optional[HostLocator] = None,
                         search_dirs: Optional[Sequence[Path]] = None) -> Optional[ContourWeightsSource]:
    """The first contour weights found on disk, or None (an explicit path that is not a file raises)."""
    if explicit_path:
        path = Path(explicit_path).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(f"Contour weights file {path} does not exist: check --contour-weights.")
        if path.is_dir():
            raise WeightsError(f"Contour weights path {path} is a folder: pass the netG_A_latest.pth file itself.")
        return ContourWeightsSource(str(path.resolve()), "explicit path")
    host = locate_with_host(host_locator, CONTOUR_HOST_FILE)
    if host is not None:
        return ContourWeightsSource(str(host), f"Wan2GP {CONTOUR_HOST_FILE}")
    for folder in (default_search_dirs() if search_dirs is None else search_dirs):
        candidate = Path(folder).expanduser() / CONTOUR_HOST_FILE
        if candidate.is_file():
            return ContourWeightsSource(str(candidate.resolve()), f"Wan2GP ckpts/{CONTOUR_HOST_FILE} ({folder})")
    logger.debug("No contour weights found on disk")
    return None


def require_contour_weights(explicit_path: Optional[str] = None, *, host_locator: Optional[HostLocator] = None,
                            search_dirs: Optional[Sequence[Path]] = None) -> ContourWeightsSource:
    """:func:`find_contour_weights`, or a one-line ``WeightsNotFoundError`` saying where it looked and what to do."""
    source = find_contour_weights(explicit_path, host_locator=host_locator, search_dirs=search_dirs)
    if source is not None:
        return source
    folders = default_search_dirs() if search_dirs is None else list(search_dirs)
    files = ", ".join(str(Path(d) / CONTOUR_HOST_FILE) for d in folders) or "no ckpts folder"
    host = "Wan2GP's file locator, " if host_locator is not None else ""
    raise WeightsNotFoundError(f"No contour weights found (looked in {host}{files}): {CONTOUR_HOW_TO_GET}.")
