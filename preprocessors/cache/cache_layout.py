"""Where the flow cache keeps what, which names are its own, and how to touch them without leaving it.

Layout under the cache root (``v1`` is the format version)::

    v1/entries/<k[:2]>/<key>/flows.npy        float16 (rows, H, W, 2), memory-mapped when read
    v1/entries/<k[:2]>/<key>/manifest.json    shape, dtype, parameters, sha256 of flows.npy, timestamps
    v1/entries/<k[:2]>/<key>/verified.json    the verified stamp of flows.npy (see cache_hashing)
    v1/entries/<k[:2]>/<key>/used             its mtime is the entry's last use (LRU)
    v1/renders/<render key>.mp4               rendered guide videos
    v1/renders/<render key>.json              their size, sha256 and verified stamp; its mtime is the last use
    v1/sources/<sha256 of the path>.json      content hash of a video, reused while its stamp matches
    v1/locks/<key>.lock                       cross-process single-flight (removed when released)
    v1/tmp/<key>.<pid>.<random>/              entries being written

The cache folder may be shared or tampered with, so nothing here trusts what it finds: folders are
walked with ``os.scandir`` without following links, only the names above count as the cache's own
(anything else is *foreign*: reported, never read, followed or deleted), and every removal first
checks that the object is a plain file or folder sitting exactly where the layout puts it, with no
link on the way from the resolved cache root.

A *shared* cache (storage several machines write, see the farm) also has a node-local folder: the
verified stamps of entries and renders and the source memos live there, because a stamp (inode,
ctime) taken on one machine says nothing reliable on another; each node hashes an entry the first
time it uses it.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat as stat_mod
from pathlib import Path
from typing import Any, Optional, Union

from ...errors import CacheError
from ...options import ROWS_FILE, MANIFEST_FILE, STAMP_FILE, USED_FILE

FORMAT_VERSION = 1
ENTRY_FILES = frozenset({ROWS_FILE, MANIFEST_FILE, STAMP_FILE, USED_FILE})
SUBFOLDERS = ("entries", "renders", "sources", "locks", "tmp")
_KEY = re.compile(r"[0-9a-f]{64}\Z")
_PREFIX = re.compile(r"[0-9a-f]{2}\Z")
_WRITER = re.compile(r"(?P<key>[0-9a-f]{64})\.(?P<pid>\d+)\.[0-9a-f]{8}\Z")
_ENTRY_PARTIAL = re.compile(r"\.(?:manifest|verified)\.json\.\d+\.[0-9a-f]{8}\.partial\.json\Z")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_MAX_JSON_BYTES = 64 * 2**20  # a manifest is a few kB; a planted giant file is not read whole


def is_key(name: str) -> bool:
    """Whether ``name`` is a cache key: 64 lowercase hex digits."""
    return _KEY.match(name) is not None


def is_prefix(name: str) -> bool:
    """Whether ``name`` is an entry-prefix folder name: 2 lowercase hex digits."""
    return _PREFIX.match(name) is not None


def check_key(key: str) -> str:
    """Keys are 64 lowercase hex digits: nothing a caller passes can name a path outside the cache."""
    if not isinstance(key, str) or not is_key(key):
        raise ValueError(f"not a cache key: {key!r}")
    return key


def is_entry_file_name(name: str) -> bool:
    """A name the cache writes inside an entry folder (its files, and the partial files of their writes)."""
    return name in ENTRY_FILES or _ENTRY_PARTIAL.match(name) is not None


def writer_folder_parts(name: str) -> Optional[tuple[str, int]]:
    """(key, pid) of a writer folder name in ``tmp/``, or None for other names."""
    match = _WRITER.match(name)
    return (match.group("key"), int(match.group("pid"))) if match else None


def is_plain_file(path: Union[str, Path]) -> bool:
    """A regular file, not a link (never follows one)."""
    with contextlib.suppress(OSError):
        return stat_mod.S_ISREG(os.lstat(path).st_mode)
    return False


def is_plain_dir(path: Union[str, Path]) -> bool:
    """A real folder, not a link to one."""
    with contextlib.suppress(OSError):
        return stat_mod.S_ISDIR(os.lstat(path).st_mode)
    return False


def is_plain_file_or_absent(path: Union[str, Path]) -> bool:
    """Nothing there yet, or a regular file: a place the cache may (re)publish a file of its own."""
    return not os.path.lexists(path) or is_plain_file(path)


def read_json(path: Union[str, Path]) -> Any:
    """Parse a JSON file, refusing to open it through a link."""
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        return json.loads(handle.read(_MAX_JSON_BYTES).decode("utf-8"))


class CacheLayout:
    """The paths of one cache folder and the guards that keep every operation inside it."""

    def __init__(self, root: Path, node_dir: Optional[Path] = None) -> None:
        self.root = root
        self.base = root / f"v{FORMAT_VERSION}"
        self.node_dir = node_dir

    @property
    def shared(self) -> bool:
        """Whether this cache lives on storage shared between machines (no locks, stamps kept per node)."""
        return self.node_dir is not None

    def node_file(self, kind: str, key: str) -> Optional[Path]:
        """The node-local file of a shared cache for ``kind`` ("entries", "renders", "sources") and
        ``key``, its folder created; None for a cache that is not shared."""
        if self.node_dir is None:
            return None
        folder = self.node_dir / kind
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{check_key(key)}.json"

    # ----------------------------------------------------------------- names
    def folder(self, sub: str) -> Path:
        return self.base / sub

    def entry_dir(self, key: str) -> Path:
        key = check_key(key)
        return self.base / "entries" / key[:2] / key

    def render_path(self, key: str) -> Path:
        return self.base / "renders" / f"{check_key(key)}.mp4"

    def render_record(self, key: str) -> Path:
        return self.base / "renders" / f"{check_key(key)}.json"

    def lock_path(self, key: str) -> Path:
        return self.base / "locks" / f"{check_key(key)}.lock"

    def source_memo(self, digest: str) -> Path:
        return self.base / "sources" / f"{check_key(digest)}.json"

    def relative(self, path: Path) -> str:
        """``path`` as shown to users: relative to the cache root."""
        with contextlib.suppress(ValueError):
            return Path(path).relative_to(self.root).as_posix()
        return str(path)

    # ----------------------------------------------------------------- guards
    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def in_place(self, path: Path) -> bool:
        """True when ``path``'s folder is exactly where the layout puts it under the resolved root:
        no link anywhere between the root and ``path`` (``path`` itself is checked by the caller)."""
        try:
            relative = Path(path).relative_to(self.root)
        except ValueError:
            return False
        if ".." in relative.parts or not relative.parts:
            return False
        expected = os.path.join(self._real_root(), *relative.parts[:-1])
        return os.path.realpath(Path(path).parent) == expected

    def problem(self, *subs: str) -> Optional[str]:
        """Why the cache cannot be written in ``subs`` (a link or a file where a folder belongs), or None."""
        for path in (self.base, *(self.folder(sub) for sub in subs)):
            if os.path.lexists(path) and not (is_plain_dir(path) and self.in_place(path)):
                return f"{self.relative(path)} is not a folder the cache made (a link or a foreign file)"
        return None

    def ensure(self, *subs: str) -> None:
        """Create the folders ``subs`` (and the root) if needed; refuse foreign objects in their place."""
        try:
            for sub in subs:
                self.folder(sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"Cannot create the cache folder {self.root}: {exc.strerror or exc}; "
                             "choose another with --cache-dir or use --no-cache.") from exc
        problem = self.problem(*subs)
        if problem is not None:
            raise CacheError(f"The flow cache at {self.root} cannot be written: {problem}; it is left alone. "
                             "Remove it by hand, choose another --cache-dir, or use --no-cache.")

    def remove_file(self, path: Path) -> bool:
        """Unlink a plain file of the cache; anything else (a link, a folder, outside) is left alone."""
        if not (self.in_place(path) and is_plain_file(path)):
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def remove_tree(self, path: Path) -> bool:
        """Remove a real folder of the cache and what it holds (never through a link)."""
        if not (self.in_place(path) and is_plain_dir(path)):
            return False
        shutil.rmtree(path, ignore_errors=True)  # rmtree itself never follows links inside the tree
        return not os.path.lexists(path)
