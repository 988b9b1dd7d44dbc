"""The annotator pool with an object that places itself (``DevicePlaced``: an ONNX session holder).

``unload`` must reach the object (it destroys its sessions) and the next use places it again;
``release`` drops it and the next use builds a new one; ``keep`` leaves it placed.
"""
from __future__ import annotations

from typing import Any

from wan2gp_structure_video.memory.devices import DevicePlaced, is_device_placed
from wan2gp_structure_video.memory.pool import AnnotatorPool


class FakeSessions:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.live = False

    def place(self, device: Any) -> "FakeSessions":
        self.calls.append(f"place:{getattr(device, 'type', device)}")
        self.live = True
        return self

    def unload(self) -> None:
        self.calls.append("unload")
        self.live = False

    def release(self) -> None:
        self.calls.append("release")
        self.live = False


def test_protocol_recognised() -> None:
    assert isinstance(FakeSessions(), DevicePlaced) and is_device_placed(FakeSessions())
    assert not is_device_placed(object())


def test_pool_unload_release_keep_reach_the_object() -> None:
    built: list[FakeSessions] = []
    pool = AnnotatorPool(offload="plain")
    pool.register("fake", lambda: built.append(FakeSessions()) or built[-1])
    with pool.use("fake", "cpu", teardown="keep") as lease:
        assert lease.model is built[0] and built[0].live
    assert built[0].calls == ["place:cpu"] and built[0].live
    with pool.use("fake", "cpu", teardown="unload"):
        pass
    assert built[0].calls == ["place:cpu", "place:cpu", "unload"] and not built[0].live
    assert pool.is_built("fake")
    with pool.use("fake", "cpu", teardown="release") as lease:
        assert lease.model is built[0] and built[0].live
    assert built[0].calls[-2:] == ["place:cpu", "release"] and not pool.is_built("fake")
    with pool.use("fake", "cpu") as lease:
        assert lease.model is built[1] and len(built) == 2
    pool.register("other", FakeSessions)
    with pool.use("other", "cpu", teardown="keep") as lease:
        other = lease.model
    pool.unload_all()
    assert other.calls[-1] == "unload"
    pool.release()
    assert not pool.is_built("other")
