"""Threaded stress of the pool: releases racing with uses never leave a lease without its model.

``release``, ``release_idle``, ``unload_all`` and the end of a ``use`` must decide and act in one
step: a use that starts between "nobody uses it" and "destroy it" would otherwise hold a lease whose
model is ``None`` (or be told the annotator was released while in use).
"""
from __future__ import annotations

import gc
import sys
import threading
import time

import torch

from wan2gp_structure_video.memory import AnnotatorPool


def test_release_racing_with_use_never_hands_out_a_dead_lease() -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("tiny", lambda: torch.nn.Linear(4, 4))
    problems: list[str] = []
    counts = {"uses": 0, "cleanups": 0}
    stop = threading.Event()

    def user(teardown: str) -> None:
        while not stop.is_set():
            try:
                with pool.use("tiny", "cpu", teardown=teardown) as lease:
                    counts["uses"] += 1
                    for _ in range(2):
                        if lease.model is None:
                            problems.append("lease.model is None while in use")
                            return
                        time.sleep(0)
            except Exception as error:  # e.g. "annotator tiny was released while in use"
                problems.append(f"{type(error).__name__}: {error}")
                return
            time.sleep(0)  # leave the annotator idle for a moment: that is when clean-ups act

    def cleaner(action) -> None:
        while not stop.is_set():
            action()
            counts["cleanups"] += 1
            time.sleep(0)  # let a user in between two clean-ups

    threads = [threading.Thread(target=user, args=(teardown,)) for teardown in ("keep", "release", "unload", "keep")]
    threads += [threading.Thread(target=cleaner, args=(action,))
                for action in (pool.release, pool.release_idle, pool.unload_all)]
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: the race window is a few bytecodes wide
    gc.freeze()  # every release collects garbage: keep that cheap so that thousands of releases run
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not problems:
            time.sleep(0.02)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        sys.setswitchinterval(previous_interval)
        gc.unfreeze()
    assert not problems, problems[:3]
    assert counts["uses"] > 100 and counts["cleanups"] > 100  # the race was really exercised
    assert not pool.in_use("tiny")
    with pool.use("tiny", "cpu") as lease:  # still usable afterwards
        assert lease.model(torch.ones(1, 4)).shape == (1, 4)
