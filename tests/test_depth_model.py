"""Depth Anything V2 model and backend: sizes (multiples of 14), batching, loading, same output as the original.

CPU, random weights, nothing downloaded. The comparison with the original model imports Wan2GP's
``preprocessing/depth_anything_v2`` from ``$WAN2GP_ROOT`` and skips without it.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from wan2gp_structure_video.errors import OptionError, WeightsError

transformers = pytest.importorskip("transformers")
from wan2gp_structure_video.preprocessors.annotators.depth_model import (  # noqa: E402  (needs transformers)
    PATCH, DepthAnythingBackend, attention_generation, build_depth_model, estimate_bytes_per_frame, load_depth_model,
    model_from_state_dict, model_input_size)
from wan2gp_structure_video.preprocessors.weights.depth_weights import (  # noqa: E402
    VARIANTS, DepthArchitecture, DepthWeightsSource, convert_original_state_dict, find_depth_weights)

TINY = DepthArchitecture("custom", hidden=32, layers=4, heads=2, out_indices=(1, 2, 3, 4), features=8,
                         out_channels=(4, 8, 16, 32), image_size=70)
FIXTURE = Path(__file__).parent / "fixtures" / "depth_anything_v2_keys.json"


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Spread every weight (transformers zero-initialises biases, which hides renaming mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
        # The last conv (one output channel) feeds a ReLU: lift it so random depth is not all zeros.
        last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 1][-1]
        last.bias.add_(1.0)
    return model


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    return randomise(build_depth_model(TINY, seed=0), seed=1)


def frames(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (batch, height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    big = np.kron(smooth, np.ones((1, 4, 4, 1), np.float32))[:, :height, :width]
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


class InputSpy:
    """Records the pixel sizes the model is called with."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.sizes: list[tuple[int, ...]] = []
        self._handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        pixels = kwargs.get("pixel_values", args[0] if args else None)
        self.sizes.append(tuple(pixels.shape))

    def close(self) -> None:
        self._handle.remove()


# --------------------------------------------------------------------------- sizes

def test_host_size_for_832x480() -> None:
    assert model_input_size(480, 832) == (518, 896)  # what Wan2GP's Resize(518, lower_bound, ×14) gives
    assert model_input_size(480, 832, None) == (490, 840)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000), st.sampled_from([None, 14, 28, 518]))
def test_model_size_is_a_multiple_of_14(height: int, width: int, input_size: int | None) -> None:
    mh, mw = model_input_size(height, width, input_size)
    assert mh % PATCH == 0 and mw % PATCH == 0
    if input_size is None:
        assert height <= mh < height + PATCH and width <= mw < width + PATCH
    else:
        assert mh >= input_size and mw >= input_size
        assert min(mh, mw) < input_size + PATCH  # the short side lands on the requested size
        scale = max(input_size / height, input_size / width)
        assert abs(mh - height * scale) <= PATCH and abs(mw - width * scale) <= PATCH  # aspect kept


@pytest.mark.parametrize("input_size, model_size", [(None, (56, 70)), (28, (28, 42))])
def test_odd_sizes_run_at_multiples_of_14_and_come_back(tiny_model, input_size, model_size) -> None:
    backend = DepthAnythingBackend(tiny_model, "cpu", input_size=input_size)
    spy = InputSpy(tiny_model)
    try:
        depth = backend.compute(frames(2, 45, 61))
    finally:
        spy.close()
    assert spy.sizes == [(2, 3) + model_size]
    assert depth.shape == (2, 45, 61) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.std() > 0
    assert depth.flags.owndata or depth.base is None


def test_padding_crops_back_exactly(tiny_model) -> None:
    """A frame already at multiples of 14 is not padded: the result is the model's own output."""
    batch = frames(1, 42, 56)
    depth = DepthAnythingBackend(tiny_model, "cpu", input_size=None).compute(batch)
    pixels = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        direct = tiny_model(pixel_values=(pixels - mean) / std).predicted_depth.numpy()
    np.testing.assert_allclose(depth, direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("input_size", [None, 28])
def test_batching_equals_batch_size_one(tiny_model, input_size) -> None:
    backend = DepthAnythingBackend(tiny_model, "cpu", input_size=input_size)
    batch = frames(4, 33, 47, seed=3)
    together = backend.compute(batch)
    alone = np.concatenate([backend.compute(batch[i:i + 1]) for i in range(4)])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5 * float(np.abs(alone).max()))
    assert not np.allclose(together[0], together[1])  # different frames, different depth


def test_bad_options_and_inputs(tiny_model) -> None:
    with pytest.raises(OptionError, match="Precision"):
        DepthAnythingBackend(tiny_model, precision="fp8")
    with pytest.raises(OptionError, match="input size"):
        DepthAnythingBackend(tiny_model, input_size=7)
    backend = DepthAnythingBackend(tiny_model, "cpu", precision="fp16")  # CPU: runs in fp32
    assert backend._autocast is None
    with pytest.raises(ValueError, match="uint8"):
        backend.compute(np.zeros((1, 14, 14, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        backend.compute(np.zeros((14, 14, 3), np.uint8))


def test_missing_transformers_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(OptionError, match=r"\[depth\]"):
        build_depth_model(TINY)


def test_estimate_grows_with_size_and_variant() -> None:
    small = estimate_bytes_per_frame(480, 832, variant="vits", input_size=None)
    large = estimate_bytes_per_frame(1080, 1920, variant="vits", input_size=None)
    assert large > 4 * small
    # Wan2GP's resize rule runs every frame at about 518 pixels on the short side
    hd, sd = estimate_bytes_per_frame(1080, 1920, variant="vits"), estimate_bytes_per_frame(480, 832, variant="vits")
    assert hd < 1.5 * sd
    sizes = [estimate_bytes_per_frame(480, 832, variant=v) for v in ("vits", "vitb", "vitl")]
    assert sizes == sorted(sizes) and sizes[0] > 50 * 2**20


# --------------------------------------------------------------------------- loading

def test_random_weights_are_reproducible() -> None:
    first = load_depth_model(DepthWeightsSource("vits", None, "random", "random weights", seed=3))
    again = load_depth_model(None, variant="vits", seed=3)
    other = load_depth_model(None, variant="vits", seed=4)
    key = "head.conv1.weight"
    assert torch.equal(first.state_dict()[key], again.state_dict()[key])
    assert not torch.equal(first.state_dict()[key], other.state_dict()[key])
    with pytest.raises(OptionError, match="variant"):
        load_depth_model(None, variant="vitg")


def test_transformers_folder_given_by_path(tmp_path: Path, tiny_model) -> None:
    folder = tmp_path / "tiny-depth"
    tiny_model.save_pretrained(folder)
    source = find_depth_weights("vitl", str(folder))
    assert source.layout == "transformers" and source.variant == "custom" and source.is_folder
    assert source.identity().startswith("transformers:")
    loaded = load_depth_model(source)
    batch = frames(2, 30, 44)
    expected = DepthAnythingBackend(tiny_model, "cpu", input_size=28).compute(batch)
    got = DepthAnythingBackend(loaded, "cpu", input_size=28).compute(batch)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_the_annotator_pool_holds_the_depth_model(tmp_path: Path, tiny_model) -> None:
    """As RAFT: the pool builds the model once from a factory, the backend wraps the lease's model."""
    from wan2gp_structure_video.memory import AnnotatorPool

    folder = tmp_path / "tiny-depth"
    tiny_model.save_pretrained(folder)
    source = find_depth_weights("vitl", str(folder))
    pool = AnnotatorPool(offload="plain")
    pool.register("depth-test", lambda: load_depth_model(source))
    batch = frames(2, 30, 44)
    expected = DepthAnythingBackend(tiny_model, "cpu").compute(batch)
    for _ in range(2):
        with pool.use("depth-test", "cpu", teardown="keep") as lease:
            got = DepthAnythingBackend(lease.model, lease.device).compute(batch)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert pool.construct_count("depth-test") == 1
    with pool.use("depth-test", "cpu", teardown="release"):
        pass
    assert not pool.is_built("depth-test")


def test_vits_files_in_both_layouts_load_the_same_model(tmp_path: Path) -> None:
    """An original .pth and a transformers .safetensors (other generation's names) of the same weights."""
    from safetensors.torch import save_file

    shapes = json.loads(FIXTURE.read_text(encoding="utf-8"))["variants"]["vits"]
    generator = torch.Generator().manual_seed(5)
    original = {k: torch.randn(v, generator=generator) * 0.05 for k, v in shapes.items()}
    pth = tmp_path / "depth_anything_v2_vits.pth"
    torch.save({"model": original}, pth)  # wrapped, as some training scripts save
    from_pth = load_depth_model(find_depth_weights("vitl", str(pth)))
    other_generation = "4.x" if attention_generation(from_pth) == "5.x" else "5.x"
    converted = convert_original_state_dict(original, generation=other_generation)
    st_file = tmp_path / "vits.safetensors"
    save_file({k: v.contiguous() for k, v in converted.items()}, str(st_file))
    source = find_depth_weights("vitl", str(st_file))
    assert (source.variant, source.layout) == ("vits", "transformers")
    from_st = load_depth_model(source)
    for key, value in from_pth.state_dict().items():
        assert torch.equal(value, from_st.state_dict()[key]), key
    positions = from_pth.state_dict()["backbone.embeddings.position_embeddings"]
    assert torch.equal(positions, original["pretrained.pos_embed"])
    depth = DepthAnythingBackend(from_pth, "cpu", input_size=None).compute(frames(1, 28, 42))
    assert depth.shape == (1, 28, 42) and np.isfinite(depth).all()


def test_weights_that_do_not_fit_are_refused() -> None:
    shapes = json.loads(FIXTURE.read_text(encoding="utf-8"))["variants"]["vits"]
    state = {k: torch.zeros(v, device="meta") for k, v in shapes.items()}
    state["depth_head.scratch.output_conv2.0.weight"] = torch.zeros(16, 32, 3, 3, device="meta")  # 32 → 16
    with pytest.raises(WeightsError, match="another shape|missing|unexpected"):
        model_from_state_dict(state, "test.pth")


# --------------------------------------------------------------------------- same output as the original

def _wan2gp_depth_anything():
    root = os.environ.get("WAN2GP_ROOT")
    if not root or not (Path(root) / "preprocessing" / "depth_anything_v2" / "dpt.py").is_file():
        pytest.skip("set WAN2GP_ROOT to a Wan2GP checkout to compare with its DepthAnythingV2")
    if root not in sys.path:
        sys.path.insert(0, root)
    from preprocessing.depth_anything_v2.dpt import DepthAnythingV2
    return DepthAnythingV2


@pytest.fixture(scope="module")
def original_and_converted():
    DepthAnythingV2 = _wan2gp_depth_anything()
    torch.manual_seed(0)
    original = DepthAnythingV2(encoder="vits", features=16, out_channels=[8, 16, 32, 64])
    randomise(original, seed=2).eval()  # the original zero-initialises biases too
    converted = model_from_state_dict(original.state_dict(), "Wan2GP DepthAnythingV2")
    return original, converted


@pytest.mark.parametrize("size", [(70, 70), (98, 140), (126, 84)])
def test_converted_model_gives_the_originals_output(original_and_converted, size) -> None:
    original, converted = original_and_converted
    pixels = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = original(pixels)
        got = converted(pixel_values=pixels).predicted_depth
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.slow
def test_backend_matches_wan2gps_annotator_end_to_end(original_and_converted) -> None:
    """Same preprocessing as Wan2GP's infer_image (resize to 518 ×14, ImageNet norm, resize back)."""
    original, converted = original_and_converted
    rgb = frames(1, 60, 80, seed=9)
    # Wan2GP's infer_image converts BGR → RGB first (it expects cv2.imread's order): give it BGR.
    expected = original.infer_image(np.ascontiguousarray(rgb[0][..., ::-1]), 518)
    got = DepthAnythingBackend(converted, "cpu").compute(rgb)[0]
    assert got.shape == expected.shape == (60, 80)
    scale = float(np.abs(expected).max())
    # cv2's and torch's bicubic resize differ by rounding only
    assert np.abs(got - expected).max() <= 0.02 * scale
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.999


@pytest.mark.gpu
def test_fp16_autocast_on_cuda_is_close_to_fp32(tiny_model) -> None:
    batch = frames(2, 45, 61)
    reference = DepthAnythingBackend(tiny_model, "cpu", input_size=None).compute(batch)
    model = tiny_model.to("cuda")
    try:
        for precision in ("fp16", "bf16"):
            got = DepthAnythingBackend(model, "cuda", precision=precision, input_size=None).compute(batch)
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, reference, atol=0.03 * float(np.abs(reference).max()))
    finally:
        tiny_model.to("cpu")
