"""Finding Wan2GP's contour weights: each source in order, cache identities, and the one-line refusal."""
from __future__ import annotations

from pathlib import Path

import pytest

from wan2gp_structure_video.errors import WeightsError, WeightsNotFoundError
from wan2gp_structure_video.preprocessors.weights.contour_weights import (ContourWeightsSource, find_contour_weights,
                                                                         require_contour_weights)


def _weights(root: Path, content: bytes = b"weights") -> Path:
    path = root / "ckpts" / "scribble" / "netG_A_latest.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture()
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("WAN2GP_CKPTS", raising=False)
    monkeypatch.delenv("WAN2GP_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)


def test_explicit_path_first(tmp_path, no_env) -> None:
    found = _weights(tmp_path / "a")
    other = _weights(tmp_path / "b")
    source = find_contour_weights(str(found), host_locator=lambda _rel: str(other), search_dirs=[other.parents[1]])
    assert source == ContourWeightsSource(str(found.resolve()), "explicit path")
    with pytest.raises(WeightsNotFoundError, match="--contour-weights"):
        find_contour_weights(str(tmp_path / "missing.pth"))
    with pytest.raises(WeightsError, match="is a folder"):
        find_contour_weights(str(tmp_path))


def test_host_locator_then_ckpts_folders(tmp_path, no_env) -> None:
    by_host = _weights(tmp_path / "host")
    in_dir = _weights(tmp_path / "dir")
    asked: list[str] = []
    source = find_contour_weights(host_locator=lambda rel: asked.append(rel) or str(by_host),
                                  search_dirs=[in_dir.parents[1]])
    assert asked == ["scribble/netG_A_latest.pth"] and source.path == str(by_host.resolve())
    source = find_contour_weights(host_locator=lambda _rel: None, search_dirs=[in_dir.parents[1]])
    assert source.path == str(in_dir.resolve()) and "ckpts/scribble/netG_A_latest.pth" in source.origin


@pytest.mark.parametrize("variable", ["WAN2GP_CKPTS", "WAN2GP_ROOT"])
def test_environment_folders(tmp_path, no_env, monkeypatch, variable) -> None:
    path = _weights(tmp_path / "wan")
    monkeypatch.setenv(variable, str(path.parents[1] if variable == "WAN2GP_CKPTS" else path.parents[2]))
    assert find_contour_weights().path == str(path.resolve())


def test_wan2gp_folder_above_the_plugin(tmp_path, no_env, monkeypatch) -> None:
    import wan2gp_structure_video
    from wan2gp_structure_video.preprocessors.weights import raft_weights

    assert raft_weights.PLUGIN_ROOT == Path(wan2gp_structure_video.__file__).resolve().parent
    path = _weights(tmp_path / "Wan2GP")
    monkeypatch.setattr(raft_weights, "PLUGIN_ROOT", tmp_path / "Wan2GP" / "plugins" / "structure_video")
    assert find_contour_weights().path == str(path.resolve())


def test_missing_is_one_line_saying_where_and_how(tmp_path, no_env) -> None:
    assert find_contour_weights(search_dirs=[tmp_path / "ckpts"]) is None
    with pytest.raises(WeightsNotFoundError) as info:
        require_contour_weights(host_locator=lambda _rel: None, search_dirs=[tmp_path / "ckpts"])
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "ckpts" / "scribble" / "netG_A_latest.pth") in message
    assert "file locator" in message and "--contour-weights PATH" in message and "Wan2GP downloads it" in message


def test_identity_follows_the_file(tmp_path) -> None:
    one = _weights(tmp_path / "one", b"first")
    two = _weights(tmp_path / "two", b"second")
    first = ContourWeightsSource(str(one), "explicit path")
    assert first.identity() == ContourWeightsSource(str(one), "elsewhere").identity()
    assert first.identity() != ContourWeightsSource(str(two), "explicit path").identity()
    assert ContourWeightsSource(None, "random", seed=4).identity() == "random:4"


def test_finding_weights_needs_no_torch(tmp_path) -> None:
    """The lookup runs before any model loads (and for the error message): it must not import torch."""
    import subprocess
    import sys

    code = ("import sys; from wan2gp_structure_video.preprocessors.weights.contour_weights import find_contour_weights;"
            f" find_contour_weights(search_dirs=[{str(tmp_path)!r}]); print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
