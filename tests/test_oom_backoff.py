"""OOM back-off: injected out-of-memory errors give the same output as an uninterrupted run."""
from __future__ import annotations

import random

import pytest
import torch

from wan2gp_structure_video.errors import OutOfMemoryAfterBackoff
from wan2gp_structure_video.memory import is_out_of_memory, next_batch_size, run_with_backoff


def _square(batch: list[int]) -> list[int]:
    return [x * x for x in batch]


class _Injector:
    """A batch function that runs out of memory when the batch is larger than ``limit`` or at chosen calls."""

    def __init__(self, limit: int = 10**9, fail_calls: set[int] = frozenset(), error=None) -> None:
        self.limit, self.fail_calls, self.calls, self.sizes = limit, set(fail_calls), 0, []
        self.error = error or (lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))

    def __call__(self, batch: list[int]) -> list[int]:
        self.calls += 1
        self.sizes.append(len(batch))
        if len(batch) > self.limit or self.calls in self.fail_calls:
            raise self.error()
        return _square(batch)


def test_detects_oom_by_type_and_message() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA driver error: CUDA_ERROR_OUT_OF_MEMORY"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not a runtime error of the device


def test_batch_size_shrinks_to_a_quarter() -> None:
    assert next_batch_size(16, 0.25, 1) == 4
    assert next_batch_size(3, 0.25, 1) == 1
    assert next_batch_size(2, 0.9, 1) == 1  # always smaller
    assert next_batch_size(8, 0.5, 3) == 4


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 7])
def test_same_output_as_uninterrupted_run(limit: int) -> None:
    items = list(range(37))
    runner = _Injector(limit=limit)
    reports = []
    cleanups = []
    out = list(run_with_backoff(iter(items), runner, 16, cleanup=lambda: cleanups.append(1),
                                on_batch=lambda done, size: reports.append((done, size))))
    assert out == _square(items)
    assert max(size for _, size in reports) <= limit and reports[-1][0] == len(items)
    assert cleanups  # every OOM is followed by a cleanup
    assert all(size <= 16 for size in runner.sizes)


def test_random_injected_oom_is_seeded_and_harmless() -> None:
    rng = random.Random(1234)
    fail = {call for call in range(1, 60) if rng.random() < 0.3}
    runner = _Injector(fail_calls=fail, error=lambda: RuntimeError("CUDA error: out of memory"))
    items = list(range(50))
    out = list(run_with_backoff(items, runner, 8, cpu_fallback=lambda: _square))
    assert out == _square(items)


def test_cpu_fallback_at_batch_size_one() -> None:
    used = []

    def cpu(batch):
        used.append(len(batch))
        return _square(batch)

    out = list(run_with_backoff(range(5), _Injector(limit=0), 4, cpu_fallback=lambda: cpu))
    assert out == _square(list(range(5))) and sum(used) == 5


def test_clear_error_without_fallback() -> None:
    with pytest.raises(OutOfMemoryAfterBackoff, match="resolution"):
        list(run_with_backoff(range(5), _Injector(limit=0), 4))


def test_other_errors_are_not_swallowed() -> None:
    def broken(batch):
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        list(run_with_backoff(range(3), broken, 2))


def test_between_batches_can_change_the_size_and_items_stream() -> None:
    pulled = []

    def source():
        for i in range(20):
            pulled.append(i)
            yield i

    seen_sizes = []
    gen = run_with_backoff(source(), lambda b: seen_sizes.append(len(b)) or _square(b), 4,
                           between_batches=lambda size: 2)
    first = next(gen)
    assert first == 0 and len(pulled) == 4  # only the current batch is pulled
    rest = list(gen)
    assert [first] + rest == _square(list(range(20)))
    assert seen_sizes[0] == 4 and set(seen_sizes[1:]) == {2}


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        list(run_with_backoff([1], _square, 0))
    with pytest.raises(ValueError):
        list(run_with_backoff([1], _square, 2, shrink=1.5))
