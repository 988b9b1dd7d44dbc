"""Entries of the cache (any annotator's rows): validate, create (atomically, once per key) and remove.

An entry holds one row store (``ROWS_FILE``) in the annotator's row shape and dtype, both written in its
manifest (``shape``: rows first; ``dtype``). Entries of earlier releases stored depth maps in the flow
container as (maps, H, W/2, 2) with the true shape in ``depth_shape``: :meth:`CacheEntry.rows` serves them
in their own shape (a view of the same bytes), so they keep hitting unchanged.

An entry is written in a temporary folder (data fsynced, manifest written last) and renamed into
place, so a reader sees a whole entry or none. An entry counts only when its folder holds nothing
but the cache's own files, its manifest is complete, and its data matches the manifest's checksum —
checked by reading the data only when its verified stamp no longer matches (see ``cache_hashing``).
The ``.npy`` header and shape are checked on every use. Anything else is removed and recomputed with
a warning; a *foreign* object where an entry belongs (a link, a file, a folder holding other names)
is left alone and the flows are computed into a private temporary folder instead, uncached.

On storage shared between machines (:meth:`EntryStore.publish`) no lock is taken: each writer fills
its own folder and renames it into place; the first rename wins and a later writer discards its copy
(renaming a folder onto a non-empty one fails), so the entry any reader sees is one writer's whole work.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ...atomic_files import fsync_dir, removed_on_failure, write_text_atomic
from ...errors import CacheError
from ...scratch_dirs import make_scratch_dir
from .cache_hashing import FileStamp, sha256_file, stamp_record, verify_file
from .cache_layout import (ROWS_FILE, FORMAT_VERSION, MANIFEST_FILE, STAMP_FILE, USED_FILE, CacheLayout,
                           is_entry_file_name, is_plain_dir, is_plain_file, read_json, writer_folder_parts)
from .cache_locks import InUse, exclusive
from .row_store import FLOW_DTYPE, open_rows

logger = logging.getLogger(__name__)

Producer = Callable[[Path], dict[str, Any]]
#: Manifest field of an earlier release's depth entry: the maps' true shape (stored as (maps, H, W/2, 2)).
LEGACY_DEPTH_SHAPE = "depth_shape"


@dataclass(frozen=True)
class CacheEntry:
    """A valid entry: its folder and manifest (``ephemeral``: computed outside the cache, not kept)."""

    key: str
    path: Path
    manifest: dict[str, Any]
    ephemeral: bool = False

    @property
    def rows_path(self) -> Path:
        return self.path / ROWS_FILE

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest.get("dtype", FLOW_DTYPE))

    @property
    def shape(self) -> tuple[int, ...]:
        """The rows' shape (rows first), as the annotator wrote them."""
        return tuple(int(n) for n in self.manifest.get(LEGACY_DEPTH_SHAPE, self.manifest["shape"]))

    def rows(self) -> np.ndarray:
        """The stored rows in their own shape, mapped read-only."""
        if self.manifest["shape"][0] == 0:
            return np.zeros(self.shape, dtype=self.dtype)
        stored = open_rows(self.rows_path, self.dtype)
        return stored if stored.shape == self.shape else stored.reshape(self.shape)


class Foreign(Exception):
    """A foreign object sits where an entry of this key belongs (the message says which)."""


class EntryStore:
    """The ``v1/entries`` part of one cache."""

    def __init__(self, layout: CacheLayout, in_use: InUse) -> None:
        self.layout = layout
        self.in_use = in_use

    # ----------------------------------------------------------------- reading
    def foreign_problem(self, key: str) -> Optional[str]:
        """Why the place of ``key``'s entry is not the cache's own, or None."""
        folder = self.layout.entry_dir(key)
        problem = self.layout.problem("entries")
        if problem is not None:
            return problem
        for path in (folder.parent, folder):
            if os.path.lexists(path) and not (is_plain_dir(path) and self.layout.in_place(path)):
                return f"{self.layout.relative(path)} is a link or a foreign file"
        if is_plain_dir(folder):
            with os.scandir(folder) as items:
                for item in items:
                    if not is_entry_file_name(item.name):
                        return f"{self.layout.relative(folder)} holds a foreign object ({item.name})"
                    if not item.is_file(follow_symlinks=False):
                        return f"{self.layout.relative(folder)}/{item.name} is a link or a folder"
        return None

    def lookup(self, key: str) -> tuple[Optional[CacheEntry], Optional[str]]:
        """(the valid entry or None, what was wrong with a stored one or None)."""
        folder = self.layout.entry_dir(key)
        foreign = self.foreign_problem(key)
        if foreign is not None:
            raise Foreign(foreign)
        if not os.path.lexists(folder):
            return None, None
        problem, manifest = self._validate(key, folder)
        if problem is None:
            return CacheEntry(key, folder, manifest), None
        logger.warning("Flow cache entry %s is invalid (%s): removing it; it will be recomputed.", key[:12], problem)
        self.remove(folder, force=True)
        return None, problem

    def _validate(self, key: str, folder: Path) -> tuple[Optional[str], dict[str, Any]]:
        try:
            manifest = read_json(folder / MANIFEST_FILE)
        except FileNotFoundError:
            return "no manifest", {}
        except (OSError, ValueError) as exc:
            return f"unreadable manifest ({exc})", {}
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION or manifest.get("key") != key \
                or not manifest.get("complete"):
            return "incomplete or foreign manifest", {}
        data = folder / ROWS_FILE
        if not is_plain_file(data):
            return "no data file", {}
        size = os.lstat(data).st_size
        if size != manifest.get("bytes"):
            return f"data is {size} bytes, manifest says {manifest.get('bytes')}", {}
        stamp_file = self.layout.node_file("entries", key) or folder / STAMP_FILE
        record = None
        with contextlib.suppress(OSError, ValueError):
            record = read_json(stamp_file)
        matches, fresh = verify_file(data, manifest.get("sha256"), record)
        if not matches:
            return "checksum mismatch", {}
        try:  # the header too: a pickle-bearing or foreign .npy is refused here, never loaded later
            shape = list(open_rows(data, manifest.get("dtype", FLOW_DTYPE)).shape)
        except (ValueError, OSError, CacheError, TypeError) as exc:
            return f"not a row array ({exc})", {}
        if shape != manifest.get("shape"):
            return f"data has shape {shape}, manifest says {manifest.get('shape')}", {}
        if fresh is not None:
            with contextlib.suppress(OSError):
                write_text_atomic(stamp_file, json.dumps(fresh))
        return None, manifest

    # ----------------------------------------------------------------- writing
    def create(self, key: str, produce: Producer, params: dict[str, Any]) -> CacheEntry:
        """Compute the entry of ``key`` (the caller holds its lock) and publish it."""
        self.layout.ensure("entries", "tmp")
        tmp_root = self.layout.folder("tmp")
        with os.scandir(tmp_root) as items:  # left by a killed writer of this key (we hold the lock)
            for item in list(items):
                parts = writer_folder_parts(item.name)
                if parts is not None and parts[0] == key:
                    self.layout.remove_tree(Path(item.path))
        tmp = self._writer_folder(key)
        final = self.layout.entry_dir(key)
        with self._writing(tmp):
            manifest = self._fill(tmp, key, produce, params)
            if os.path.lexists(final):
                self.remove(final, force=True)
            self._rename_into_place(tmp, final)
        return CacheEntry(key, final, manifest)

    def publish(self, key: str, produce: Producer, params: dict[str, Any]) -> tuple[CacheEntry, bool]:
        """Shared storage: compute the entry of ``key`` without any lock and publish it unless another
        writer did first (then this copy is discarded and theirs returned). Returns (entry, ours)."""
        self.layout.ensure("entries", "tmp")
        tmp = self._writer_folder(key)
        final = self.layout.entry_dir(key)
        with self._writing(tmp):
            manifest = self._fill(tmp, key, produce, params, stamp=self.layout.node_file("entries", key))
            try:
                self._rename_into_place(tmp, final)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another writer was first: theirs is the entry
                winner, problem = self.lookup(key)
                if winner is None:
                    raise CacheError(f"Another writer published the flow cache entry {key[:12]} first, but it is "
                                     f"not valid ({problem}); run the job again.") from exc
                return winner, False
        return CacheEntry(key, final, manifest), True

    def _writer_folder(self, key: str) -> Path:
        """A new private folder in ``tmp/`` for one writer of ``key``."""
        tmp = self.layout.folder("tmp") / f"{key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        return tmp

    def _writing(self, tmp: Path) -> contextlib.AbstractContextManager[None]:
        return removed_on_failure(tmp, CacheError, f"Cannot write the flow cache at {self.layout.root}",
                                  "free disk space, choose another folder with --cache-dir, or use --no-cache.")

    @staticmethod
    def _rename_into_place(tmp: Path, final: Path) -> None:
        """Rename a filled writer folder to the entry's place (fails if a non-empty entry is there)."""
        for attempt in range(3):  # an eviction may remove the empty prefix folder between the two calls
            final.parent.mkdir(exist_ok=True)
            try:
                os.rename(tmp, final)
                break
            except FileNotFoundError:
                if attempt == 2 or not tmp.exists():
                    raise
        fsync_dir(final.parent)

    def create_ephemeral(self, key: str, produce: Producer, params: dict[str, Any]) -> CacheEntry:
        """Compute the entry into a private temporary folder (removed when its use ends)."""
        folder = make_scratch_dir("flows")
        with removed_on_failure(folder, CacheError, f"Cannot write temporary flows in {folder.parent}",
                                "free disk space."):
            manifest = self._fill(folder, key, produce, params, stamp=None)
        return CacheEntry(key, folder, manifest, ephemeral=True)

    @staticmethod
    def _fill(folder: Path, key: str, produce: Producer, params: dict[str, Any],
              stamp: Optional[Path] = Path(STAMP_FILE)) -> dict[str, Any]:
        """Run ``produce`` into ``folder`` and write the manifest; the verified stamp goes to ``stamp``
        (relative: inside ``folder``; None: nowhere)."""
        fields = produce(folder)
        data = folder / ROWS_FILE
        with open(data, "rb+") as handle:
            os.fsync(handle.fileno())
        before = FileStamp.of(data)
        digest = sha256_file(data)
        manifest = {"format": FORMAT_VERSION, "key": key, "dtype": np.dtype(FLOW_DTYPE).name, "params": params,
                    "bytes": data.stat().st_size, "sha256": digest, "created": time.time(), "complete": True,
                    **fields}
        write_text_atomic(folder / MANIFEST_FILE, json.dumps(manifest, indent=1, default=str))
        record = stamp_record(before, digest) if stamp is not None and FileStamp.of(data) == before else None
        if record is not None:
            write_text_atomic(folder / stamp, json.dumps(record))
        (folder / USED_FILE).touch()
        return manifest

    # ----------------------------------------------------------------- removing
    def remove(self, folder: Path, force: bool = False) -> bool:
        """Delete an entry unless it is in use (here or, on POSIX, in another process) or not ours."""
        if not is_plain_dir(folder) or not self.layout.in_place(folder):
            return False
        if not force and self.in_use.busy(folder.name):
            return False
        # a shared cache takes no flock: readers on other machines are not protected (prune between jobs)
        with (contextlib.nullcontext(True) if self.layout.shared else exclusive(folder / MANIFEST_FILE)) as free:
            if not (free or force):
                return False  # another process is reading it
            self.layout.remove_file(folder / MANIFEST_FILE)  # first: from here on the entry is invalid
            with os.scandir(folder) as items:
                names = [item.name for item in items]
            for name in names:  # only the cache's own plain files; anything else keeps the folder
                if is_entry_file_name(name):
                    self.layout.remove_file(folder / name)
        with contextlib.suppress(OSError):
            os.rmdir(folder)
        with contextlib.suppress(OSError):
            os.rmdir(folder.parent)  # the prefix folder, once empty (rmdir never follows a link)
        return not os.path.lexists(folder)
