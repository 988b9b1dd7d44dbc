"""Load: 8 concurrent extractions in threads sharing one annotator pool, one flow cache and the host's
GPU lock (fake host) — all complete with the outputs of a sequential run, RAFT is built once, GPU
work is serialised, nothing deadlocks."""
from __future__ import annotations

import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from robustness.rbkit import assert_cache_consistent, assert_guide, leftovers
from videogen import make_video
from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.ui.host_bridge import install_host_hooks
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.annotators.flow_raft import RaftFlowBackend
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

TIMEOUT = 240


class LockingHost:
    """A fake host whose GPU lock really blocks (like Wan2GP's process_locks), recording its holders."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.max_holders = 0
        self.acquired = 0
        self.wgp = types.ModuleType("wgp")
        self.wgp.clear_gen_cache = lambda: None
        self.modules = {
            "process_locks": types.SimpleNamespace(
                acquire_GPU_ressources=self._acquire, release_GPU_ressources=self._release,
                register_GPU_resident=lambda *a, **k: None, unregister_GPU_resident=lambda *a, **k: None),
            "offload_registry": types.SimpleNamespace(register_offloadobj=lambda *a, **k: None,
                                                      unregister_offloadobj=lambda *a, **k: None)}

    def _acquire(self, state, pid, name, gr=None):
        if not self.lock.acquire(timeout=TIMEOUT):
            raise RuntimeError("host GPU lock: deadlock")
        self.holders += 1
        self.acquired += 1
        self.max_holders = max(self.max_holders, self.holders)

    def _release(self, state, pid, keep_resident=False, process_name=None, release_vram_callback=None):
        self.holders -= 1
        self.lock.release()


class _Plugin:
    def __init__(self, host: LockingHost) -> None:
        self.host = host
        self.clear_gen_cache = host.wgp.clear_gen_cache

    def set_global(self, name, value):
        setattr(self.host.wgp, name, value)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("load")
    return [make_video(root / "a.mp4", 128, 96, frames=12), make_video(root / "b.mp4", 96, 128, frames=10),
            make_video(root / "c.mkv", 160, 96, frames=14, codec="ffv1")]


def _requests(videos: list[Path], out: Path) -> list[GuideRequest]:
    a, b, c = videos
    raft = dict(backend="raft", raft_model="small", raft_weights="random", iterations=2, batch_size=2,
                device="cpu", resolution=(128, 128), frames=5, fps=8)
    dis = dict(backend="dis", resolution=(128, 96), frames=10, fps=12)
    return [
        GuideRequest(a, out / "0.mp4", **raft),
        GuideRequest(a, out / "1.mp4", **raft),                      # same flows as 0: computed once
        GuideRequest(b, out / "2.mp4", **raft),
        GuideRequest(a, out / "3.mp4", **dis),
        GuideRequest(a, out / "4.mp4", **dis),                       # same as 3
        GuideRequest(c, out / "5.mp4", **dis),
        GuideRequest(b, out / "6.mp4", **{**dis, "guide_type": "canny"}),
        GuideRequest(c, out / "7.mp4", **{**raft, "motion_strength": 2.0}),
    ]


def _slow_is_registered(monkeypatch, pool: AnnotatorPool) -> None:
    """Widen the window between "is RAFT registered?" and "register it" that concurrent first uses race in."""
    original = pool.is_registered
    monkeypatch.setattr(pool, "is_registered", lambda name: (original(name), time.sleep(0.005))[0])


def test_concurrent_first_uses_register_raft_once(monkeypatch) -> None:
    from wan2gp_structure_video.pipeline.annotators.flow import FLOW, BackendChoice
    from wan2gp_structure_video.pipeline.context import RunContext
    from wan2gp_structure_video.pipeline.extraction import register
    from wan2gp_structure_video.preprocessors.weights.raft_weights import WeightsSource

    choice = BackendChoice("raft", "raft-small", WeightsSource("small", None, "random", "random weights"), "test")
    pool = AnnotatorPool(offload="plain")
    _slow_is_registered(monkeypatch, pool)
    start = threading.Barrier(8)

    def first_use():
        start.wait(timeout=30)
        return register(RunContext(pool=pool), choice, FLOW.factory(choice))

    with ThreadPoolExecutor(max_workers=8) as executor:
        names = list(executor.map(lambda _: first_use(), range(8)))  # an "already registered" error fails here
    assert len(set(names)) == 1 and pool.names() == names[:1]


@pytest.fixture()
def host(monkeypatch):
    fake = LockingHost()
    monkeypatch.setitem(sys.modules, "wgp", fake.wgp)
    yield fake


def test_eight_concurrent_requests_share_the_pool_cache_and_host_lock(tmp_path, videos, host, monkeypatch) -> None:
    # sequential reference, on its own pool and cache
    reference = tmp_path / "reference"
    ref_pool = AnnotatorPool(offload="plain")
    for request in _requests(videos, reference):
        build_guide(request, RunContext(pool=ref_pool, cache=FlowCache(tmp_path / "ref-cache")))

    # instrument the GPU work: how many RAFT computes run at once
    active, peak, guard = [0], [0], threading.Lock()
    original = RaftFlowBackend.compute

    def compute(self, first, second):
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.01)  # widen the window a race would need
            return original(self, first, second)
        finally:
            with guard:
                active[0] -= 1

    monkeypatch.setattr(RaftFlowBackend, "compute", compute)
    pool = AnnotatorPool(offload="plain")
    _slow_is_registered(monkeypatch, pool)
    hooks = install_host_hooks(_Plugin(host), pool, host.modules)
    cache = FlowCache(tmp_path / "cache")
    out = tmp_path / "out"
    requests = _requests(videos, out)
    start = threading.Barrier(len(requests))

    def run(request: GuideRequest):
        state = {"gen": {}}
        start.wait(timeout=60)
        return build_guide(request, RunContext(pool=pool, cache=cache, gpu_lock=lambda: hooks.gpu_lock(state)))

    with ThreadPoolExecutor(max_workers=len(requests)) as executor:
        futures = [executor.submit(run, request) for request in requests]
        results = [future.result(timeout=TIMEOUT) for future in futures]  # a deadlock fails here

    for request, result in zip(requests, results):
        size = request.resolution
        assert_guide(Path(request.output), size, request.frames, float(request.fps))
        expected = np.stack(list(iter_frames(reference / Path(request.output).name)))
        got = np.stack(list(iter_frames(request.output)))
        assert np.array_equal(expected, got), f"{Path(request.output).name} differs from the sequential run"
    assert [r.cache_key for r in results[:2]] == [results[0].cache_key] * 2
    names = pool.names()
    assert len(names) == 1 and pool.construct_count(names[0]) == 1, [pool.construct_count(n) for n in names]
    assert peak[0] == 1, f"{peak[0]} RAFT computes ran at once"
    assert host.max_holders == 1 and host.acquired >= 1 and host.holders == 0
    assert not pool.in_use() and not pool.is_on_gpu()
    assert not leftovers(tmp_path)
    assert_cache_consistent(tmp_path / "cache")
    hooks.uninstall()
