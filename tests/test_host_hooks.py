"""Host hooks against a recording fake host: order of calls, idempotence, reversibility, failures."""
from __future__ import annotations

import gc
import types
import weakref

import pytest
import torch
from torchvision.models.optical_flow import raft_small

from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.ui.host_bridge import install_host_hooks


class FakeHost:
    """The parts of wgp.py, process_locks and offload_registry the hooks touch, recording every call."""

    def __init__(self, clear_raises: bool = False) -> None:
        self.log: list = []
        self.clear_raises = clear_raises
        self.wgp = types.ModuleType("wgp")
        self.wgp.clear_gen_cache = self._clear_gen_cache
        self.registry: dict = {}
        self.residents: dict = {}
        locks = types.SimpleNamespace(
            acquire_GPU_ressources=lambda state, pid, name, gr=None: self.log.append(("acquire", pid)),
            release_GPU_ressources=self._release_gpu,
            register_GPU_resident=lambda state, pid, name, cb: self.residents.__setitem__(pid, cb),
            unregister_GPU_resident=lambda state, pid: self.residents.pop(pid, None))
        registry = types.SimpleNamespace(
            register_offloadobj=lambda name, obj, fn: self.registry.__setitem__(name, (obj, fn)),
            unregister_offloadobj=lambda name, obj=None: self.registry.pop(name, None))
        self.modules = {"process_locks": locks, "offload_registry": registry}

    def _clear_gen_cache(self) -> None:
        self.log.append("host clear_gen_cache")
        if self.clear_raises:
            raise RuntimeError("host failure")

    def _release_gpu(self, state, pid, keep_resident=False, process_name=None, release_vram_callback=None):
        self.log.append(("release", pid, keep_resident))
        if keep_resident:
            self.residents[pid] = release_vram_callback
        else:
            self.residents.pop(pid, None)


class FakePlugin:
    """Like WAN2GPPlugin: globals injected as attributes, set_global refuses unknown names."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.clear_gen_cache = host.wgp.clear_gen_cache
        self.set_calls = 0

    def set_global(self, name, value):
        if not hasattr(self.host.wgp, name):
            raise KeyError(name)
        self.set_calls += 1
        setattr(self.host.wgp, name, value)


@pytest.fixture()
def host(monkeypatch):
    fake = FakeHost()
    monkeypatch.setitem(__import__("sys").modules, "wgp", fake.wgp)
    yield fake


def _pool_with_raft() -> tuple[AnnotatorPool, weakref.ref]:
    pool = AnnotatorPool(offload="plain")
    pool.register("raft-small", lambda: raft_small(weights=None, progress=False))
    with pool.use("raft-small", "cpu", teardown="unload") as lease:
        ref = weakref.ref(lease.model)
        del lease
    return pool, ref


def test_hooked_clear_gen_cache_releases_raft_then_calls_original(host) -> None:
    pool, ref = _pool_with_raft()
    plugin = FakePlugin(host)
    hooks = install_host_hooks(plugin, pool, host.modules)
    original = hooks.original_clear_gen_cache
    pool.add_resident_listener(lambda name, resident: host.log.append(("resident", name, resident)))
    host.wgp.clear_gen_cache()  # what the host calls before loading VACE
    gc.collect()
    assert ref() is None
    assert host.log.index(("resident", "raft-small", False)) < host.log.index("host clear_gen_cache")
    assert host.registry["structure_video"][1] == pool.release
    # idempotent: installing again (post_ui_setup runs twice) does not wrap twice
    assert install_host_hooks(plugin, pool, host.modules) is hooks and plugin.set_calls == 1
    hooks.uninstall()
    assert host.wgp.clear_gen_cache is original and "structure_video" not in host.registry
    hooks.uninstall()  # reversible and safe to repeat


def test_second_plugin_instance_never_wraps_twice(host) -> None:
    pool, _ = _pool_with_raft()
    first = install_host_hooks(FakePlugin(host), pool, host.modules)
    second = install_host_hooks(FakePlugin(host), pool, host.modules)
    host.log.clear()
    host.wgp.clear_gen_cache()
    assert host.log.count("host clear_gen_cache") == 1
    assert second.original_clear_gen_cache is first.original_clear_gen_cache


def test_original_exception_still_reaches_host_after_our_teardown(host) -> None:
    host.clear_raises = True
    pool, ref = _pool_with_raft()
    install_host_hooks(FakePlugin(host), pool, host.modules)
    with pytest.raises(RuntimeError, match="host failure"):
        host.wgp.clear_gen_cache()
    gc.collect()
    assert ref() is None


def test_our_failure_never_stops_the_original(host, monkeypatch) -> None:
    pool, _ = _pool_with_raft()
    install_host_hooks(FakePlugin(host), pool, host.modules)
    monkeypatch.setattr(pool, "release", lambda name=None: (_ for _ in ()).throw(RuntimeError("ours")))
    host.wgp.clear_gen_cache()
    assert "host clear_gen_cache" in host.log


def test_gpu_lock_order_and_resident_registration(host) -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("tiny", lambda: torch.nn.Linear(2, 2))
    hooks = install_host_hooks(FakePlugin(host), pool, host.modules)
    state = {"gen": {}}
    with hooks.gpu_lock(state):
        host.log.append("work")
        with pool.use("tiny", "cpu", teardown="unload"):
            pass
    assert host.log[-3:] == [("acquire", "structure_video"), "work", ("release", "structure_video", False)]
    assert "structure_video" not in host.residents
    # the host's "unload models" tool pops our registration; the next lock registers again
    host.registry.clear()
    with hooks.gpu_lock(state):
        pass
    assert "structure_video" in host.registry


def test_gpu_lock_travels_in_the_run_context(host) -> None:
    """The tab hands the host's lock to the pipeline as RunContext.gpu_lock (no module global); the
    pipeline enters it as ``with ctx.gpu_lock():`` around RAFT."""
    from wan2gp_structure_video.pipeline.build import RunContext

    hooks = install_host_hooks(FakePlugin(host), AnnotatorPool(offload="plain"), host.modules)
    state = {"gen": {}}
    ctx = RunContext(gpu_lock=hooks.gpu_lock_for(state)).resolved()
    with ctx.gpu_lock():
        host.log.append("raft")
    assert host.log[-3:] == [("acquire", "structure_video"), "raft", ("release", "structure_video", False)]
    assert hooks.state is state
