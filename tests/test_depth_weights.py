"""Depth Anything V2 weights: variants from shapes, original → transformers renames, search order, errors.

The original layout comes from ``fixtures/depth_anything_v2_keys.json`` (key names and shapes of
Wan2GP's DepthAnythingV2 for vits/vitb/vitl; regenerate with ``fixtures/make_depth_anything_v2_keys.py``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from wan2gp_structure_video.errors import WeightsError, WeightsNotFoundError
from wan2gp_structure_video.preprocessors.weights.depth_weights import (
    ATTENTION_NAMES, HOST_FILES, HUB_REPOS, VARIANTS, DepthWeightsSource, architecture_from_shapes,
    convert_original_state_dict, detect_depth_layout, find_depth_weights, read_key_shapes, rename_attention,
    require_depth_weights, variant_preference)

FIXTURE = Path(__file__).parent / "fixtures" / "depth_anything_v2_keys.json"
ORIGINAL_SHAPES: dict[str, dict[str, list[int]]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["variants"]

transformers = pytest.importorskip("transformers")
from wan2gp_structure_video.preprocessors.annotators.depth_model import (  # noqa: E402  (needs transformers)
    attention_generation, build_depth_model, load_state_dict_into)


def meta_state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Tensors with the fixture's names and shapes that allocate nothing."""
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def random_state_dict(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=generator) * 0.05 for key, shape in shapes.items()}


@pytest.mark.parametrize("variant", ["vits", "vitb", "vitl"])
def test_variant_recognised_from_shapes_alone(variant: str) -> None:
    arch = architecture_from_shapes(ORIGINAL_SHAPES[variant])  # plain lists: nothing allocated
    assert arch == VARIANTS[variant] and arch.is_standard


@pytest.mark.parametrize("variant", ["vits", "vitb", "vitl"])
def test_every_original_key_maps_onto_the_transformers_model(variant: str) -> None:
    """All variants on ``meta``: the renamed keys are exactly the model's keys, shape for shape."""
    model = build_depth_model(VARIANTS[variant], empty=True)
    converted = convert_original_state_dict(meta_state_dict(ORIGINAL_SHAPES[variant]),
                                            generation=attention_generation(model))
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert {key: tuple(value.shape) for key, value in converted.items()} == expected
    # qkv (weight and bias) is split in three: four keys more per block
    blocks = VARIANTS[variant].layers
    assert len(converted) == len(ORIGINAL_SHAPES[variant]) + 4 * blocks
    # the transformers-layout view of the same weights is recognised as the same variant
    assert architecture_from_shapes(converted) == VARIANTS[variant]


def test_vits_original_state_dict_loads_with_every_key_used() -> None:
    original = random_state_dict(ORIGINAL_SHAPES["vits"])
    model = build_depth_model(VARIANTS["vits"], empty=True)
    generation = attention_generation(model)
    converted = convert_original_state_dict(original, generation=generation)
    load_state_dict_into(model, converted, "fixture")
    params = dict(model.state_dict())
    query, key, value, output = ATTENTION_NAMES[generation]
    qkv = original["pretrained.blocks.3.attn.qkv.weight"]
    hidden = qkv.shape[1]
    assert torch.equal(params[f"backbone.encoder.layer.3.{query}.weight"], qkv[:hidden])
    assert torch.equal(params[f"backbone.encoder.layer.3.{key}.weight"], qkv[hidden:2 * hidden])
    assert torch.equal(params[f"backbone.encoder.layer.3.{value}.weight"], qkv[2 * hidden:])
    block = "backbone.encoder.layer"
    assert torch.equal(params[f"{block}.3.{output}.bias"], original["pretrained.blocks.3.attn.proj.bias"])
    assert torch.equal(params["neck.fusion_stage.layers.0.projection.weight"],
                       original["depth_head.scratch.refinenet4.out_conv.weight"])
    assert torch.equal(params["head.conv3.weight"], original["depth_head.scratch.output_conv2.2.weight"])
    assert torch.equal(params[f"{block}.11.layer_scale2.lambda1"], original["pretrained.blocks.11.ls2.gamma"])
    assert not any(t.is_meta for t in model.state_dict().values())


def test_both_attention_generations_and_their_renames() -> None:
    original = meta_state_dict(ORIGINAL_SHAPES["vits"])
    old = convert_original_state_dict(original, generation="4.x")
    new = convert_original_state_dict(original, generation="5.x")
    assert "backbone.encoder.layer.0.attention.attention.query.weight" in old
    assert "backbone.encoder.layer.0.attention.output.dense.bias" in old
    assert "backbone.encoder.layer.0.attention.q_proj.weight" in new
    assert set(rename_attention(old, generation="5.x")) == set(new)
    assert set(rename_attention(new, generation="4.x")) == set(old)
    with pytest.raises(ValueError):
        convert_original_state_dict(original, generation="3.x")


def test_module_prefix_is_stripped_and_unknown_keys_refused() -> None:
    shapes = ORIGINAL_SHAPES["vits"]
    prefixed = {f"module.{k}": v for k, v in meta_state_dict(shapes).items()}
    assert len(convert_original_state_dict(prefixed)) == len(shapes) + 4 * 12
    extra = dict(meta_state_dict(shapes), **{"depth_head.scratch.stem_transpose.weight": torch.empty(1, device="meta")})
    with pytest.raises(WeightsError, match="stem_transpose"):
        convert_original_state_dict(extra)


def test_layout_detection_and_unsupported_sizes() -> None:
    assert detect_depth_layout(ORIGINAL_SHAPES["vitb"]) == "original"
    assert detect_depth_layout(["backbone.embeddings.cls_token", "head.conv1.weight"]) == "transformers"
    with pytest.raises(WeightsError, match="neither"):
        detect_depth_layout(["fnet.conv1.weight"])
    with pytest.raises(WeightsError, match="mix"):
        detect_depth_layout(["pretrained.cls_token", "backbone.embeddings.cls_token"])
    giant = dict(ORIGINAL_SHAPES["vits"], **{"pretrained.cls_token": [1, 1, 1536]})
    with pytest.raises(WeightsError, match="1536"):
        architecture_from_shapes(giant)
    incomplete = {k: v for k, v in ORIGINAL_SHAPES["vits"].items() if k != "depth_head.scratch.layer1_rn.weight"}
    with pytest.raises(WeightsError, match="layer1_rn"):
        architecture_from_shapes(incomplete)


# --------------------------------------------------------------------------- finding weights

def write_original(path: Path, variant: str = "vits") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_state_dict(ORIGINAL_SHAPES[variant]), path)
    return path


@pytest.fixture(scope="module")
def vits_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_original(tmp_path_factory.mktemp("depth") / "depth_anything_v2_vits.pth")


def fake_hub_cache(cache: Path, repo: str, weights: Path) -> Path:
    """The folder layout huggingface_hub keeps for a downloaded model (refs → snapshot)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0123abcd")
    (snapshot / "config.json").write_text(json.dumps({"model_type": "depth_anything"}))
    os.symlink(weights, snapshot / "model.safetensors")
    return snapshot


def test_explicit_original_file_is_recognised(vits_file: Path) -> None:
    source = find_depth_weights("vitl", str(vits_file))
    assert source == DepthWeightsSource("vits", str(vits_file.resolve()), "original", "explicit path")
    assert read_key_shapes(vits_file)["pretrained.pos_embed"] == (1, 1370, 384)
    assert source.identity() == find_depth_weights("vitl", str(vits_file)).identity()


def test_explicit_path_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="--depth-weights"):
        find_depth_weights("vitl", str(tmp_path / "missing.pth"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(WeightsError, match="depth_anything"):
        find_depth_weights("vitl", str(tmp_path / "folder"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="Cannot read depth weights"):
        find_depth_weights("vitl", str(garbage))
    raft_like = tmp_path / "raft.pth"
    torch.save({"fnet.conv1.weight": torch.zeros(1)}, raft_like)
    with pytest.raises(WeightsError, match="Not Depth Anything V2"):
        find_depth_weights("vitl", str(raft_like))


def test_search_order_host_then_folders_then_hub_cache(tmp_path: Path, vits_file: Path) -> None:
    ckpts_a, ckpts_b, cache = tmp_path / "a", tmp_path / "b", tmp_path / "hf"
    cache.mkdir()
    assert find_depth_weights("vitl", search_dirs=[ckpts_a], hf_cache_dir=cache) is None
    # the Hugging Face cache (any variant, the named one first)
    small = fake_hub_cache(cache, HUB_REPOS["vits"], vits_file)
    found = find_depth_weights("vitl", search_dirs=[ckpts_a], hf_cache_dir=cache)
    assert found is not None and found.path == str(small) and found.layout == "transformers" and found.variant == "vits"
    # a ckpts folder beats the cache; the named variant beats another one in an earlier folder
    vitb = ckpts_a / HOST_FILES["vitb"]
    write_original(vitb, "vits")  # content does not matter for the search
    found = find_depth_weights("vitl", search_dirs=[ckpts_a, ckpts_b], hf_cache_dir=cache)
    assert found.path == str(vitb.resolve()) and found.variant == "vitb" and found.layout == "original"
    vitl = ckpts_b / HOST_FILES["vitl"]
    write_original(vitl, "vits")
    found = find_depth_weights("vitl", search_dirs=[ckpts_a, ckpts_b], hf_cache_dir=cache)
    assert found.path == str(vitl.resolve()) and found.variant == "vitl"
    assert find_depth_weights("vitb", search_dirs=[ckpts_a, ckpts_b], hf_cache_dir=cache).path == str(vitb.resolve())
    # the host's locator comes first; a failing locator is skipped
    host_file = write_original(tmp_path / "host" / HOST_FILES["vitl"], "vits")
    asked: list[str] = []

    def locator(relative: str) -> str | None:
        asked.append(relative)
        return str(host_file) if relative == HOST_FILES["vitl"] else None

    found = find_depth_weights("vitl", search_dirs=[ckpts_a], host_locator=locator, hf_cache_dir=cache)
    assert found.path == str(host_file.resolve()) and found.origin == f"Wan2GP {HOST_FILES['vitl']}"
    assert asked == [HOST_FILES["vitl"]]

    def broken(relative: str) -> str:
        raise RuntimeError("host bug")

    found = find_depth_weights("vitl", search_dirs=[ckpts_b], host_locator=broken, hf_cache_dir=cache)
    assert found.path == str(vitl.resolve())


def test_variant_preference() -> None:
    assert variant_preference("vitb") == ["vitb", "vitl", "vits"]
    assert variant_preference("da3_metric_large") == ["vitl", "vitb", "vits"]  # V3 is not ours: V2 large first
    assert variant_preference(None)[0] == "vitl"


def test_missing_weights_say_where_and_how(tmp_path: Path) -> None:
    empty_cache = tmp_path / "hf"
    empty_cache.mkdir()
    with pytest.raises(WeightsNotFoundError) as caught:
        require_depth_weights("vitb", search_dirs=[tmp_path / "ckpts"], hf_cache_dir=empty_cache,
                              host_locator=lambda relative: None)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "ckpts" / HOST_FILES["vitb"]) in message
    assert "file locator" in message and HUB_REPOS["vitb"] in message and "--depth-weights" in message
