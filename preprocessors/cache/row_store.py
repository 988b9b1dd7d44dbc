"""An annotator's rows on disk: one ``.npy`` array of shape (rows, *row shape) in the annotator's dtype —
flows (N-1, H, W, 2) float16, depth maps (N, H, W) float16, or any other annotator's rows.

Rows are written one at a time as they stream out of the annotator (positioned writes from one
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
#: The dtypes a row store holds (plain numbers only: a store is never loaded with pickle).
ROW_DTYPES = ("float16", "float32", "uint8", "uint16")


class RowStoreWriter:
    """Creates the array file (every block reserved) and fills it row by row."""

    def __init__(self, path: Union[str, Path], rows: int, row_shape: tuple[int, ...],
                 dtype: Union[str, np.dtype] = FLOW_DTYPE) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        if self.dtype.name not in ROW_DTYPES:
            raise ValueError(f"row dtype {self.dtype} is not one of {ROW_DTYPES}")
        self.shape = (rows, *row_shape)
        self.rows_written = 0
        self._fd: Optional[int] = None
        self._row = np.empty(self.shape[1:], dtype=self.dtype)
        try:
            if rows > 0:
                header = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=self.shape)
                self._offset = int(header.offset)
                del header  # only the header and the file's size were wanted
                self._fd = os.open(self.path, os.O_RDWR)
                _reserve_blocks(self._fd)
            else:  # np.memmap refuses empty arrays; write a plain empty .npy
                np.save(self.path, np.zeros(self.shape, dtype=self.dtype), allow_pickle=False)
        except OSError as exc:
            self._close_fd()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise CacheError(f"Cannot create the row file {self.path}: {exc.strerror or exc}; "
                             "free disk space or choose another cache folder.") from exc

    def put(self, row: int, value: np.ndarray) -> None:
        """Store one row (float16 keeps 1/1000-pixel precision for flows up to ±2048 px)."""
        if self._fd is None or not 0 <= row < self.shape[0]:
            raise IndexError(f"row {row} outside 0..{self.shape[0] - 1}")
        if value.shape != self.shape[1:]:
            raise ValueError(f"row of shape {value.shape}, expected {self.shape[1:]}")
        if self.dtype == FLOW_DTYPE:
            store_half(self._row, value)
        else:
            np.copyto(self._row, value, casting="unsafe")
        data = memoryview(self._row).cast("B")
        position = self._offset + row * len(data)
        try:
            while data:
                written = os.pwrite(self._fd, data, position)
                data, position = data[written:], position + written
        except OSError as exc:
            raise CacheError(f"Cannot write the row file {self.path}: {exc.strerror or exc}; "
                             "free disk space or choose another cache folder.") from exc
        self.rows_written = max(self.rows_written, row + 1)

    def close(self, sync: bool = True) -> None:
        """Write the file through to disk (``sync``: fsync) and close it."""
        if self._fd is not None:
            try:
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                raise CacheError(f"Cannot write the row file {self.path}: {exc.strerror or exc}; "
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


class FlowStoreWriter(RowStoreWriter):
    """A row store of flows: rows of (H, W, 2) float16."""

    def __init__(self, path: Union[str, Path], rows: int, height: int, width: int) -> None:
        super().__init__(path, rows, (height, width, 2), FLOW_DTYPE)


def open_rows(path: Union[str, Path], dtype: Union[str, np.dtype] = FLOW_DTYPE) -> np.ndarray:
    """Map a row store read-only (no pickle, no copy into RAM); refuses another dtype."""
    path = Path(path)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # an empty array cannot be mapped
        array = np.load(path, allow_pickle=False)
    if array.dtype != np.dtype(dtype) or array.ndim < 2:
        raise CacheError(f"{path} is not a row store of {np.dtype(dtype)} (dtype {array.dtype}, shape {array.shape}).")
    return array


def open_flow_rows(path: Union[str, Path]) -> np.ndarray:
    """Map a flow file read-only: (rows, H, W, 2) float16."""
    array = open_rows(path)
    if array.ndim != 4 or array.shape[-1] != 2:
        raise CacheError(f"{path} is not a flow file (dtype {array.dtype}, shape {array.shape}).")
    return array
