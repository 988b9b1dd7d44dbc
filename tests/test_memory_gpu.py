"""GPU memory lifecycle on a real device (skipped without CUDA)."""
from __future__ import annotations

import gc
import types

import numpy as np
import pytest
import torch
from torchvision.models.optical_flow import raft_large

from wan2gp_structure_video.memory import AnnotatorPool, run_with_backoff
from wan2gp_structure_video.ui.host_bridge import install_host_hooks
from wan2gp_structure_video.preprocessors.flow_raft import RaftFlowBackend

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
