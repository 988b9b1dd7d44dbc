"""Content-addressed flow cache: extract once, reuse in every segment and every later run.

Layout under the cache root (``v1`` is the format version)::

    v1/entries/<k[:2]>/<key>/flows.npy      float16 (rows, H, W, 2), memory-mapped when read
    v1/entries/<k[:2]>/<key>/manifest.json  shape, dtype, parameters, sha256 of flows.npy, timestamps
    v1/entries/<k[:2]>/<key>/used           its mtime is the entry's last use (LRU)
    v1/renders/<render key>.mp4             rendered guide videos (optional)
    v1/sources/<sha256 of the path>.json    content hash of a video, reused while size+mtime match
    v1/locks/<key>.lock                     cross-process single-flight
    v1/tmp/<key>.<pid>.<random>/            entries being written

An entry is written in a temporary folder (data fsynced, manifest written last) and renamed into
place, so a reader sees a whole entry or none. An entry counts only when its manifest is complete
and the checksum of its data matches; anything else is removed and recomputed with a warning.
Nothing here is ever unpickled: data files are loaded with ``allow_pickle=False`` and only files
named by hex digests are ever opened.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
from filelock import FileLock, Timeout

from ..errors import CacheError
from ..paths import user_data_dir
from .flow_store import FLOW_DTYPE, open_flow_rows

try:  # shared locks mark entries in use across processes (POSIX); elsewhere only in-process counts apply
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_MAX_BYTES = 10 * 2**30
FLOWS_FILE, MANIFEST_FILE, USED_FILE = "flows.npy", "manifest.json", "used"
_HEX = set("0123456789abcdef")
_CHUNK = 4 * 2**20


def default_cache_dir() -> Path:
    """The global cache folder when no other is given: ``<user data dir>/flow-cache``."""
    return user_data_dir() / "flow-cache"


def sha256_file(path: Union[str, Path]) -> str:
    """Streamed SHA-256 of a file (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_key(params: dict[str, Any]) -> str:
    """A stable key for ``params`` (JSON with sorted keys, plus the format version)."""
    canonical = json.dumps({"format": FORMAT_VERSION, **params}, sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_key(key: str) -> str:
    """Keys are 64 lowercase hex digits: nothing a caller passes can name a path outside the cache."""
    if len(key) != 64 or not set(key) <= _HEX:
        raise ValueError(f"not a cache key: {key!r}")
    return key


@dataclass(frozen=True)
class CacheEntry:
    """A valid entry: its folder and manifest."""

    key: str
    path: Path
    manifest: dict[str, Any]

    @property
    def flows_path(self) -> Path:
        return self.path / FLOWS_FILE

    def rows(self) -> np.ndarray:
        """The stored flows, mapped read-only."""
        if self.manifest["shape"][0] == 0:
            return np.zeros(tuple(self.manifest["shape"]), dtype=FLOW_DTYPE)
        return open_flow_rows(self.flows_path)


@dataclass(frozen=True)
class CacheStats:
    """What ``stats`` reports."""

    root: Path
    entries: int
    renders: int
    total_bytes: int
    max_bytes: int

    def __str__(self) -> str:
        return (f"{self.entries} flow entries, {self.renders} rendered guides, "
                f"{self.total_bytes / 2**20:.1f} MiB of {self.max_bytes / 2**30:.1f} GiB at {self.root}")


class FlowCache:
    """One cache folder; safe to share between threads and processes."""

    _inflight_guard = threading.Lock()
    _inflight: dict[str, threading.Lock] = {}

    def __init__(self, root: Union[str, Path, None] = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise CacheError(f"Cache size limit {max_bytes} must be positive.")
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = int(max_bytes)
        self._base = self.root / f"v{FORMAT_VERSION}"
        self._in_use: dict[str, int] = {}
        self._in_use_guard = threading.Lock()
        self._verified: dict[str, tuple[int, int]] = {}
        try:
            for sub in ("entries", "renders", "sources", "locks", "tmp"):
                (self._base / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"Cannot create the cache folder {self.root}: {exc.strerror or exc}; "
                             "choose another with --cache-dir or use --no-cache.") from exc

    # ----------------------------------------------------------------- content identity
    def content_hash(self, video: Union[str, Path]) -> str:
        """SHA-256 of a video's bytes; re-hashed only when its size or mtime changed."""
        path = Path(video).resolve()
        stat = path.stat()
        memo = self._base / "sources" / (hashlib.sha256(str(path).encode("utf-8")).hexdigest() + ".json")
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            known = json.loads(memo.read_text("utf-8"))
            if known["size"] == stat.st_size and known["mtime_ns"] == stat.st_mtime_ns and \
                    len(known["sha256"]) == 64 and set(known["sha256"]) <= _HEX:
                return str(known["sha256"])
        digest = sha256_file(path)
        with contextlib.suppress(OSError):
            _atomic_write_text(memo, json.dumps({"path": str(path), "size": stat.st_size,
                                                 "mtime_ns": stat.st_mtime_ns, "sha256": digest}))
        return digest

    # ----------------------------------------------------------------- entries
    def _entry_dir(self, key: str) -> Path:
        key = _check_key(key)
        return self._base / "entries" / key[:2] / key

    def lookup(self, key: str) -> Optional[CacheEntry]:
        """The valid entry for ``key``, or None (a corrupt entry is removed with a warning)."""
        folder = self._entry_dir(key)
        if not folder.exists():
            return None
        problem = self._validate(key, folder)
        if problem is None:
            manifest = json.loads((folder / MANIFEST_FILE).read_text("utf-8"))
            return CacheEntry(key, folder, manifest)
        logger.warning("Flow cache entry %s is invalid (%s): removing it; it will be recomputed.", key[:12], problem)
        self._remove_entry(folder, force=True)
        return None

    def _validate(self, key: str, folder: Path) -> Optional[str]:
        """None when the entry is whole and its data matches its checksum; else what is wrong."""
        try:
            manifest = json.loads((folder / MANIFEST_FILE).read_text("utf-8"))
        except FileNotFoundError:
            return "no manifest"
        except (OSError, ValueError) as exc:
            return f"unreadable manifest ({exc})"
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION or manifest.get("key") != key \
                or not manifest.get("complete"):
            return "incomplete or foreign manifest"
        data = folder / FLOWS_FILE
        try:
            stat = data.stat()
        except OSError:
            return "no data file"
        if stat.st_size != manifest.get("bytes"):
            return f"data is {stat.st_size} bytes, manifest says {manifest.get('bytes')}"
        if self._verified.get(key) == (stat.st_size, stat.st_mtime_ns):
            return None
        if sha256_file(data) != manifest.get("sha256"):
            return "checksum mismatch"
        try:  # the header too: a pickle-bearing or foreign .npy is refused here, never loaded later
            shape = list(open_flow_rows(data).shape)
        except (ValueError, OSError, CacheError) as exc:
            return f"not a flow array ({exc})"
        if shape != manifest.get("shape"):
            return f"data has shape {shape}, manifest says {manifest.get('shape')}"
        self._verified[key] = (stat.st_size, stat.st_mtime_ns)
        return None

    @contextlib.contextmanager
    def use(self, entry: CacheEntry) -> Iterator[CacheEntry]:
        """Mark ``entry`` in use (never evicted meanwhile) and record the use for LRU."""
        with self._in_use_guard:
            self._in_use[entry.key] = self._in_use.get(entry.key, 0) + 1
        handle = None
        try:
            if fcntl is not None:
                handle = open(entry.path / MANIFEST_FILE, "rb")
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            with contextlib.suppress(OSError):
                (entry.path / USED_FILE).touch()
            yield entry
        finally:
            if handle is not None:
                handle.close()
            with self._in_use_guard:
                self._in_use[entry.key] -= 1
                if not self._in_use[entry.key]:
                    del self._in_use[entry.key]

    def get_or_create(self, key: str, produce: Callable[[Path], dict[str, Any]], params: dict[str, Any],
                      timeout: float = 3600.0) -> tuple[CacheEntry, bool]:
        """The entry for ``key``, computed by ``produce(folder)`` only if no valid one exists.

        ``produce`` writes ``flows.npy`` into the folder it is given and returns manifest fields
        (at least ``shape``). Concurrent callers for one key, threads or processes, compute it once.
        Returns ``(entry, hit)``.
        """
        entry = self.lookup(key)
        if entry is not None:
            return entry, True
        with self._inflight_guard:
            local = self._inflight.setdefault(key, threading.Lock())
        with local:
            try:
                with FileLock(str(self._base / "locks" / f"{_check_key(key)}.lock"), timeout=timeout):
                    entry = self.lookup(key)
                    if entry is not None:
                        return entry, True
                    return self._create(key, produce, params), False
            except Timeout as exc:
                raise CacheError(f"Waited {timeout:.0f}s for another process computing the same flows; "
                                 "try again, or use --no-cache.") from exc
            except OSError as exc:  # the lock file or a lookup failed (disk full, permissions)
                raise CacheError(f"Cannot use the flow cache at {self.root}: {exc.strerror or exc}; free disk "
                                 "space, choose another folder with --cache-dir, or use --no-cache.") from exc

    def _create(self, key: str, produce: Callable[[Path], dict[str, Any]], params: dict[str, Any]) -> CacheEntry:
        for stale in (self._base / "tmp").glob(f"{key}.*"):  # left by a killed writer (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self._base / "tmp" / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            fields = produce(tmp)
            data = tmp / FLOWS_FILE
            with open(data, "rb+") as handle:
                os.fsync(handle.fileno())
            now = time.time()
            manifest = {"format": FORMAT_VERSION, "key": key, "dtype": np.dtype(FLOW_DTYPE).name,
                        "params": params, "bytes": data.stat().st_size, "sha256": sha256_file(data),
                        "created": now, "complete": True, **fields}
            _atomic_write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1, default=str))
            (tmp / USED_FILE).touch()
            final = self._entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                self._remove_entry(final, force=True)
            os.rename(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CacheError(f"Cannot write the flow cache at {self.root}: {exc.strerror or exc}; free disk space, "
                             "choose another folder with --cache-dir, or use --no-cache.") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        entry = CacheEntry(key, final, manifest)
        self._verified[key] = (entry.flows_path.stat().st_size, entry.flows_path.stat().st_mtime_ns)
        self.prune(keep=key)
        return entry

    # ----------------------------------------------------------------- rendered guides
    def render_path(self, render_key: str) -> Path:
        """Where a rendered guide for ``render_key`` lives (it may not exist)."""
        return self._base / "renders" / f"{_check_key(render_key)}.mp4"

    def lookup_render(self, render_key: str) -> Optional[Path]:
        """A cached rendered guide, if any (its use is recorded)."""
        path = self.render_path(render_key)
        if path.is_file() and path.stat().st_size > 0:
            with contextlib.suppress(OSError):
                os.utime(path)
            return path
        return None

    def store_render(self, render_key: str, video: Union[str, Path]) -> Path:
        """Copy a finished guide video into the cache (atomically)."""
        final = self.render_path(render_key)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            shutil.copyfile(video, tmp)
            os.replace(tmp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise CacheError(f"Cannot store the guide in the cache: {exc.strerror or exc}.") from exc
        self.prune()
        return final

    # ----------------------------------------------------------------- bounds
    def _items(self) -> list[tuple[float, int, str, Path]]:
        """(last use, bytes, kind, path) of every entry and render."""
        items: list[tuple[float, int, str, Path]] = []
        for folder in (self._base / "entries").glob("*/*"):
            with contextlib.suppress(OSError):  # another process may be removing it right now
                if not folder.is_dir():
                    continue
                size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
                used = folder / USED_FILE
                last = used.stat().st_mtime if used.exists() else folder.stat().st_mtime
                items.append((last, size, "entry", folder))
        for render in (self._base / "renders").glob("*.mp4"):
            with contextlib.suppress(OSError):
                stat = render.stat()
                items.append((stat.st_mtime, stat.st_size, "render", render))
        return items

    def stats(self) -> CacheStats:
        """Entry count and size."""
        items = self._items()
        return CacheStats(self.root, sum(1 for i in items if i[2] == "entry"),
                          sum(1 for i in items if i[2] == "render"), sum(i[1] for i in items), self.max_bytes)

    def prune(self, max_bytes: Optional[int] = None, keep: Optional[str] = None) -> tuple[int, int]:
        """Evict least-recently-used items until the total fits; entries in use are skipped.

        Returns (items removed, bytes freed).
        """
        limit = self.max_bytes if max_bytes is None else max_bytes
        items = sorted(self._items())
        total = sum(i[1] for i in items)
        removed = freed = 0
        for _last, size, kind, path in items:
            if total <= limit:
                break
            if kind == "entry":
                if path.name == keep or not self._remove_entry(path):
                    continue
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
            total -= size
            removed += 1
            freed += size
        self._sweep_tmp()
        return removed, freed

    def clear(self) -> tuple[int, int]:
        """Remove everything not in use. Returns (items removed, bytes freed)."""
        return self.prune(max_bytes=0)

    def _remove_entry(self, folder: Path, force: bool = False) -> bool:
        """Delete an entry unless it is in use (here or, on POSIX, in another process)."""
        if not force and self._in_use.get(folder.name):
            return False
        manifest = folder / MANIFEST_FILE
        handle = None
        try:
            if not force and fcntl is not None and manifest.exists():
                handle = open(manifest, "rb")
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return False  # another process is reading it
            with contextlib.suppress(OSError):
                manifest.unlink()  # first: from here on the entry is invalid whatever remains
            shutil.rmtree(folder, ignore_errors=True)
            self._verified.pop(folder.name, None)
            return True
        finally:
            if handle is not None:
                handle.close()

    def _sweep_tmp(self, older_than: float = 24 * 3600) -> None:
        """Remove temporary folders of writers that died long ago."""
        now = time.time()
        for tmp in (self._base / "tmp").iterdir():
            with contextlib.suppress(OSError):
                if now - tmp.stat().st_mtime > older_than:
                    shutil.rmtree(tmp, ignore_errors=True)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
