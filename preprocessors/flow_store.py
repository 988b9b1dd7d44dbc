"""Flows on disk: a memory-mapped float16 ``.npy`` array of shape (rows, H, W, 2).

Rows are written one at a time as they stream out of the flow backend and read back one at a
time when rendering, so RAM holds at most a row or two whatever the video length (the mapped
pages are file-backed and reclaimable). The file is a plain ``.npy``: it is always loaded with
``allow_pickle=False``.
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import CacheError

FLOW_DTYPE = np.float16


class FlowStoreWriter:
    """Creates the array file and fills it row by row."""

    def __init__(self, path: Union[str, Path], rows: int, height: int, width: int) -> None:
        self.path = Path(path)
        self.shape = (rows, height, width, 2)
        self.rows_written = 0
        try:
            self._array = np.lib.format.open_memmap(self.path, mode="w+", dtype=FLOW_DTYPE,
                                                    shape=self.shape) if rows > 0 else None
            if self._array is not None:
                _reserve_blocks(self.path)
        except OSError as exc:
            self._array = None
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise CacheError(f"Cannot create the flow file {self.path}: {exc.strerror or exc}; "
                             "free disk space or choose another cache folder.") from exc
        if self._array is None:  # np.memmap refuses empty arrays; write a plain empty .npy
            np.save(self.path, np.zeros(self.shape, dtype=FLOW_DTYPE), allow_pickle=False)

    def put(self, row: int, flow: np.ndarray) -> None:
        """Store one flow (H, W, 2); float16 keeps 1/1000-pixel precision up to ±2048 px."""
        if self._array is None or not 0 <= row < self.shape[0]:
            raise IndexError(f"row {row} outside 0..{self.shape[0] - 1}")
        if flow.shape != self.shape[1:]:
            raise ValueError(f"flow of shape {flow.shape}, expected {self.shape[1:]}")
        self._array[row] = flow
        self.rows_written = max(self.rows_written, row + 1)

    def close(self, sync: bool = True) -> None:
        """Flush the mapped pages to disk (and fsync) and drop the mapping."""
        if self._array is not None:
            try:
                self._array.flush()
                if sync:
                    with open(self.path, "rb+") as handle:
                        os.fsync(handle.fileno())
            except OSError as exc:
                raise CacheError(f"Cannot write the flow file {self.path}: {exc.strerror or exc}; "
                                 "free disk space or choose another cache folder.") from exc
            finally:
                self._array = None  # the last reference: the mapping closes here


def _reserve_blocks(path: Path) -> None:
    """Allocate every block of the (sparse) mapped file now, so a full disk fails here with ENOSPC
    instead of killing the process with SIGBUS when a mapped page is first written."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:  # pragma: no cover - not POSIX
        return
    with open(path, "rb+") as handle:
        try:
            fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
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
