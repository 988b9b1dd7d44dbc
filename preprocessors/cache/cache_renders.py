"""Rendered guide videos in the cache, each with a record of its size and SHA-256.

``v1/renders/<key>.mp4`` is served only after it matched ``v1/renders/<key>.json`` (size and
checksum; the checksum is re-read only when the file's verified stamp changed, see
``cache_hashing``). A damaged or unrecorded render is removed and reported, so the caller renders
again; a link or other foreign object in its place is reported and left alone. The record's mtime is
the render's last use (touching the video itself would change its stamp). In a shared cache the
verified stamp is kept in the node-local folder instead of the record, and partial files are never
swept by a writer (a writer on another machine may own them).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Optional, Union

from ...atomic_files import publishing, sweep_stale_partials, write_text_atomic
from ...errors import CacheError
from .cache_hashing import verify_file
from .cache_layout import FORMAT_VERSION, CacheLayout, is_plain_file, is_plain_file_or_absent, read_json

logger = logging.getLogger(__name__)


class RenderStore:
    """The ``v1/renders`` part of one cache."""

    def __init__(self, layout: CacheLayout) -> None:
        self.layout = layout

    def lookup(self, key: str) -> tuple[Optional[Path], Optional[str]]:
        """(the verified render or None, what was wrong with a stored one or None)."""
        video, record_path = self.layout.render_path(key), self.layout.render_record(key)
        folder_problem = self.layout.problem("renders")
        if folder_problem is not None:
            return None, folder_problem if os.path.lexists(self.layout.folder("renders")) else None
        if not os.path.lexists(video):
            return None, None
        if not is_plain_file(video):
            return None, f"{self.layout.relative(video)} is a link or a foreign object; it is left alone"
        problem, record = self._check(video, record_path, self.layout.node_file("renders", key))
        if problem is not None:
            logger.warning("Cached guide %s is invalid (%s): removing it; it will be rendered again.", key[:12],
                           problem)
            self.remove(key)
            return None, problem
        if record is not None:
            with contextlib.suppress(OSError):
                write_text_atomic(self.layout.node_file("renders", key) or record_path,
                                  json.dumps(record if not self.layout.shared else record["stamp"]))
        with contextlib.suppress(OSError):
            if is_plain_file(record_path):
                os.utime(record_path)  # the last use, for eviction
        return video, None

    @staticmethod
    def _check(video: Path, record_path: Path,
               node_stamp: Optional[Path] = None) -> tuple[Optional[str], Optional[dict[str, Any]]]:
        """(what is wrong or None, an updated record to persist or None); ``node_stamp``: where a shared
        cache keeps this node's verified stamp (else it is in the record)."""
        try:
            record = read_json(record_path)
        except FileNotFoundError:
            return "no checksum record", None
        except (OSError, ValueError) as exc:
            return f"unreadable checksum record ({exc})", None
        if not isinstance(record, dict) or record.get("format") != FORMAT_VERSION:
            return "foreign checksum record", None
        size = os.lstat(video).st_size
        if size != record.get("bytes"):
            return f"the file is {size} bytes, {record.get('bytes')} were stored", None
        stamp = record.get("stamp")
        if node_stamp is not None:
            stamp = None
            with contextlib.suppress(OSError, ValueError):
                stamp = read_json(node_stamp)
        matches, fresh = verify_file(video, record.get("sha256"), stamp)
        if not matches:
            return "checksum mismatch", None
        return None, ({**record, "stamp": fresh} if fresh is not None else None)

    def store(self, key: str, video: Union[str, Path]) -> Path:
        """Copy a finished guide into the cache with its record (both published atomically)."""
        self.layout.ensure("renders")
        final, record_path = self.layout.render_path(key), self.layout.render_record(key)
        for path in (final, record_path):
            if not is_plain_file_or_absent(path):
                raise CacheError(f"{self.layout.relative(path)} is a foreign object; the guide is not cached.")
        if not self.layout.shared:
            sweep_stale_partials(self.layout.folder("renders"))
        try:
            with publishing(final) as tmp:
                digest, size = _copy_hashing(Path(video), tmp)
                # the record first: a reader never sees this video without the record that vouches for it
                write_text_atomic(record_path, json.dumps({"format": FORMAT_VERSION, "key": key, "bytes": size,
                                                           "sha256": digest, "stamp": None}))
        except OSError as exc:
            self.remove(key)
            raise CacheError(f"Cannot store the guide in the cache: {exc.strerror or exc}.") from exc
        return final

    def remove(self, key: str) -> bool:
        """Remove a render and its record (only plain files of the cache)."""
        removed = self.layout.remove_file(self.layout.render_path(key))
        self.layout.remove_file(self.layout.render_record(key))
        return removed


def _copy_hashing(source: Path, target: Path) -> tuple[str, int]:
    """Copy ``source`` to ``target``; return (SHA-256, size) of the bytes written."""
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as src, open(target, "wb") as dst:
        for chunk in iter(lambda: src.read(4 * 2**20), b""):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
