"""Our RAFT loop: the same flow as torchvision's forward (cold start), the previous pair's flow
carried forward correctly, and warm start used only for a pair that follows the previous one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wan2gp_structure_video.preprocessors.annotators import flow_raft
from wan2gp_structure_video.preprocessors.annotators.flow_raft import RaftFlowBackend
from wan2gp_structure_video.preprocessors.annotators.raft_loop import forward_project, refine
from wan2gp_structure_video.preprocessors.weights.raft_weights import load_raft


@pytest.fixture(scope="module", params=["small", "large"])
def model(request):
    return load_raft(None, request.param, seed=1)


def test_cold_start_is_torchvision_forward_exactly(model) -> None:
    generator = torch.Generator().manual_seed(0)
    image1 = torch.rand(2, 3, 128, 136, generator=generator) * 2 - 1
    image2 = torch.roll(image1, shifts=(2, 3), dims=(2, 3))
    with torch.inference_mode():
        expected = model(image1, image2, num_flow_updates=3)[-1]
        low, full = refine(model, image1, image2, 3)
    assert low.shape == (2, 2, 16, 17) and full.shape == expected.shape
    assert torch.equal(full, expected)
    assert model.corr_block.corr_pyramid == []  # no volume left behind


def test_forward_projection_moves_each_vector_to_where_it_points() -> None:
    flow = torch.zeros(1, 2, 8, 10)
    flow[0, 0, 2, 3], flow[0, 1, 2, 3] = 2.0, 1.0       # one cell moving (+2, +1)
    projected = forward_project(flow)
    # Where it lands, the still cell already there lands too: the two are averaged.
    assert projected[0, :, 3, 5].tolist() == [1.0, 0.5]
    assert projected[0, :, 2, 3].tolist() == [2.0, 1.0]  # nothing landed on the cell it left: kept
    assert float(projected.abs().sum()) == pytest.approx(4.5)
    constant = torch.full((2, 2, 6, 7), -1.5)
    assert torch.equal(forward_project(constant), constant)  # constant motion stays constant
    collide = torch.zeros(1, 2, 4, 4)
    collide[0, 0, 1, 0], collide[0, 0, 1, 2] = 2.0, 0.0  # two vectors land on (1, 2): averaged
    assert forward_project(collide)[0, 0, 1, 2].item() == pytest.approx(1.0)


def test_warm_start_only_for_a_pair_that_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_raft(None, "small", seed=2)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (136, 168, 3), dtype=np.uint8)
    frames = [np.roll(base, 2 * k, axis=1) for k in range(4)]
    first, second = np.stack(frames[:3]), np.stack(frames[1:])
    calls: list[tuple[int, bool]] = []
    real = flow_raft.refine

    def spy(model_, image1, image2, iterations, flow_init=None, features=None):
        calls.append((iterations, flow_init is not None))
        return real(model_, image1, image2, iterations, flow_init=flow_init, features=features)

    monkeypatch.setattr(flow_raft, "refine", spy)
    cold = RaftFlowBackend(model, iterations=4).compute(first, second)
    assert calls == [(4, False)]  # a cold batch is one call
    calls.clear()
    warm_backend = RaftFlowBackend(model, iterations=4, warm_iterations=2)
    warm = warm_backend.compute(first, second)
    assert calls == [(4, False), (2, True), (2, True)]
    np.testing.assert_allclose(warm[0], cold[0], atol=1e-4)  # the first pair has nothing to start from (batch of 1)
    assert np.abs(warm[1] - cold[1]).max() > 1e-2  # started elsewhere, fewer updates: another flow
    calls.clear()
    warm_backend.compute(first[2:], second[2:])  # pair 2 again: it does not follow pair 2 → cold
    assert calls == [(4, False)]
    with pytest.raises(Exception, match="warm-start iterations"):
        RaftFlowBackend(model, warm_iterations=0)


def test_each_frame_is_encoded_once_and_the_flow_is_unchanged() -> None:
    """Consecutive pairs share a frame: its feature map is computed once, also across batches, and
    the flows are those of encoding every pair on its own."""
    model = load_raft(None, "large", seed=3)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (136, 168, 3), dtype=np.uint8)
    frames = [np.roll(base, (k, 2 * k), axis=(0, 1)) for k in range(6)]
    encoded: list[int] = []
    model.feature_encoder.register_forward_pre_hook(lambda module, inputs: encoded.append(len(inputs[0])))
    backend = RaftFlowBackend(model, iterations=3)
    flows = [*backend.compute(np.stack(frames[0:3]), np.stack(frames[1:4])),
             *backend.compute(np.stack(frames[3:5]), np.stack(frames[4:6]))]
    assert encoded == [4, 2]  # 6 frames, each once: 4, then 2 (frame 3 carried over)
    encoded.clear()
    alone = [RaftFlowBackend(model, iterations=3).compute(a[None], b[None])[0]
             for a, b in zip(frames[:-1], frames[1:])]
    assert encoded == [2] * 5
    for ours, reference in zip(flows, alone):
        np.testing.assert_allclose(ours, reference, atol=1e-3)
    encoded.clear()
    shuffled = RaftFlowBackend(model, iterations=3)
    shuffled.compute(np.stack([frames[0], frames[3]]), np.stack([frames[1], frames[4]]))
    assert encoded == [4]  # pairs that do not follow each other: every frame encoded


def test_feature_maps_are_freed_before_the_update_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoded once and handed over, the maps live no longer than before: the correlation volume holds
    what the updates need, so neither map of the batch is alive when the first update runs."""
    import weakref

    model = load_raft(None, "small", seed=4)
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 255, (128, 136, 3), dtype=np.uint8) for _ in range(3)]
    given: list[weakref.ref] = []
    alive_at_updates: list[int] = []
    build = model.corr_block.build_pyramid

    def watched(fmap1, fmap2):
        given.extend((weakref.ref(fmap1), weakref.ref(fmap2)))
        return build(fmap1, fmap2)

    monkeypatch.setattr(model.corr_block, "build_pyramid", watched)
    model.update_block.register_forward_pre_hook(
        lambda module, inputs: alive_at_updates.append(sum(ref() is not None for ref in given)))
    RaftFlowBackend(model, iterations=2).compute(np.stack(frames[:2]), np.stack(frames[1:]))
    assert len(given) == 2 and alive_at_updates == [0, 0]
