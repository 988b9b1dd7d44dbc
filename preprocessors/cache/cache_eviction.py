"""What the flow cache holds, and least-recently-used eviction under a size limit.

``scan`` walks the cache with ``os.scandir`` and never follows a link. It sorts what it finds into
the cache's own items (entries, renders), housekeeping files (lock files, source memos, writer
folders, partial files) and *foreign* objects — anything whose name or type the cache does not
write. Foreign objects are reported by ``cache stats`` and never touched.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ...atomic_files import DEAD_WRITER_GRACE_S, is_partial_name, last_change, pid_alive, sweep_stale_partials
from .cache_layout import (SUBFOLDERS, USED_FILE, CacheLayout, is_entry_file_name, is_key, is_plain_dir,
                           is_prefix, writer_folder_parts)
from .cache_locks import sweep_locks

WRITER_GRACE_S = DEAD_WRITER_GRACE_S  # a dead writer's folder untouched this long is swept
WRITER_MAX_AGE_S = 24 * 3600.0  # any writer folder this old is swept


@dataclass(frozen=True)
class CacheItem:
    """One evictable item: a flow entry or a rendered guide."""

    last_used: float
    size: int
    kind: str  # "entry" | "render"
    key: str
    path: Path


@dataclass
class CacheScan:
    """Everything found under the cache root."""

    items: list[CacheItem] = field(default_factory=list)
    foreign: list[Path] = field(default_factory=list)
    source_memos: list[Path] = field(default_factory=list)
    writer_folders: list[tuple[Path, int]] = field(default_factory=list)


def _children(folder: Path) -> list[os.DirEntry]:
    with contextlib.suppress(OSError):  # another process may be removing it right now
        with os.scandir(folder) as entries:
            return list(entries)
    return []


def scan(layout: CacheLayout) -> CacheScan:
    """Walk the cache (no link followed) and classify what is there."""
    found = CacheScan()
    if not os.path.isdir(layout.root):  # the root itself may be a link (e.g. to a shared drive)
        return found
    if layout.problem() is not None:
        found.foreign.append(layout.base)
        return found
    for item in _children(layout.base):
        if item.name not in SUBFOLDERS or not item.is_dir(follow_symlinks=False):
            found.foreign.append(Path(item.path))
    walkers: dict[str, Callable[[CacheLayout, CacheScan], None]] = {
        "entries": _scan_entries, "renders": _scan_renders, "sources": _scan_sources, "locks": _scan_locks,
        "tmp": _scan_tmp}
    for sub, walk in walkers.items():
        if is_plain_dir(layout.folder(sub)):
            walk(layout, found)
    return found


def _scan_entries(layout: CacheLayout, found: CacheScan) -> None:
    for prefix in _children(layout.folder("entries")):
        if not (is_prefix(prefix.name) and prefix.is_dir(follow_symlinks=False)):
            found.foreign.append(Path(prefix.path))
            continue
        for entry in _children(Path(prefix.path)):
            path = Path(entry.path)
            if not (is_key(entry.name) and entry.name[:2] == prefix.name and entry.is_dir(follow_symlinks=False)):
                found.foreign.append(path)
                continue
            files = _children(path)
            if any(not (is_entry_file_name(f.name) and f.is_file(follow_symlinks=False)) for f in files):
                found.foreign.append(path)
                continue
            with contextlib.suppress(OSError):
                size = sum(f.stat(follow_symlinks=False).st_size for f in files)
                used = [f for f in files if f.name == USED_FILE]
                last = (used[0] if used else entry).stat(follow_symlinks=False).st_mtime
                found.items.append(CacheItem(last, size, "entry", entry.name, path))


def _scan_renders(layout: CacheLayout, found: CacheScan) -> None:
    videos: dict[str, os.DirEntry] = {}
    records: dict[str, os.DirEntry] = {}
    for item in _children(layout.folder("renders")):
        stem, _, suffix = item.name.partition(".")
        if is_partial_name(item.name) and item.is_file(follow_symlinks=False):
            continue  # a writer's partial file: swept when its writer is dead
        if is_key(stem) and suffix in ("mp4", "json") and item.is_file(follow_symlinks=False):
            (videos if suffix == "mp4" else records)[stem] = item
        else:
            found.foreign.append(Path(item.path))
    for key in sorted(set(videos) | set(records)):
        with contextlib.suppress(OSError):
            parts = [videos.get(key), records.get(key)]
            stats = [p.stat(follow_symlinks=False) for p in parts if p is not None]
            last = max(s.st_mtime for s in stats)
            found.items.append(CacheItem(last, sum(s.st_size for s in stats), "render", key,
                                         layout.render_path(key)))


def _scan_sources(layout: CacheLayout, found: CacheScan) -> None:
    for item in _children(layout.folder("sources")):
        stem, _, suffix = item.name.partition(".")
        if item.is_file(follow_symlinks=False) and is_key(stem) and suffix == "json":
            found.source_memos.append(Path(item.path))
        elif not (is_partial_name(item.name) and item.is_file(follow_symlinks=False)):
            found.foreign.append(Path(item.path))


def _scan_locks(layout: CacheLayout, found: CacheScan) -> None:
    for item in _children(layout.folder("locks")):
        if not (item.name.endswith(".lock") and is_key(item.name[:-5]) and item.is_file(follow_symlinks=False)):
            found.foreign.append(Path(item.path))


def _scan_tmp(layout: CacheLayout, found: CacheScan) -> None:
    for item in _children(layout.folder("tmp")):
        parts = writer_folder_parts(item.name)
        if parts is None or not item.is_dir(follow_symlinks=False):
            found.foreign.append(Path(item.path))
        else:
            found.writer_folders.append((Path(item.path), parts[1]))


def sweep(layout: CacheLayout, found: CacheScan, now: Optional[float] = None) -> None:
    """Remove what dead writers left: writer folders, partial files, unheld lock files."""
    now = time.time() if now is None else now
    for folder, pid in found.writer_folders:
        with contextlib.suppress(OSError):
            age = now - last_change(folder)
            if age > WRITER_MAX_AGE_S or (age > WRITER_GRACE_S and not pid_alive(pid)):
                layout.remove_tree(folder)
    for sub in ("renders", "sources"):
        if layout.problem(sub) is None:
            sweep_stale_partials(layout.folder(sub))
    sweep_locks(layout)


def evict(items: list[CacheItem], limit: int, remove: Callable[[CacheItem], bool]) -> tuple[int, int]:
    """Remove least-recently-used items until the total fits ``limit``; ``remove`` may refuse one
    (in use). Returns (items removed, bytes freed)."""
    total = sum(item.size for item in items)
    removed = freed = 0
    for item in sorted(items, key=lambda i: (i.last_used, i.size, i.key)):
        if total <= limit:
            break
        if not remove(item):
            continue
        total -= item.size
        removed += 1
        freed += item.size
    return removed, freed
