"""Content-addressed flow cache: extract once, reuse in every segment and every later run.

``FlowCache`` is a small façade over modules with one job each:

- ``cache_layout``   where each file lives, which names are the cache's own, removal guards
- ``cache_hashing``  request keys, checksums, verified stamps (no re-hash of unchanged files)
- ``cache_locks``    single-flight per key across processes, "in use" marks
- ``cache_entries``  flow entries: validate, create atomically, remove
- ``cache_renders``  rendered guide videos with their size and checksum
- ``cache_eviction`` the walk of the cache (links never followed), LRU eviction, sweeps

Nothing here is ever unpickled: data files are loaded with ``allow_pickle=False``, only files named
by hex digests are ever opened, and nothing outside the cache root is read, followed or deleted.
Problems met with stored data (a damaged entry or render, a foreign object where an entry belongs)
are logged as warnings and kept per key: ``problem(key)`` tells a caller what to say.

``FlowCache(root, node_dir=...)`` opens a cache on storage shared between machines (the farm): no
``flock`` is taken (entries are published first-writer-wins, see ``cache_entries``), nothing is
evicted or swept as a side effect of storing (only an explicit ``prune``/``clear``, run by the user
or the farm's driver between jobs), and verified stamps and source memos are kept in ``node_dir``
(a folder local to this machine), so each machine checksums an entry the first time it uses it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from ...errors import CacheError
from ...paths import user_data_dir
from .cache_entries import CacheEntry, EntryStore, Foreign
from .cache_eviction import CacheItem, evict, scan, sweep
from .cache_hashing import content_hash as _content_hash
from .cache_hashing import make_key, sha256_file
from .cache_layout import FORMAT_VERSION, MANIFEST_FILE, USED_FILE, CacheLayout, check_key, is_plain_file
from .cache_locks import InUse, LockTimeout, key_lock, remove_lock_file, sweep_locks
from .cache_renders import RenderStore

__all__ = ["FlowCache", "CacheEntry", "CacheStats", "make_key", "default_cache_dir", "sha256_file", "format_bytes",
           "FORMAT_VERSION", "DEFAULT_MAX_BYTES"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 10 * 2**30


def default_cache_dir() -> Path:
    """The global cache folder when no other is given: ``<user data dir>/flow-cache``."""
    return user_data_dir() / "flow-cache"


def format_bytes(count: float) -> str:
    """A size in the unit that shows it: ``512 KiB``, ``51.2 MiB``, ``10.0 GiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(count) >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


@dataclass(frozen=True)
class CacheStats:
    """What ``stats`` reports; ``foreign``: objects the cache did not write (left alone)."""

    root: Path
    entries: int
    renders: int
    total_bytes: int
    max_bytes: int
    foreign: tuple[str, ...] = ()
    exists: bool = True

    def __str__(self) -> str:
        text = (f"{_plural(self.entries, 'flow entry', 'flow entries')}, "
                f"{_plural(self.renders, 'rendered guide', 'rendered guides')}, "
                f"{format_bytes(self.total_bytes)} of {format_bytes(self.max_bytes)} at {self.root}")
        if not self.exists:
            text += " (not created yet)"
        if self.foreign:
            shown = ", ".join(self.foreign[:5]) + (", …" if len(self.foreign) > 5 else "")
            text += (f"; {_plural(len(self.foreign), 'foreign object', 'foreign objects')} the cache did not write, "
                     f"left alone: {shown}")
        return text


class FlowCache:
    """One cache folder; safe to share between threads and processes. Nothing is created on disk
    until something is stored."""

    _inflight_guard = threading.Lock()
    _inflight: dict[str, threading.Lock] = {}

    def __init__(self, root: Union[str, Path, None] = None, max_bytes: int = DEFAULT_MAX_BYTES, *,
                 node_dir: Union[str, Path, None] = None) -> None:
        if max_bytes <= 0:
            raise CacheError(f"Cache size limit {max_bytes} must be positive.")
        self.root = (Path(root).expanduser() if root is not None else default_cache_dir()).absolute()
        self.max_bytes = int(max_bytes)
        self._layout = CacheLayout(self.root, Path(node_dir).expanduser().absolute() if node_dir else None)
        self._in_use = InUse()
        self._entries = EntryStore(self._layout, self._in_use)
        self._renders = RenderStore(self._layout)
        self._problems: dict[str, str] = {}

    # ----------------------------------------------------------------- problems met
    def problem(self, key: str) -> Optional[str]:
        """What was wrong with the stored entry or render of ``key`` (e.g. "checksum mismatch": it was
        removed and is made again), or None; forgotten once a valid one is found."""
        return self._problems.get(key)

    def _note(self, key: str, problem: Optional[str], found: bool) -> None:
        if problem is not None:
            self._problems[key] = problem
        elif found:
            self._problems.pop(key, None)

    # ----------------------------------------------------------------- content identity
    def content_hash(self, video: Union[str, Path]) -> str:
        """SHA-256 of a video's bytes; re-read only when its verified stamp changed."""
        def memo_for(digest: str) -> Optional[Path]:
            if self._layout.shared:
                return self._layout.node_file("sources", digest)
            try:
                self._layout.ensure("sources")
            except CacheError:
                return None  # the error that matters is raised when flows are stored
            return self._layout.source_memo(digest)

        return _content_hash(video, memo_for)

    # ----------------------------------------------------------------- entries
    def _entry_dir(self, key: str) -> Path:
        return self._layout.entry_dir(key)

    def lookup(self, key: str) -> Optional[CacheEntry]:
        """The valid entry for ``key``, or None (a corrupt entry is removed with a warning; a foreign
        object in its place is left alone)."""
        check_key(key)
        try:
            entry, problem = self._entries.lookup(key)
        except Foreign as foreign:
            self._note(key, f"{foreign}; it is left alone", found=False)
            return None
        self._note(key, problem, found=entry is not None)
        return entry

    def get_or_create(self, key: str, produce: Callable[[Path], dict[str, Any]], params: dict[str, Any],
                      timeout: float = 3600.0) -> tuple[CacheEntry, bool]:
        """The entry for ``key``, computed by ``produce(folder)`` only if no valid one exists.

        ``produce`` writes ``flows.npy`` into the folder it is given and returns manifest fields
        (at least ``shape``). Concurrent callers for one key, threads or processes, compute it once.
        Where a foreign object blocks the entry's place, the flows are computed uncached (the entry is
        ``ephemeral`` and removed when its use ends). Returns ``(entry, hit)``.
        """
        entry = self.lookup(key)
        if entry is not None:
            return entry, True
        blocked = self._entries.foreign_problem(key) or self._layout.problem("locks", "tmp")
        if blocked is not None:
            logger.warning("Flow cache at %s: %s; it is left alone and these flows are not cached (remove it by "
                           "hand to cache them again).", self.root, blocked)
            self._note(key, f"{blocked}; it is left alone and the flows were not cached", found=False)
            return self._entries.create_ephemeral(key, produce, params), False
        with self._inflight_guard:
            local = self._inflight.setdefault(key, threading.Lock())
        if self._layout.shared:
            return self._publish_shared(key, produce, params, local), False
        with local:
            try:
                self._layout.ensure("entries", "locks", "tmp")
                with key_lock(self._layout, key, timeout):
                    entry = self.lookup(key)
                    if entry is not None:
                        return entry, True
                    entry = self._entries.create(key, produce, params)
            except LockTimeout as exc:
                raise CacheError(f"Waited {timeout:.0f}s for another process computing the same flows; "
                                 "try again, or use --no-cache.") from exc
            except OSError as exc:  # the lock file or a lookup failed (disk full, permissions)
                raise CacheError(f"Cannot use the flow cache at {self.root}: {exc.strerror or exc}; free disk "
                                 "space, choose another folder with --cache-dir, or use --no-cache.") from exc
        self.prune(keep=key)
        return entry, False

    def _publish_shared(self, key: str, produce: Callable[[Path], dict[str, Any]], params: dict[str, Any],
                        local: threading.Lock) -> CacheEntry:
        """Shared storage: no cross-process lock; the first writer's entry wins (threads here wait)."""
        with local:
            entry = self.lookup(key)
            if entry is not None:
                return entry
            try:
                return self._entries.publish(key, produce, params)[0]
            except OSError as exc:
                raise CacheError(f"Cannot use the shared flow cache at {self.root}: {exc.strerror or exc}; free "
                                 "disk space or choose another --cache-dir.") from exc

    @contextlib.contextmanager
    def use(self, entry: CacheEntry) -> Iterator[CacheEntry]:
        """Mark ``entry`` in use (never evicted meanwhile) and record the use for LRU (a shared cache
        takes no ``flock``: it is pruned only between jobs)."""
        manifest = None if entry.ephemeral or self._layout.shared else entry.path / MANIFEST_FILE
        try:
            with self._in_use.hold(entry.key, manifest):
                used = entry.path / USED_FILE
                with contextlib.suppress(OSError):
                    if is_plain_file(used):
                        os.utime(used, follow_symlinks=False)
                yield entry
        finally:
            if entry.ephemeral:
                shutil.rmtree(entry.path, ignore_errors=True)

    # ----------------------------------------------------------------- rendered guides
    def render_path(self, render_key: str) -> Path:
        """Where a rendered guide for ``render_key`` lives (it may not exist)."""
        return self._layout.render_path(render_key)

    def lookup_render(self, render_key: str) -> Optional[Path]:
        """A cached rendered guide that matches its recorded size and checksum, or None. A damaged one
        is removed and ``problem(render_key)`` says why (render again and tell the user)."""
        path, problem = self._renders.lookup(check_key(render_key))
        self._note(render_key, problem, found=path is not None)
        return path

    def store_render(self, render_key: str, video: Union[str, Path]) -> Path:
        """Copy a finished guide video into the cache (atomically, with its size and checksum)."""
        final = self._renders.store(check_key(render_key), video)
        if not self._layout.shared:
            self.prune()
        return final

    # ----------------------------------------------------------------- bounds
    def stats(self) -> CacheStats:
        """Entry and render counts, size, and the foreign objects found (nothing is created)."""
        found = scan(self._layout)
        return CacheStats(self.root, sum(1 for i in found.items if i.kind == "entry"),
                          sum(1 for i in found.items if i.kind == "render"), sum(i.size for i in found.items),
                          self.max_bytes, tuple(self._layout.relative(p) for p in found.foreign),
                          exists=os.path.isdir(self.root))

    def prune(self, max_bytes: Optional[int] = None, keep: Optional[str] = None) -> tuple[int, int]:
        """Evict least-recently-used items until the total fits; entries in use are skipped. Also sweeps
        what dead writers left (writer folders, partial files, lock files). Returns (items removed, bytes freed)."""
        if not os.path.isdir(self.root):
            return 0, 0
        found = scan(self._layout)

        def remove(item: CacheItem) -> bool:
            if item.kind == "render":
                return self._renders.remove(item.key) or not os.path.lexists(item.path)
            if item.key == keep or not self._entries.remove(item.path):
                return False
            remove_lock_file(self._layout, self._layout.lock_path(item.key))
            return True

        removed = evict(found.items, self.max_bytes if max_bytes is None else max_bytes, remove)
        sweep(self._layout, found)
        return removed

    def clear(self) -> tuple[int, int]:
        """Remove everything not in use (entries, renders, source memos, lock files). Returns (items
        removed, bytes freed)."""
        removed = self.prune(max_bytes=0)
        for memo in scan(self._layout).source_memos:
            self._layout.remove_file(memo)
        sweep_locks(self._layout)
        return removed

