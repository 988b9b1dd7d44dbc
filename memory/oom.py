"""Out-of-memory back-off: run items in batches, and on OOM clean up, shrink the batch and retry the
same items, so the output is identical to a run that never ran out of memory."""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from ..errors import OutOfMemoryAfterBackoff
from .devices import loaded_torch

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
BatchFn = Callable[[list], Sequence]

#: Message fragments of out-of-memory errors raised as plain RuntimeErrors (PyTorch, the CUDA driver, cuDNN/cuBLAS).
OOM_MESSAGES = ("out of memory", "cuda_error_out_of_memory", "cublas_status_alloc_failed",
                "cudnn_status_alloc_failed", "failed to allocate memory")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means the device ran out of memory (by type or by message)."""
    torch = loaded_torch()  # a torch error can only come from a process that loaded torch
    oom_type = None if torch is None else (getattr(torch, "OutOfMemoryError", None)
                                           or getattr(torch.cuda, "OutOfMemoryError", None))
    if oom_type is not None and isinstance(error, oom_type):
        return True
    if isinstance(error, RuntimeError):
        text = str(error).lower()
        return any(fragment in text for fragment in OOM_MESSAGES)
    return False


def next_batch_size(size: int, shrink: float, minimum: int) -> int:
    """The batch size after an OOM at ``size``: ``size × shrink`` rounded down, at least ``minimum``,
    and always smaller than ``size`` when ``size > minimum``."""
    return max(minimum, min(size - 1, int(size * shrink)))


def run_with_backoff(items: Iterable[Item], process: BatchFn, batch_size: int, *, shrink: float = 0.25,
                     min_batch_size: int = 1, cleanup: Optional[Callable[[], None]] = None,
                     cpu_fallback: Optional[Callable[[], BatchFn]] = None,
                     between_batches: Optional[Callable[[int], Optional[int]]] = None,
                     on_batch: Optional[Callable[[int, int], None]] = None,
                     on_oom: Optional[Callable[[int, Optional[int]], None]] = None) -> Iterator[Result]:
    """Yield ``process(batch)`` results item by item, in order.

    ``items`` is consumed lazily: only the current batch is held. On an out-of-memory error the
    ``cleanup`` runs, the batch size is cut (``× shrink``) and the same items are retried; at
    ``min_batch_size`` the ``cpu_fallback`` (a factory of a new ``process``) takes over when given,
    else :class:`OutOfMemoryAfterBackoff` is raised. ``between_batches(size)`` may return a new batch
    size (pressure policy); ``on_batch(done, size)`` reports progress after each batch;
    ``on_oom(size, new_size)`` is told of each back-off (``new_size`` None: the CPU fallback).
    """
    if batch_size < 1 or min_batch_size < 1:
        raise ValueError("batch_size and min_batch_size must be at least 1")
    if not 0.0 < shrink < 1.0:
        raise ValueError("shrink must be between 0 and 1 (exclusive)")
    size = max(batch_size, min_batch_size)
    source = iter(items)
    pending: list = []
    done = 0
    fell_back = False
    exhausted = False
    while True:
        while len(pending) < size and not exhausted:
            try:
                pending.append(next(source))
            except StopIteration:
                exhausted = True
        if not pending:
            return
        batch = pending[:size]
        try:
            results = list(process(batch))
        except BaseException as error:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not is_out_of_memory(error):
                raise
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            del error  # drop the traceback (and the tensors its frames hold) before cleaning up
            results = None
        if results is None:
            if cleanup is not None:
                cleanup()
            if size > min_batch_size:
                new_size = next_batch_size(size, shrink, min_batch_size)
                logger.warning("Out of memory at batch size %d: retrying the same items at batch size %d.",
                               size, new_size)
                if on_oom is not None:
                    on_oom(size, new_size)
                size = new_size
                continue
            if cpu_fallback is not None and not fell_back:
                logger.warning("Out of memory at batch size %d: falling back to the CPU.", size)
                if on_oom is not None:
                    on_oom(size, None)
                process = cpu_fallback()
                fell_back = True
                continue
            raise OutOfMemoryAfterBackoff(
                f"Out of memory even at batch size {size} ({message}): lower the resolution, the number of "
                "frames or the RAFT iterations, use raft small or the dis backend, or free GPU memory.")
        if len(results) != len(batch):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        del pending[:len(batch)]
        del batch
        for result in results:
            yield result
        done += len(results)
        del results
        if on_batch is not None:
            on_batch(done, size)
        if between_batches is not None and (pending or not exhausted):
            suggested = between_batches(size)
            if suggested is not None:
                size = max(min_batch_size, int(suggested))
