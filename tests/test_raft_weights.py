"""RAFT weights: princeton-vl → torchvision renames, layout detection, search order, loading errors."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from wan2gp_structure_video.errors import WeightsError, WeightsNotFoundError
from wan2gp_structure_video.preprocessors.annotators.flow_raft import RaftFlowBackend
from wan2gp_structure_video.preprocessors.weights.raft_weights import (
    HOST_WEIGHTS, WeightsSource, convert_princeton_state_dict, default_search_dirs, detect_layout,
    find_raft_weights, hub_checkpoint_names, infer_model_size, load_raft)

# torchvision → princeton-vl, written independently of the module under test (the inverse of
# DESIGN.md's table), applied in order, first match wins.
_INVERSE = [(re.compile(p), r) for p, r in (
    (r"^feature_encoder\.", "fnet."),
    (r"^context_encoder\.", "cnet."),
    (r"^mask_predictor\.convrelu\.0\.", "update_block.mask.0."),
    (r"^mask_predictor\.conv\.", "update_block.mask.2."),
    (r"^update_block\.motion_encoder\.convcorr(\d)\.0\.", r"update_block.encoder.convc\1."),
    (r"^update_block\.motion_encoder\.convflow(\d)\.0\.", r"update_block.encoder.convf\1."),
    (r"^update_block\.motion_encoder\.conv\.0\.", "update_block.encoder.conv."),
    (r"^update_block\.recurrent_block\.convgru(\d)\.conv([zrq])\.", r"update_block.gru.conv\2\1."),
)]
_ENCODER_INVERSE = [(re.compile(p), r) for p, r in (
    (r"^(fnet|cnet)\.convnormrelu\.0\.", r"\1.conv1."),
    (r"^(fnet|cnet)\.convnormrelu\.1\.", r"\1.norm1."),
    (r"^(fnet|cnet)\.conv\.", r"\1.conv2."),
    (r"^(fnet|cnet)\.(layer\d\.\d)\.convnormrelu(\d)\.0\.", r"\1.\2.conv\3."),
    (r"^(fnet|cnet)\.(layer\d\.\d)\.convnormrelu(\d)\.1\.", r"\1.\2.norm\3."),
)]


def to_princeton(state_dict: dict[str, torch.Tensor], small: bool = False) -> dict[str, torch.Tensor]:
    """What a princeton-vl checkpoint of the same weights looks like (DataParallel-saved)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = key
        for pattern, replacement in _INVERSE:
            name, hits = pattern.subn(replacement, name, count=1)
            if hits:
                break
        for pattern, replacement in _ENCODER_INVERSE:
            name, hits = pattern.subn(replacement, name, count=1)
            if hits:
                break
        if small:  # the small model's single GRU has no 1/2 suffix
            name = re.sub(r"^update_block\.gru\.conv([zrq])1\.", r"update_block.gru.conv\1.", name)
        out["module." + name] = value.clone()
        alias = re.match(r"^cnet\.(layer\d\.0)\.downsample\.1\.(.+)$", name)
        if alias:  # princeton registers the downsample norm a second time as norm3 (norm4 in bottlenecks)
            out[f"module.cnet.{alias.group(1)}.{'norm4' if small else 'norm3'}.{alias.group(2)}"] = value.clone()
    return out


@pytest.fixture(scope="module")
def large_random() -> torch.nn.Module:
    return load_raft(None, "large", seed=3)


def test_princeton_layout_converts_with_every_key_used(large_random: torch.nn.Module) -> None:
    original = large_random.state_dict()
    princeton = to_princeton(original)
    assert any(".norm3." in k for k in princeton)  # the aliases are really there
    assert detect_layout(princeton) == "princeton"
    converted = convert_princeton_state_dict(princeton)
    assert set(converted) == set(original)
    for key, value in original.items():
        assert torch.equal(converted[key], value), key
    from torchvision.models.optical_flow import raft_large
    rebuilt = raft_large(weights=None)
    result = rebuilt.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_converted_weights_give_identical_flow(tmp_path: Path, large_random: torch.nn.Module) -> None:
    path = tmp_path / "raft-things.pth"
    torch.save(to_princeton(large_random.state_dict()), path)
    source = find_raft_weights("large", str(path))
    assert source is not None and source.layout == "princeton" and source.origin == "explicit path"
    converted = load_raft(source, "large")
    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (1, 96, 112, 3), dtype=np.uint8)
    second = np.roll(first, 2, axis=2)
    a = RaftFlowBackend(large_random, iterations=3).compute(first, second)
    b = RaftFlowBackend(converted, iterations=3).compute(first, second)
    assert np.array_equal(a, b)


def test_small_princeton_layout_converts() -> None:
    original = load_raft(None, "small", seed=1).state_dict()
    converted = convert_princeton_state_dict(to_princeton(original, small=True))
    assert set(converted) == set(original)
    assert infer_model_size(converted) == "small"


def test_leftover_keys_are_refused(large_random: torch.nn.Module) -> None:
    princeton = to_princeton(large_random.state_dict())
    princeton["module.update_block.extra.weight"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="no torchvision counterpart"):
        convert_princeton_state_dict(princeton)


def test_detect_layout(large_random: torch.nn.Module) -> None:
    tv = large_random.state_dict()
    assert detect_layout(tv) == "torchvision"
    assert detect_layout({"module." + k: v for k, v in tv.items()}) == "torchvision"
    with pytest.raises(WeightsError):
        detect_layout({"conv.weight": torch.zeros(1)})
    with pytest.raises(WeightsError):
        detect_layout({"fnet.conv1.weight": torch.zeros(1), "feature_encoder.conv.weight": torch.zeros(1)})


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not read by the search")
    return path


def test_search_order(tmp_path: Path) -> None:
    explicit = tmp_path / "explicit.pth"
    torch.save(load_raft(None, "large", seed=0).state_dict(), explicit)
    host = _touch(tmp_path / "host" / HOST_WEIGHTS)
    ckpts = tmp_path / "ckpts"
    searched = _touch(ckpts / HOST_WEIGHTS)
    hub = tmp_path / "hub"
    hub_name = hub_checkpoint_names("large")[0]
    cached = _touch(hub / "checkpoints" / hub_name)
    kwargs = dict(search_dirs=[tmp_path / "empty", ckpts], host_locator=lambda name: str(tmp_path / "host" / name),
                  hub_dir=hub)

    found = find_raft_weights("large", str(explicit), **kwargs)
    assert found.path == str(explicit.resolve()) and found.layout == "torchvision"
    found = find_raft_weights("large", None, **kwargs)
    assert found.path == str(host.resolve()) and found.layout == "princeton" and "Wan2GP" in found.origin
    found = find_raft_weights("large", None, **{**kwargs, "host_locator": lambda name: None})
    assert found.path == str(searched.resolve()) and found.layout == "princeton"
    found = find_raft_weights("large", None, search_dirs=[tmp_path / "empty"], hub_dir=hub)
    assert found.path == str(cached.resolve()) and found.layout == "torchvision" and hub_name in found.origin
    assert find_raft_weights("large", None, search_dirs=[], hub_dir=tmp_path / "nohub") is None
    # Wan2GP's raft-things.pth is RAFT-large: RAFT-small only looks in the hub cache
    assert find_raft_weights("small", None, **kwargs) is None
    small_cached = _touch(hub / "checkpoints" / hub_checkpoint_names("small")[0])
    assert find_raft_weights("small", None, **kwargs).path == str(small_cached.resolve())


def test_host_locator_failure_is_not_fatal(tmp_path: Path) -> None:
    def broken(name: str) -> str:
        raise RuntimeError("host bug")
    assert find_raft_weights("large", None, search_dirs=[], host_locator=broken, hub_dir=tmp_path) is None


def test_hub_names_prefer_chairs_things() -> None:
    names = hub_checkpoint_names("large")
    assert names[0] == "raft_large_C_T_V2-1bb1363a.pth" and len(names) == 6
    assert hub_checkpoint_names("small")[0].startswith("raft_small_C_T_V2")


def test_default_search_dirs_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAN2GP_CKPTS", str(tmp_path / "a"))
    monkeypatch.setenv("WAN2GP_ROOT", str(tmp_path / "root"))
    monkeypatch.chdir(tmp_path)
    dirs = default_search_dirs()
    assert dirs[0] == (tmp_path / "a").resolve()
    assert dirs[1] == (tmp_path / "root" / "ckpts").resolve()
    assert dirs[-1] == (tmp_path / "ckpts").resolve()
    assert len(dirs) == len(set(dirs))


def test_missing_explicit_path(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        find_raft_weights("large", str(tmp_path / "nope.pth"))


@pytest.mark.parametrize("content", [b"", b"garbage bytes, not a checkpoint", b"PK\x03\x04broken zip"])
def test_unreadable_weights(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as info:
        find_raft_weights("large", str(path))
    assert "\n" not in str(info.value)
    with pytest.raises(WeightsError):
        load_raft(WeightsSource("large", str(path), "princeton", "Wan2GP ckpts/flow/raft-things.pth"), "large")


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(WeightsError, match="no state dict"):
        find_raft_weights("large", str(path))
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(WeightsError, match="folder"):
        find_raft_weights("large", str(folder))


def test_wrong_model_size(tmp_path: Path) -> None:
    path = tmp_path / "small.pth"
    torch.save(load_raft(None, "small").state_dict(), path)
    with pytest.raises(WeightsError, match="RAFT-small, not RAFT-large"):
        find_raft_weights("large", str(path))
    with pytest.raises(WeightsError, match="raft-model small"):
        load_raft(WeightsSource("large", str(path), "torchvision", "explicit path"), "large")
    assert find_raft_weights("small", str(path)).model == "small"


def test_mismatched_keys(tmp_path: Path) -> None:
    state = load_raft(None, "small").state_dict()
    del state["update_block.flow_head.conv2.bias"]
    path = tmp_path / "partial.pth"
    torch.save({"state_dict": state}, path)  # a wrapped checkpoint is unwrapped
    with pytest.raises(WeightsError, match="1 missing") as info:
        load_raft(WeightsSource("small", str(path), "torchvision", "explicit path"), "small")
    assert "\n" not in str(info.value)


def test_loaded_model_is_frozen_and_random_init_is_deterministic(tmp_path: Path) -> None:
    a, b, c = load_raft(None, "small", seed=5), load_raft(None, "small", seed=5), load_raft(None, "small", seed=6)
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    path = tmp_path / "tv.pth"
    torch.save(sa, path)
    loaded = load_raft(find_raft_weights("small", str(path)), "small")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert all(torch.equal(loaded.state_dict()[k], sa[k]) for k in sa)


def test_identity_is_stable_and_content_based(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"a" * (3 << 20))
    one = WeightsSource("large", str(path), "princeton", "explicit path")
    assert one.identity() == one.identity()
    assert one.identity().startswith("princeton:")
    other = tmp_path / "v.pth"
    other.write_bytes(b"a" * (3 << 20) + b"b")
    assert WeightsSource("large", str(other), "princeton", "x").identity() != one.identity()
    assert WeightsSource("large", None, "random", "random weights").identity() == "random:0"
