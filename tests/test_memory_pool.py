"""Annotator pool: lazy build, reuse, teardown policies, deferred release, weakref death."""
from __future__ import annotations

import gc
import threading
import weakref

import pytest
import torch
from torchvision.models.optical_flow import raft_small

from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.memory.offload import MmgpPlacement, OffloadOptions


def _tiny() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


def test_built_lazily_once_and_reused() -> None:
    pool = AnnotatorPool(offload="plain")
    calls = []
    pool.register("tiny", lambda: calls.append(1) or _tiny())
    assert not pool.is_built("tiny") and calls == []
    for _ in range(3):
        with pool.use("tiny", "cpu", teardown="unload") as lease:
            assert isinstance(lease.model, torch.nn.Module)
            assert not lease.model.training and not any(p.requires_grad for p in lease.model.parameters())
    assert pool.construct_count("tiny") == 1 and len(calls) == 1
    assert pool.is_built("tiny")


def test_release_leaves_no_reference_to_raft() -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("raft-small", lambda: raft_small(weights=None, progress=False))
    with pool.use("raft-small", "cpu") as lease:
        ref = weakref.ref(lease.model)
        out = lease.model(torch.zeros(1, 3, 128, 128), torch.zeros(1, 3, 128, 128), num_flow_updates=1)
        assert out[-1].shape == (1, 2, 128, 128)
        del lease, out
    assert ref() is not None  # unload keeps it in RAM for the next use
    pool.release()
    gc.collect()
    assert ref() is None
    assert not pool.is_built("raft-small")


@pytest.mark.parametrize("teardown", ["unload", "release"])
def test_teardown_runs_on_exception(teardown: str) -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("tiny", _tiny)
    refs = []
    with pytest.raises(RuntimeError, match="boom"):
        with pool.use("tiny", "cpu", teardown=teardown) as lease:
            refs.append(weakref.ref(lease.model))
            raise RuntimeError("boom")
    assert not pool.in_use("tiny")
    gc.collect()
    assert (refs[0]() is None) == (teardown == "release")
    assert pool.is_built("tiny") == (teardown == "unload")


def test_release_requested_during_use_is_deferred() -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("tiny", _tiny)
    with pool.use("tiny", "cpu", teardown="keep") as lease:
        ref = weakref.ref(lease.model)
        pool.release()  # e.g. the host's clear_gen_cache from another thread
        assert lease.model is not None and pool.is_built("tiny")  # never pulled from under a running use
        del lease
    gc.collect()
    assert ref() is None and not pool.is_built("tiny")


def test_keep_notifies_resident_only_on_cuda_and_unknown_names_fail() -> None:
    pool = AnnotatorPool(offload="plain")
    pool.register("tiny", _tiny)
    events = []
    pool.add_resident_listener(lambda name, resident: events.append((name, resident)))
    with pool.use("tiny", "cpu", teardown="keep"):
        pass
    assert events == []  # weights on the CPU are not GPU residents
    pool.release("tiny")
    assert events == [("tiny", False)]
    with pytest.raises(KeyError):
        with pool.use("missing", "cpu"):
            pass
    with pytest.raises(ValueError, match="teardown"):
        with pool.use("tiny", "cpu", teardown="bogus"):
            pass
    with pytest.raises(ValueError, match="already registered"):
        pool.register("tiny", _tiny)


def test_concurrent_uses_build_once() -> None:
    pool = AnnotatorPool(offload="plain")
    built = []
    pool.register("tiny", lambda: built.append(1) or _tiny())
    barrier = threading.Barrier(6)
    errors = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                with pool.use("tiny", "cpu", teardown="unload") as lease:
                    lease.model(torch.zeros(1, 3, 8, 8))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(built) == 1 and not pool.in_use()


class _FakeOffloadObject:
    def __init__(self, log: list) -> None:
        self.log = log

    def unload_all(self) -> None:
        self.log.append("unload_all")

    def release(self) -> None:
        self.log.append("release")


class _FakeOffloadApi:
    """Records the mmgp calls our placement makes (mmgp itself needs CUDA)."""

    def __init__(self) -> None:
        self.log: list = []

    def all(self, modules, **kwargs):
        self.log.append(("all", sorted(modules), kwargs))
        torch.set_default_device("meta")  # like mmgp, which leaves CUDA as the default device
        return _FakeOffloadObject(self.log)

    def profile(self, modules, profile_no, **kwargs):
        self.log.append(("profile", sorted(modules), profile_no))
        return _FakeOffloadObject(self.log)


def test_mmgp_placement_wiring_restores_default_device() -> None:
    api = _FakeOffloadApi()
    module = _tiny()
    placement = MmgpPlacement(module, "raft_large", OffloadOptions(pinned_memory=True, budget_mb=0), api)
    before = torch.get_default_device()
    assert placement.place(torch.device("cuda")) is module
    assert torch.get_default_device() == before
    name, keys, kwargs = api.log[0]
    assert name == "all" and keys == ["raft_large"]
    assert kwargs["pinnedMemory"] is True and kwargs["quantizeTransformer"] is False
    assert kwargs["convertWeightsFloatTo"] is None  # RAFT keeps fp32 weights; autocast does the rest
    placement.place(torch.device("cuda"))  # hooked once
    assert sum(1 for entry in api.log if entry[0] == "all") == 1
    placement.unload()
    placement.release()
    assert api.log[-2:] == ["unload_all", "release"] and placement.module is None
    with pytest.raises(ValueError):
        MmgpPlacement(_tiny(), "x", OffloadOptions(), api).place(torch.device("cpu"))
    profiled = MmgpPlacement(_tiny(), "x", OffloadOptions(profile=4), api)
    profiled.place(torch.device("cuda"))
    assert api.log[-1] == ("profile", ["x"], 4)
