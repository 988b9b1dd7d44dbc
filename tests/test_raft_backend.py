"""RAFT backend with random weights: shapes, padding of odd sizes, batching, input range, memory estimate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wan2gp_structure_video.errors import OptionError
from wan2gp_structure_video.preprocessors.annotators.flow_base import FlowBackend
from wan2gp_structure_video.preprocessors.annotators.flow_raft import (
    RaftFlowBackend, estimate_bytes_per_pair, padded_size, padding_for)
from wan2gp_structure_video.preprocessors.weights.raft_weights import load_raft


@pytest.fixture(scope="module")
def small() -> torch.nn.Module:
    return load_raft(None, "small", seed=0)


def _frames(batch: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (batch, height + 4, width + 4, 3), dtype=np.uint8)
    return (np.ascontiguousarray(base[:, 2:-2, 2:-2]), np.ascontiguousarray(base[:, 1:-3, 3:-1]))


def test_padding_rules() -> None:
    assert padded_size(45, 67) == (128, 128)
    assert padded_size(201, 333) == (208, 336)
    assert padded_size(480, 832) == (480, 832)
    left, right, top, bottom = padding_for(201, 333)
    assert (left + right, top + bottom) == (3, 7) and abs(left - right) <= 1 and abs(top - bottom) <= 1
    assert padding_for(128, 256) == (0, 0, 0, 0)


@pytest.mark.parametrize("height,width", [(45, 67), (201, 333), (128, 136)])
def test_shapes_for_odd_sizes(small: torch.nn.Module, height: int, width: int) -> None:
    backend = RaftFlowBackend(small, "cpu", iterations=2, name="raft-small")
    first, second = _frames(2, height, width)
    flow = backend.compute(first, second)
    assert flow.shape == (2, height, width, 2) and flow.dtype == np.float32
    assert flow.flags.c_contiguous and flow.flags.owndata and np.isfinite(flow).all()


def test_crop_matches_manual_padding(small: torch.nn.Module) -> None:
    """Cropping returns exactly the region of the unpadded frame inside the padded run."""
    height, width = 45, 67
    first, second = _frames(1, height, width, seed=4)
    left, right, top, bottom = padding_for(height, width)
    flow = RaftFlowBackend(small, iterations=2).compute(first, second)

    def manual(img: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(img).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        return torch.nn.functional.pad(t, (left, right, top, bottom), mode="replicate")

    with torch.inference_mode():
        full = small(manual(first), manual(second), num_flow_updates=2)[-1]
    expected = full[:, :, top:top + height, left:left + width].permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(flow, expected, atol=1e-4, rtol=1e-4)


def test_batched_equals_one_by_one(small: torch.nn.Module) -> None:
    backend = RaftFlowBackend(small, iterations=3, name="raft-small")
    first, second = _frames(3, 70, 90, seed=1)
    batched = backend.compute(first, second)
    single = np.concatenate([backend.compute(first[i:i + 1], second[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=1e-4)


def test_batched_equals_one_by_one_large() -> None:
    large = load_raft(None, "large", seed=2)
    backend = RaftFlowBackend(large, iterations=2)
    first, second = _frames(2, 64, 80, seed=2)
    batched = backend.compute(first, second)
    single = np.concatenate([backend.compute(first[i:i + 1], second[i:i + 1]) for i in range(2)])
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=1e-4)


def test_backend_protocol_and_validation(small: torch.nn.Module) -> None:
    backend = RaftFlowBackend(small, "cpu", name="raft-small")
    assert isinstance(backend, FlowBackend)
    assert backend.device == "cpu" and backend.name == "raft-small" and backend.iterations == 20
    first, second = _frames(1, 32, 32)
    with pytest.raises(ValueError):
        backend.compute(first, second[:, :16])
    with pytest.raises(ValueError):
        backend.compute(first[0], second[0])
    with pytest.raises(ValueError):
        backend.compute(first.astype(np.float32), second)
    with pytest.raises(OptionError):
        RaftFlowBackend(small, precision="fp8")
    with pytest.raises(OptionError):
        RaftFlowBackend(small, iterations=0)


def test_iterations_matter(small: torch.nn.Module) -> None:
    first, second = _frames(1, 64, 64, seed=3)
    one = RaftFlowBackend(small, iterations=1).compute(first, second)
    three = RaftFlowBackend(small, iterations=3).compute(first, second)
    assert not np.allclose(one, three)


def test_memory_estimate() -> None:
    per_pair = estimate_bytes_per_pair(480, 832)
    correlation = (60 * 104) ** 2 * 4
    assert 2 * correlation < per_pair < 4 * correlation
    assert estimate_bytes_per_pair(1080, 1920) > 4 * per_pair  # quadratic in the pixel count
    assert estimate_bytes_per_pair(10, 10) == estimate_bytes_per_pair(128, 128)  # padded to 128
    assert RaftFlowBackend.estimate_bytes_per_pair(480, 832) == per_pair
    assert estimate_bytes_per_pair(480, 832, iterations=32) > per_pair


@pytest.mark.gpu
def test_cuda_matches_cpu_roughly(small: torch.nn.Module) -> None:
    first, second = _frames(2, 120, 160, seed=5)
    cpu = RaftFlowBackend(small, "cpu", iterations=4, precision="fp32").compute(first, second)
    gpu_model = load_raft(None, "small", seed=0).to("cuda")
    torch.cuda.reset_peak_memory_stats()
    gpu = RaftFlowBackend(gpu_model, "cuda", iterations=4, precision="fp32").compute(first, second)
    np.testing.assert_allclose(gpu, cpu, atol=1e-2, rtol=1e-2)
    half = RaftFlowBackend(gpu_model, "cuda", iterations=4).compute(first, second)
    assert half.dtype == np.float32 and half.shape == cpu.shape
    assert torch.cuda.memory_allocated() < 64 << 20  # nothing of the batch stays on the device


def test_no_correlation_pyramid_kept_between_batches(small: torch.nn.Module) -> None:
    first, second = _frames(1, 64, 64, seed=6)
    RaftFlowBackend(small, iterations=1).compute(first, second)
    assert not small.corr_block.corr_pyramid
