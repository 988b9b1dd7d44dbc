"""Read ahead on a worker thread: decode the next source frames while the flow model works on these.

Decoding (PyAV, swscale, the frame fitter) releases the GIL, so a reader thread keeps the core that
would otherwise wait for it busy while the backend computes a batch. The queue is bounded, so
memory holds at most ``depth`` items more than the consumer has, whatever the video length.
"""
from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

Item = TypeVar("Item")

_END = object()
_POLL_SECONDS = 0.1


class _Failure:
    """An exception raised by the source, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(source: Iterator[Item], depth: int = 8, name: str = "prefetch") -> Iterator[Item]:
    """Yield the items of ``source`` in order, produced up to ``depth`` items ahead on a thread.

    An exception in ``source`` is raised here, as the original exception, at the item where it
    happened. When the consumer stops early (``close()``, an exception, Ctrl-C) the thread stops
    and ``source`` is closed on that thread before this generator returns.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, not {depth!r}")
    items: "queue.Queue[object]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        """Put ``item`` on the queue unless the consumer has gone; True when it was put."""
        while not stop.is_set():
            try:
                items.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in source:
                if not hand_over(item):
                    return
            hand_over(_END)
        except BaseException as error:  # handed to the consumer thread
            hand_over(_Failure(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=read, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():
            try:  # unblock a reader waiting on a full queue, then wait for it to close the source
                while True:
                    items.get_nowait()
            except queue.Empty:
                pass
            worker.join(_POLL_SECONDS)
