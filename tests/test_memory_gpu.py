"""GPU memory lifecycle on a real device (skipped without CUDA): the pool and host hook on their own,
and the whole pipeline (build_guide on CUDA with RAFT, plain and mmgp placement; teardown back to the
baseline; OOM back-off with identical flows)."""
from __future__ import annotations

import gc
import json
import types

import numpy as np
import pytest
import torch
from torchvision.models.optical_flow import raft_large

from wan2gp_structure_video.memory import (AnnotatorPool, BatchSizeHistory, PressurePolicy, Timeline,
                                           run_with_backoff)
from wan2gp_structure_video.pipeline import GuideRequest, RunContext, build_guide, iter_guide_flows
from wan2gp_structure_video.ui.host_bridge import install_host_hooks
from wan2gp_structure_video.preprocessors.annotators.flow_raft import RaftFlowBackend
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.video.video_io import probe_video

pytestmark = pytest.mark.gpu
MIB = 2**20


def _frames(batch: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    first = rng.integers(0, 255, (batch, height, width, 3), dtype=np.uint8)
    return first, np.roll(first, 3, axis=2)


def _baseline() -> int:
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    return torch.cuda.memory_allocated()


@pytest.mark.parametrize("offload", ["plain", "mmgp"])
def test_release_returns_to_baseline(offload: str) -> None:
    if offload == "mmgp":
        pytest.importorskip("mmgp")
    base = _baseline()
    pool = AnnotatorPool(offload=offload)
    pool.register("raft-large", lambda: raft_large(weights=None, progress=False))
    with pool.use("raft-large", "cuda", teardown="keep") as lease:
        backend = RaftFlowBackend(lease.model, "cuda", iterations=4)
        flows = backend.compute(*_frames(2, 256, 256))
        del lease
    assert flows.shape == (2, 256, 256, 2) and np.isfinite(flows).all()
    pool.release()
    del backend
    assert abs(_baseline() - base) <= MIB


def test_vace_sized_allocation_fits_only_after_hooked_clear_gen_cache() -> None:
    base = _baseline()
    total = torch.cuda.get_device_properties(0).total_memory
    pool = AnnotatorPool(offload="plain")
    pool.register("raft-large", lambda: raft_large(weights=None, progress=False))
    with pool.use("raft-large", "cuda", teardown="keep") as lease:
        raft_bytes = sum(p.numel() * p.element_size() for p in lease.model.parameters())
        del lease
    torch.cuda.empty_cache()
    reserved = torch.cuda.memory_reserved()
    usable = reserved + 512 * MIB
    torch.cuda.set_per_process_memory_fraction(usable / total)
    try:
        vace_bytes = usable - reserved + raft_bytes // 2  # fits only if RAFT's weights are gone
        with pytest.raises(torch.OutOfMemoryError):
            torch.empty(vace_bytes, dtype=torch.uint8, device="cuda")
        wgp = types.ModuleType("wgp")
        calls = []
        wgp.clear_gen_cache = lambda: calls.append("host")
        plugin = types.SimpleNamespace(clear_gen_cache=wgp.clear_gen_cache,
                                       set_global=lambda name, value: setattr(wgp, name, value))
        hooks = install_host_hooks(plugin, pool, {})
        wgp.clear_gen_cache()
        vace = torch.empty(vace_bytes, dtype=torch.uint8, device="cuda")
        assert calls == ["host"] and vace.numel() == vace_bytes
        del vace
        hooks.uninstall()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert abs(_baseline() - base) <= MIB


def test_real_oom_is_survived_with_identical_flows() -> None:
    model = raft_large(weights=None, progress=False).eval().cuda()
    backend = RaftFlowBackend(model, "cuda", iterations=3, precision="fp32")
    first, second = _frames(6, 512, 896, seed=1)
    pairs = list(zip(first, second))

    def compute(batch):
        return list(backend.compute(np.stack([p[0] for p in batch]), np.stack([p[1] for p in batch])))

    reference = [compute([pair])[0] for pair in pairs]
    per_pair = torch.cuda.max_memory_allocated()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + 2.5 * per_pair) / total))
    sizes = []
    try:
        out = list(run_with_backoff(pairs, compute, 6, on_batch=lambda done, size: sizes.append(size),
                                    cleanup=lambda: (gc.collect(), torch.cuda.empty_cache())))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert max(sizes) < 6  # it did run out of memory at 6 and backed off
    for got, want in zip(out, reference):
        assert np.abs(got - want).max() < 1e-3


# --- the whole pipeline on the GPU ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> str:
    return str(write_sample_video(tmp_path_factory.mktemp("gpu") / "sample.mp4", width=640, height=360, frames=40))


def _request(sample: str, output, **options) -> GuideRequest:
    base = dict(resolution=(512, 288), frames=17, fps=16, backend="raft", raft_model="large",
                raft_weights="random", iterations=4, device="cuda")
    base.update(options)
    return GuideRequest(sample, output, **base)


@pytest.mark.parametrize("offload", ["plain", "mmgp"])
def test_build_guide_on_cuda_end_to_end_and_back_to_baseline(sample, tmp_path, offload: str) -> None:
    if offload == "mmgp":
        pytest.importorskip("mmgp")
    base = _baseline()
    pool = AnnotatorPool(offload=offload)
    history = BatchSizeHistory(tmp_path / "history.json")
    ctx = RunContext(pool=pool, history=history, use_cache=False)
    result = build_guide(_request(sample, tmp_path / "g.mp4", teardown="unload"), ctx)
    assert result.device.startswith("cuda") and result.batch_size >= 1 and result.peak_device_bytes > 0
    assert probe_video(result.output).frame_count == 17
    (name,) = pool.names()
    assert pool.describe()[name]["offload"] == offload and not pool.in_use()
    if offload == "plain":
        assert not pool.is_on_gpu()  # unloaded: weights back in RAM
    series = {row["series"] for row in result.timeline.chart_rows()}
    assert {"GPU allocated", "GPU reserved", "process memory (anonymous)"} <= series
    assert {"decode", "flow", "encode"} <= {p.name for p in result.timeline.phases}
    assert "load" in {e.kind for e in result.timeline.events}
    (entry,) = [history.get(k) for k in json_keys(tmp_path / "history.json")]
    assert entry["runs"] == 1 and entry["bytes_per_item"] > 0
    again = build_guide(_request(sample, tmp_path / "g2.mp4"), RunContext(pool=pool, history=history,
                                                                          use_cache=False))
    assert "(learned)" in again.batch_note
    pool.release()
    del result, again
    assert abs(_baseline() - base) <= MIB


def json_keys(path) -> list[str]:
    return list(json.loads(path.read_text()))


def test_kept_annotator_is_freed_by_the_hooked_clear_gen_cache(sample, tmp_path) -> None:
    base = _baseline()
    pool = AnnotatorPool(offload="plain")
    build_guide(_request(sample, tmp_path / "g.mp4", teardown="keep"), RunContext(pool=pool, use_cache=False))
    assert pool.is_on_gpu() and torch.cuda.memory_allocated() - base > 10 * MIB  # RAFT-large's weights stay
    wgp = types.ModuleType("wgp")
    wgp.clear_gen_cache = lambda: None
    plugin = types.SimpleNamespace(clear_gen_cache=wgp.clear_gen_cache,
                                   set_global=lambda name, value: setattr(wgp, name, value))
    hooks = install_host_hooks(plugin, pool, {})
    try:
        wgp.clear_gen_cache()
    finally:
        hooks.uninstall()
    assert not pool.is_built(pool.names()[0])
    assert abs(_baseline() - base) <= MIB


def test_oom_back_off_through_build_guide_gives_identical_flows(sample, tmp_path) -> None:
    def flows(batch_size: int, timeline: Timeline) -> list[np.ndarray]:
        ctx = RunContext(pool=AnnotatorPool(offload="plain"), timeline=timeline, use_cache=False,
                         history=BatchSizeHistory(tmp_path / f"h{batch_size}.json"),
                         pressure=PressurePolicy(standard=0.99, aggressive=0.995, emergency=1.0))
        request = _request(sample, None, precision="fp32", batch_size=batch_size, frames=13)
        return list(iter_guide_flows(request, ctx))

    base = _baseline()
    torch.cuda.reset_peak_memory_stats()
    reference = flows(1, Timeline())
    per_pair = torch.cuda.max_memory_allocated() - base  # weights + one pair's activations
    _baseline()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + 2.5 * per_pair) / total))
    timeline = Timeline()
    try:
        got = flows(8, timeline)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert [e.kind for e in timeline.events].count("oom") >= 1  # it did run out of memory at 8 and backed off
    assert len(got) == len(reference) == 13
    for a, b in zip(got, reference):  # flows are stored as float16: allow a unit in the last place or two
        assert np.allclose(a, b, rtol=2e-3, atol=1e-3)
    assert abs(_baseline() - base) <= MIB
