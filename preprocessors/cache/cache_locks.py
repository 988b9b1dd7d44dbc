"""Locks of the flow cache: single-flight per key, and "in use" marks that protect entries from eviction.

Single-flight: one lock file per key in ``v1/locks/``, taken with ``flock``. The holder removes the
file *before* releasing it, so lock files do not pile up. That is safe because a waiter, once it gets
the lock, checks that the path still names the file it locked (same inode) and otherwise starts
over on the new file: two processes can never both believe they hold the lock of one key. A process
killed while holding a lock leaves its file behind (the kernel drops the lock itself); ``sweep_locks``
removes such files with the same protocol. Where ``fcntl`` is missing (Windows) the ``filelock``
package is used instead.

In use: an entry being read holds a shared ``flock`` on its manifest (other processes see it) and an
in-process count (other threads and caches of this process see it); eviction takes an exclusive,
non-blocking ``flock`` and skips the entry when it cannot.
"""
from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

from .cache_layout import CacheLayout, is_key, is_plain_file

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_POLL_S = 0.05


class LockTimeout(Exception):
    """The lock was not obtained in time."""


def _open_lock_file(path: Path) -> int:
    """Open (creating) a lock file, never through a link."""
    return os.open(path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return False
        raise
    return True


def _still_named(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.lstat(path).st_ino
    except FileNotFoundError:
        return False


def _acquire(path: Path, timeout: Optional[float]) -> Optional[int]:
    """The fd of the locked, still-current lock file; None when ``timeout`` ran out (0: one try)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    fd = _open_lock_file(path)
    while True:
        if _try_lock(fd):
            if _still_named(fd, path):
                return fd
            os.close(fd)  # its holder removed it: lock the file that carries the name now
            fd = _open_lock_file(path)
            continue
        if deadline is not None and time.monotonic() >= deadline:
            os.close(fd)
            return None
        time.sleep(_POLL_S)


@contextlib.contextmanager
def key_lock(layout: CacheLayout, key: str, timeout: float) -> Iterator[None]:
    """Hold the cross-process lock of ``key``; its file is removed on release."""
    path = layout.lock_path(key)
    if fcntl is None:  # pragma: no cover - Windows
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(path), timeout=timeout):
                yield
        except Timeout as exc:
            raise LockTimeout(str(exc)) from exc
        return
    fd = _acquire(path, timeout)
    if fd is None:
        raise LockTimeout(f"{path} is held by another process")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if layout.in_place(path) and _still_named(fd, path):
                os.unlink(path)
        os.close(fd)


def remove_lock_file(layout: CacheLayout, path: Path) -> bool:
    """Remove a lock file nobody holds (a live holder's file is left alone)."""
    if fcntl is None or not (is_plain_file(path) and layout.in_place(path)):  # pragma: no cover - Windows
        return False
    try:
        fd = _acquire(path, timeout=0)
    except OSError:
        return False
    if fd is None:
        return False
    try:
        return layout.remove_file(path) if _still_named(fd, path) else False
    finally:
        os.close(fd)


def sweep_locks(layout: CacheLayout) -> int:
    """Remove the lock files of ``v1/locks`` that nobody holds; returns how many."""
    folder = layout.folder("locks")
    if layout.problem("locks") is not None or not os.path.isdir(folder):
        return 0
    removed = 0
    with os.scandir(folder) as entries:
        for item in list(entries):
            if item.name.endswith(".lock") and is_key(item.name[:-5]):
                removed += remove_lock_file(layout, Path(item.path))
    return removed


class InUse:
    """Which entries are being read, in this process and (through ``flock``) in others."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._guard = threading.Lock()

    def busy(self, key: str) -> bool:
        with self._guard:
            return bool(self._counts.get(key))

    @contextlib.contextmanager
    def hold(self, key: str, manifest: Optional[Path]) -> Iterator[None]:
        """Mark ``key`` in use; ``manifest`` (when given) carries the shared cross-process lock."""
        with self._guard:
            self._counts[key] = self._counts.get(key, 0) + 1
        fd = None
        try:
            if fcntl is not None and manifest is not None:
                with contextlib.suppress(OSError):
                    fd = os.open(manifest, os.O_RDONLY | _O_NOFOLLOW)
                    fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            if fd is not None:
                os.close(fd)
            with self._guard:
                self._counts[key] -= 1
                if not self._counts[key]:
                    del self._counts[key]


@contextlib.contextmanager
def exclusive(manifest: Path) -> Iterator[bool]:
    """Yield whether no process holds ``manifest`` shared (kept exclusive for the block)."""
    if fcntl is None or not is_plain_file(manifest):  # pragma: no cover - Windows, or nothing to lock
        yield True
        return
    try:
        fd = os.open(manifest, os.O_RDONLY | _O_NOFOLLOW)
    except OSError:
        yield True
        return
    try:
        yield _try_lock(fd)
    finally:
        os.close(fd)
