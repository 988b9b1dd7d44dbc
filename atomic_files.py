"""Publishing files atomically, and sweeping what killed writers left behind (stdlib only).

Every file this project publishes (guide videos, cache entries and renders, timelines, the batch
history) is written under a *partial name* in the folder of its final name, flushed and fsynced,
then renamed over the final name, and the folder is fsynced. A reader therefore sees either the old
file or the complete new one, never a half-written file.

Partial names look like ``.<final name>.<pid>.<token>.partial<suffix>``: hidden, marked as partial,
carrying the writer's process id (so a later run can tell a dead writer's leftover from a live
writer's work in progress) and ending with the media suffix of the final file, so that encoders that
pick the container from the extension (PyAV, matplotlib) still work.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

PARTIAL_MARK = ".partial"
_PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?P<token>[0-9a-f]{8})\.partial(?P<suffix>\.[^.]*)?$")

__all__ = ["partial_path", "publishing", "write_text_atomic", "write_bytes_atomic", "copy_atomic", "fsync_dir",
           "is_partial_name", "partial_target", "partial_writer_pid", "pid_alive", "sweep_stale_partials",
           "DEAD_WRITER_GRACE_S", "last_change", "removed_on_failure"]

#: A dead writer's folder unchanged this long may be swept (another container may own a pid dead here).
DEAD_WRITER_GRACE_S = 600.0


def partial_path(target: PathLike, suffix: Optional[str] = None) -> Path:
    """A fresh partial name beside ``target`` (``suffix`` defaults to the target's own suffix)."""
    target = Path(target)
    ext = target.suffix if suffix is None else suffix
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{PARTIAL_MARK}{ext}")


def fsync_dir(path: PathLike) -> None:
    """Make a rename inside ``path`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextlib.contextmanager
def removed_on_failure(folder: PathLike, error: type[Exception], what: str, advice: str) -> Iterator[None]:
    """Remove the partly written ``folder`` if the block fails, whatever was raised; an ``OSError``
    becomes one line, ``error(f"{what}: {reason}; {advice}")`` (a cache entry, an export folder)."""
    try:
        yield
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise error(f"{what}: {exc.strerror or exc}; {advice}") from exc
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@contextlib.contextmanager
def publishing(target: PathLike, *, suffix: Optional[str] = None, make_parents: bool = True) -> Iterator[Path]:
    """Yield a partial path to write; on success it is fsynced and renamed to ``target``.

    On any exception (including ``KeyboardInterrupt``) the partial file is removed and the target is
    left as it was.
    """
    target = Path(target)
    if make_parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(target, suffix)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        _fsync_file(tmp)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes_atomic(target: PathLike, data: bytes) -> Path:
    """Publish ``data`` at ``target`` atomically; returns the target path."""
    with publishing(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Publish ``text`` at ``target`` atomically; returns the target path."""
    return write_bytes_atomic(target, text.encode(encoding))


def copy_atomic(source: PathLike, target: PathLike) -> Path:
    """Copy ``source`` to ``target`` atomically; returns the target path."""
    with publishing(target) as tmp:
        shutil.copyfile(source, tmp)
    return Path(target)


def is_partial_name(name: str) -> bool:
    """Whether ``name`` is a partial name made by :func:`partial_path`."""
    return _PARTIAL_RE.match(name) is not None


def partial_target(name: str) -> Optional[str]:
    """The final name a partial name is for (through nested partial names: a partial file of a partial
    file is for the same final file), or ``None`` for other names."""
    match = _PARTIAL_RE.match(name)
    if match is None:
        return None
    inner = match.group("name")
    return partial_target(inner) if is_partial_name(inner) else inner


def partial_writer_pid(name: str) -> Optional[int]:
    """The writer's process id encoded in a partial name, or ``None`` for other names."""
    match = _PARTIAL_RE.match(name)
    return int(match.group("pid")) if match else None


def last_change(folder: PathLike) -> float:
    """The newest modification time of ``folder`` and anything under it (links not followed).
    Raises ``OSError`` when the folder itself is gone; what vanishes under it meanwhile is skipped."""
    newest = os.lstat(folder).st_mtime
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def sweep_stale_partials(folder: PathLike, final_name: Optional[str] = None) -> list[Path]:
    """Remove partial files in ``folder`` whose writer process is gone; returns what was removed.

    Only plain files (never links or folders) with a partial name are considered; with
    ``final_name`` only the partials of that final file. A partial of a live writer is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL_RE.match(entry.name)
        if match is None or (final_name is not None and partial_target(entry.name) != final_name):
            continue
        with contextlib.suppress(OSError):
            if not entry.is_file(follow_symlinks=False) or pid_alive(int(match.group("pid"))):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed
