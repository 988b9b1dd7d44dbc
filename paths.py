"""Where the project keeps its files outside the repository (no third-party imports)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

APP_DIR_NAME = "wan2gp-structure-video"
HOME_ENV = "WAN2GP_STRUCTURE_VIDEO_HOME"
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_url(text: str) -> bool:
    """``scheme://…``: a URL, to be named as one (``Path`` would fold its ``//`` into ``/``)."""
    return bool(_URL.match(text))


def user_data_dir() -> Path:
    """The project's own folder: ``$WAN2GP_STRUCTURE_VIDEO_HOME``, else the user cache directory.

    Linux/macOS: ``$XDG_CACHE_HOME`` or ``~/.cache``; Windows: ``%LOCALAPPDATA%``.
    """
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / APP_DIR_NAME
