"""The read-ahead thread: order, bounded memory, errors carried over, the source closed on early stops."""
from __future__ import annotations

import threading
import time

import pytest

from wan2gp_structure_video.pipeline.prefetch import prefetched


class Source:
    """An iterator that records how far it got, on which thread, and whether it was closed."""

    def __init__(self, count: int, fail_at: int = -1) -> None:
        self.count, self.fail_at = count, fail_at
        self.produced = 0
        self.closed = threading.Event()
        self.threads: set[str] = set()

    def __iter__(self):
        return self

    def __next__(self) -> int:
        self.threads.add(threading.current_thread().name)
        if self.produced == self.fail_at:
            raise OSError("disk went away")
        if self.produced >= self.count:
            raise StopIteration
        self.produced += 1
        return self.produced - 1

    def close(self) -> None:
        self.closed.set()


def test_items_come_in_order_from_another_thread() -> None:
    source = Source(100)
    assert list(prefetched(source, depth=3, name="reader")) == list(range(100))
    assert source.threads == {"reader"}
    assert source.closed.is_set()


def test_the_reader_stays_at_most_depth_items_ahead() -> None:
    source = Source(1000)
    items = prefetched(source, depth=4)
    assert next(items) == 0
    time.sleep(0.3)  # give the reader every chance to run ahead
    # one handed over, four in the queue, one more read and waiting for room
    assert source.produced <= 1 + 4 + 1
    items.close()


def test_an_error_in_the_source_is_raised_at_its_item_as_the_original_exception() -> None:
    source = Source(10, fail_at=5)
    received = []
    with pytest.raises(OSError, match="disk went away"):
        for item in prefetched(source, depth=2):
            received.append(item)
    assert received == [0, 1, 2, 3, 4]
    assert source.closed.wait(2)


def test_stopping_early_stops_the_thread_and_closes_the_source() -> None:
    source = Source(10_000)
    before = {thread.name for thread in threading.enumerate()}
    items = prefetched(source, depth=2, name="early-stop")
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert source.closed.is_set()  # closed before close() returned
    assert source.produced < 10
    assert "early-stop" not in {thread.name for thread in threading.enumerate()} - before


def test_an_exception_in_the_consumer_stops_the_reader() -> None:
    source = Source(10_000)

    def consume() -> None:
        for item in prefetched(source, depth=2, name="consumer-fails"):
            if item == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        consume()
    assert source.closed.wait(2)
    assert all(thread.name != "consumer-fails" for thread in threading.enumerate())


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        next(prefetched(iter([1]), depth=0))
