"""The farm's cache: one folder on storage every machine mounts at the same path.

What the storage must provide (NFS v3/v4, CephFS, Lustre, SMB 3 and similar do; object-store FUSE
mounts usually do not): ``rename`` of a file or folder within one file system is atomic, and renaming
a folder onto a non-empty folder fails (first writer wins); ``fsync`` reaches the server before it
returns; a file opened after another machine renamed it into place shows that machine's whole
content (close-to-open consistency). Nothing relies on ``flock``, inode numbers or ctimes agreeing
across machines: verified stamps and source memos are kept per machine (``node_dir``), so each
machine checksums an entry the first time it reads it.
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Union

from ..preprocessors.cache.flow_cache import FlowCache, default_cache_dir

NODE_FOLDER = "wan2gp-structure-video-node"


def node_dir_for(root: Path) -> Path:
    """This machine's private folder for the shared cache at ``root`` (in the local temp folder)."""
    digest = hashlib.sha256(str(root).encode("utf-8")).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / NODE_FOLDER / digest


def open_shared_cache(root: Union[str, Path, None]) -> FlowCache:
    """The shared cache at ``root`` (default: this user's cache folder, for a one-machine farm), opened
    in shared mode: no locks, no eviction by this process, stamps kept on this machine."""
    folder = (Path(root).expanduser() if root is not None else default_cache_dir()).absolute()
    return FlowCache(folder, node_dir=node_dir_for(folder))
