"""Flows on disk: a float16 ``.npy`` array of shape (rows, H, W, 2).

Rows are written one at a time as they stream out of the flow backend (positioned writes from one
reused half-float buffer: writing through a fresh memory mapping costs a page fault per 4 KiB,
ten times the write itself) and read back one at a time through a read-only mapping when
rendering, so RAM holds at most a row or two whatever the video length (the mapped pages are
file-backed and reclaimable). The file is a plain ``.npy``: it is always loaded with
``allow_pickle=False``.
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ...errors import CacheError
from .half_float import store_half

FLOW_DTYPE = np.float16


class FlowStoreWriter:
    """Creates the array file (every block reserved) and fills it row by row."""

    def __init__(self, path: Union[str, Path], rows: int, height: int, width: int) -> None:
        self.path = Path(path)
        self.shape = (rows, height, width, 2)
        self.rows_written = 0
        self._fd: Optional[int] = None
        self._row = np.empty(self.shape[1:], dtype=FLOW_DTYPE)
        try:
            if rows > 0:
                header = np.lib.format.open_memmap(self.path, mode="w+", dtype=FLOW_DTYPE, shape=self.shape)
                self._offset = int(header.offset)
                del header  # only the header and the file's size were wanted
                self._fd = os.open(self.path, os.O_RDWR)
                _reserve_blocks(self._fd)
            else:  # np.memmap refuses empty arrays; write a plain empty .npy
                np.save(self.path, np.zeros(self.shape, dtype=FLOW_DTYPE), allow_pickle=False)
        except OSError as exc:
            self._close_fd()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise CacheError(f"Cannot create the flow file {self.path}: {exc.strerror or exc}; "
                             "free disk space or choose another cache folder.") from exc

    def put(self, row: int, flow: np.ndarray) -> None:
        """Store one flow (H, W, 2); float16 keeps 1/1000-pixel precision up to ±2048 px."""
        if self._fd is None or not 0 <= row < self.shape[0]:
            raise IndexError(f"row {row} outside 0..{self.shape[0] - 1}")
        if flow.shape != self.shape[1:]:
            raise ValueError(f"flow of shape {flow.shape}, expected {self.shape[1:]}")
        store_half(self._row, flow)
        data = memoryview(self._row).cast("B")
        position = self._offset + row * len(data)
        try:
            while data:
                written = os.pwrite(self._fd, data, position)
                data, position = data[written:], position + written
        except OSError as exc:
            raise CacheError(f"Cannot write the flow file {self.path}: {exc.strerror or exc}; "
                             "free disk space or choose another cache folder.") from exc
        self.rows_written = max(self.rows_written, row + 1)

    def close(self, sync: bool = True) -> None:
        """Write the file through to disk (``sync``: fsync) and close it."""
        if self._fd is not None:
            try:
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                raise CacheError(f"Cannot write the flow file {self.path}: {exc.strerror or exc}; "
                                 "free disk space or choose another cache folder.") from exc
            finally:
                self._close_fd()

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)


def _reserve_blocks(fd: int) -> None:
    """Allocate every block of the (sparse) file now, so a full disk fails before any flow is
    computed (and the writes, into allocated blocks, are cheaper)."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:  # pragma: no cover - not POSIX
        return
    try:
        fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # the file system cannot preallocate
            raise


def open_flow_rows(path: Union[str, Path]) -> np.ndarray:
    """Map a flow file read-only (no pickle, no copy into RAM)."""
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # an empty array cannot be mapped
        array = np.load(path, allow_pickle=False)
    if array.dtype != FLOW_DTYPE or array.ndim != 4 or array.shape[-1] != 2:
        raise CacheError(f"{path} is not a flow file (dtype {array.dtype}, shape {array.shape}).")
    return array
