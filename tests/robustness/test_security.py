"""Security: nothing is ever unpickled, cache names come only from hashes, no shell, local-only app."""
from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

from robustness.rbkit import assert_cache_consistent
from videogen import make_video
from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.errors import StructureVideoError
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache, sha256_file
from wan2gp_structure_video.preprocessors.cache.row_store import open_flow_rows

PACKAGE = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for p in PACKAGE.rglob("*.py")
                 if not any(part.startswith(".") or part in ("tests", "build", "site-packages", "node_modules")
                            or part.endswith(".egg-info") for part in p.relative_to(PACKAGE).parts[:-1]))
HEX64 = r"[0-9a-f]{64}"


class _Payload:
    """Unpickling this creates a marker file: proof that a pickle was loaded."""

    marker: Path

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant_pickle(path: Path, marker: Path) -> None:
    payload = _Payload()
    payload.marker = marker
    array = np.empty(2, dtype=object)
    array[:] = [payload, payload]
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=True)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("sec") / "v.mp4", 96, 64, frames=10)


def _request(video: Path, out: Path, **kw) -> GuideRequest:
    return GuideRequest(video, out, **{"resolution": (96, 64), "frames": 8, "fps": 8, "backend": "dis", **kw})


@pytest.mark.parametrize("forge_manifest", [False, True], ids=["checksum-mismatch", "forged-manifest"])
def test_planted_pickle_in_the_cache_is_never_loaded_and_is_recomputed(tmp_path, video, forge_manifest) -> None:
    marker = tmp_path / "PICKLE_WAS_LOADED"
    cache_root = tmp_path / "cache"
    first = build_guide(_request(video, tmp_path / "a.mp4"), RunContext(cache=FlowCache(cache_root)))
    entry = FlowCache(cache_root).lookup(first.cache_key)
    good_rows = np.array(entry.rows())
    _plant_pickle(entry.rows_path, marker)
    if forge_manifest:  # an attacker who also rewrites the manifest: the checksum matches the pickle
        manifest_path = entry.path / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest.update(bytes=entry.rows_path.stat().st_size, sha256=sha256_file(entry.rows_path))
        manifest_path.write_text(json.dumps(manifest))
    for render in (cache_root / "v1" / "renders").iterdir():
        render.unlink()  # make the next run read the flows
    again = build_guide(_request(video, tmp_path / "b.mp4"), RunContext(cache=FlowCache(cache_root)))
    assert not marker.exists(), "a pickle was loaded from the cache"
    assert again.cache_hit is False, "the planted file was used instead of being recomputed"
    assert np.array_equal(np.array(FlowCache(cache_root).lookup(again.cache_key).rows()), good_rows)
    assert_cache_consistent(cache_root)


def test_the_flow_reader_refuses_pickles(tmp_path) -> None:
    marker = tmp_path / "PICKLE_WAS_LOADED"
    _plant_pickle(tmp_path / "flows.npy", marker)
    with pytest.raises((ValueError, StructureVideoError)):
        open_flow_rows(tmp_path / "flows.npy")
    assert not marker.exists()


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def test_source_never_unpickles_or_uses_a_shell() -> None:
    assert len(SOURCES) > 20 and any(p.name == "flow_cache.py" for p in SOURCES)
    problems = []
    for path in SOURCES:
        where = path.relative_to(PACKAGE)
        tree = ast.parse(path.read_text("utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
                if any(m.split(".")[0] in ("pickle", "cPickle", "dill", "marshal", "shelve") for m in modules):
                    problems.append(f"{where}:{node.lineno} imports an unpickler")
        for call in _calls(tree):
            name = _name(call.func)
            shell = _keyword(call, "shell")
            if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
                problems.append(f"{where}:{call.lineno} {name}(shell=...)")
            if name in ("os.system", "os.popen", "eval", "exec", "subprocess.getoutput", "subprocess.getstatusoutput"):
                problems.append(f"{where}:{call.lineno} {name}()")
            if name.endswith("torch.load") or name == "load" and "torch" in ast.unparse(call.func):
                weights_only = _keyword(call, "weights_only")
                if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                    problems.append(f"{where}:{call.lineno} torch.load without weights_only=True")
            if name in ("np.load", "numpy.load") or name.endswith(".load") and "np" == name.split(".")[0]:
                allow = _keyword(call, "allow_pickle")
                if not (isinstance(allow, ast.Constant) and allow.value is False):
                    problems.append(f"{where}:{call.lineno} np.load without allow_pickle=False")
            allow = _keyword(call, "allow_pickle")
            if isinstance(allow, ast.Constant) and allow.value is True:
                problems.append(f"{where}:{call.lineno} allow_pickle=True")
    assert not problems, problems


CRAFTED = ["../../etc", "../../../../tmp/escape", "/etc/passwd", "..", "a/../../b", "%2e%2e%2f", "x\x00y"]


@pytest.mark.parametrize("crafted", CRAFTED)
def test_crafted_parameters_cannot_name_a_path_outside_the_cache(tmp_path, video, crafted) -> None:
    cache = FlowCache(tmp_path / "cache")
    for call in (cache.lookup, cache.render_path, cache.lookup_render, lambda key: cache._entry_dir(key)):
        with pytest.raises(ValueError, match="not a cache key"):
            call(crafted)
    with pytest.raises(ValueError):
        cache.get_or_create(crafted, lambda folder: {"shape": [0, 1, 1, 2]}, {})


def test_cache_files_are_named_by_hashes_only(tmp_path) -> None:
    """Requests whose free-text parts hold path tricks (input names, RAFT weights path) leave only
    hash-named files inside the cache and nothing outside it."""
    work = tmp_path / "work"
    tricky = work / "..%2f..%2fetc" / "..  evil name ..mp4"
    tricky.parent.mkdir(parents=True)
    make_video(tricky.with_suffix(".mp4"), 96, 64, frames=8)
    source = tricky.with_suffix(".mp4")
    cache_root = tmp_path / "cache"
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    build_guide(_request(source, work / "o1.mp4"), RunContext(cache=FlowCache(cache_root)))
    build_guide(_request(source, work / "o2.mp4", motion_strength=2.0), RunContext(cache=FlowCache(cache_root)))
    with pytest.raises(StructureVideoError):  # a weights "path" that tries to climb out: not found, no file made
        build_guide(_request(source, work / "o3.mp4", backend="raft", raft_weights="../../../etc/passwd.pth"),
                    RunContext(cache=FlowCache(cache_root)))
    allowed = [rf"entries/[0-9a-f]{{2}}/{HEX64}(/(flows\.npy|manifest\.json|verified\.json|used))?",
               "entries/[0-9a-f]{2}", rf"renders/{HEX64}\.(mp4|json)", rf"sources/{HEX64}\.json", rf"locks/{HEX64}\.lock",
               "entries", "renders", "sources", "locks", "tmp"]
    base = cache_root / "v1"
    for path in base.rglob("*"):
        relative = path.relative_to(base).as_posix()
        assert any(re.fullmatch(pattern, relative) for pattern in allowed), f"unexpected cache file {relative}"
    after = {str(p) for p in tmp_path.rglob("*")}
    new_outside = sorted(p for p in after - set(before) if not p.startswith(str(cache_root))
                         and not p.startswith(str(work)))
    assert not new_outside, new_outside


def test_standalone_app_binds_localhost_by_default() -> None:
    standalone = pytest.importorskip("wan2gp_structure_video.ui.standalone")
    launch = getattr(standalone, "launch", None)
    if launch is None:
        pytest.skip("the standalone app has no launch()")
    parameters = inspect.signature(launch).parameters
    host = parameters.get("host") or parameters.get("server_name")
    assert host is not None and host.default == "127.0.0.1"


def test_tab_refuses_paths_outside_the_upload_folder(tmp_path, monkeypatch) -> None:
    tab = pytest.importorskip("wan2gp_structure_video.ui.extract_panel")
    from wan2gp_structure_video.errors import StructureVideoError
    from wan2gp_structure_video.ui.deps import TabDeps
    from wan2gp_structure_video.ui.outputs import OutputFolder

    deps = TabDeps(plugin=None, outputs=OutputFolder(tmp_path / "outputs"))

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    monkeypatch.delenv(tab.ALLOWED_DIRS_ENV, raising=False)
    inside = tmp_path / "uploads" / "abc" / "clip.mp4"
    assert tab.check_upload_allowed(deps, str(inside)) == str(inside.resolve())
    for outside in ("/etc/passwd", str(tmp_path / "elsewhere.mp4"), str(tmp_path / "uploads" / ".." / "x.mp4")):
        with pytest.raises(StructureVideoError, match="outside the upload folder"):
            tab.check_upload_allowed(deps, outside)
    monkeypatch.setenv(tab.ALLOWED_DIRS_ENV, str(tmp_path))
    assert tab.check_upload_allowed(deps, str(tmp_path / "elsewhere.mp4"))
