"""Hashes of the flow cache: request keys, file checksums, and verified stamps that avoid re-reading.

A *verified stamp* records, next to a file the cache checked, the file's size, mtime, ctime and
inode together with the SHA-256 it was found to have. While all four still match, the file is
taken as unchanged and not read again: a cache hit on a 300 MB entry costs a few ``stat`` calls
instead of ~0.4 s of hashing, in every process (the stamp is a file, not a memo in memory).

What a stamp can miss. Ordinary writes change mtime and ctime; replacing the file changes the
inode; ``touch``/``os.utime`` can restore an old mtime but always set ctime to the current time, so
a rewrite followed by a forged mtime is still caught. What is *not* caught: damage below the file
system (bit rot, a faulty disk or a write to the raw block device), and a file system whose
timestamps or inode numbers do not behave (some network or FUSE mounts). Those are accepted: the
header and shape of a flow file are still checked on every hit, and a full check is one
``cache clear`` away. A stamp is never trusted when it was taken within the timestamp granularity
of the file's last change (the "racy" window, as git does for its index): a write landing in the
same clock tick would otherwise go unseen; such a file is simply hashed again on its next use.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ...atomic_files import write_text_atomic
from .cache_layout import FORMAT_VERSION, is_key, is_plain_file_or_absent, read_json

_CHUNK = 4 * 2**20
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
FINE_RACY_WINDOW_NS = 100_000_000  # file systems with sub-second timestamps (ext4, xfs, btrfs, tmpfs, APFS)
COARSE_RACY_WINDOW_NS = 2_000_000_000  # whole-second timestamps (FAT: 2 s, ext3/HFS+: 1 s)


def sha256_file(path: Union[str, Path]) -> str:
    """Streamed SHA-256 of a file (constant memory; never through a link)."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def make_key(params: dict[str, Any]) -> str:
    """A stable key for ``params`` (JSON with sorted keys, plus the format version)."""
    canonical = json.dumps({"format": FORMAT_VERSION, **params}, sort_keys=True, separators=(",", ":"),
                           default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FileStamp:
    """What identifies one version of a file without reading it."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int

    @classmethod
    def of(cls, path: Union[str, Path]) -> "FileStamp":
        info = os.lstat(path)
        return cls(info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)

    def racy(self, now_ns: int) -> bool:
        """Whether a change in the same timestamp tick as the last one could go unseen."""
        coarse = self.mtime_ns % 1_000_000_000 == 0 and self.ctime_ns % 1_000_000_000 == 0
        window = COARSE_RACY_WINDOW_NS if coarse else FINE_RACY_WINDOW_NS
        return now_ns - max(self.mtime_ns, self.ctime_ns) < window


def stamp_record(stamp: FileStamp, sha256: str, now_ns: Optional[int] = None) -> Optional[dict[str, Any]]:
    """The record to persist for a file just verified to hash to ``sha256`` (None while racy)."""
    if stamp.racy(time.time_ns() if now_ns is None else now_ns):
        return None
    return {"sha256": sha256, **asdict(stamp)}


def stamp_matches(record: Any, stamp: FileStamp, sha256: Any) -> bool:
    """Whether a persisted record vouches for a file whose current stamp is ``stamp`` and whose
    expected checksum is ``sha256``."""
    if not isinstance(record, dict) or not isinstance(sha256, str) or not is_key(sha256):
        return False
    return record.get("sha256") == sha256 and all(record.get(name) == value
                                                  for name, value in asdict(stamp).items())


def verify_file(path: Path, expected_sha256: Any, record: Any) -> tuple[bool, Optional[dict[str, Any]]]:
    """Check ``path`` against its expected checksum, reading it only when ``record`` does not vouch
    for its current stamp. Returns (matches, a fresh record to persist or None)."""
    stamp = FileStamp.of(path)
    if stamp_matches(record, stamp, expected_sha256):
        return True, None
    if sha256_file(path) != expected_sha256:
        return False, None
    after = FileStamp.of(path)  # a file that changed while being read is not vouched for
    return True, (stamp_record(after, expected_sha256) if after == stamp else None)


def content_hash(path: Union[str, Path], memo_for: Callable[[str], Optional[Path]]) -> str:
    """SHA-256 of a video's bytes, remembered in a stamp file so an unchanged file is not re-read.

    ``memo_for(digest_of_path) -> Path | None`` says where the memo of a path lives (None: no memo).
    """
    path = Path(path).resolve()
    stamp = FileStamp.of(path)
    memo = memo_for(hashlib.sha256(str(path).encode("utf-8")).hexdigest())
    if memo is not None:
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            known = read_json(memo)
            if stamp_matches(known, stamp, known.get("sha256")):
                return str(known["sha256"])
    digest = sha256_file(path)
    record = stamp_record(stamp, digest) if FileStamp.of(path) == stamp else None
    if memo is not None and record is not None and is_plain_file_or_absent(memo):
        with contextlib.suppress(OSError):
            write_text_atomic(memo, json.dumps({"path": str(path), **record}))
    return digest
