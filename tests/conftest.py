"""Shared pytest setup: GPU tests skip cleanly without CUDA; nothing downloads."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``gpu`` when CUDA is absent."""
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (run on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True, scope="session")
def _isolated_home(tmp_path_factory: pytest.TempPathFactory):
    """Keep caches, batch history and other user files of the tests out of the real home."""
    home = tmp_path_factory.mktemp("sv-home")
    previous = os.environ.get("WAN2GP_STRUCTURE_VIDEO_HOME")
    os.environ["WAN2GP_STRUCTURE_VIDEO_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("WAN2GP_STRUCTURE_VIDEO_HOME", None)
    else:
        os.environ["WAN2GP_STRUCTURE_VIDEO_HOME"] = previous


@pytest.fixture()
def backend_spy(monkeypatch) -> list[int]:
    """The frame pairs OpenCV DIS computes, one entry per call (tests that the cache serves instead)."""
    from wan2gp_structure_video.preprocessors.annotators.flow_dis import DisFlowBackend

    calls: list[int] = []
    original = DisFlowBackend.compute

    def compute(self, first, second):
        calls.append(len(first))
        return original(self, first, second)

    monkeypatch.setattr(DisFlowBackend, "compute", compute)
    return calls
