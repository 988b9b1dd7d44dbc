"""Torch only where a torch model runs: each path a user takes runs in a fresh interpreter, which then
reports the heavy modules it imported (``sys.modules``). DIS, canny, raw, cache hits, re-targets,
``cache`` commands and the app's start load no torch, torchvision, onnxruntime or transformers (and
no gradio outside the app); a RAFT run, the control, loads torch and torchvision."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

HEAVY = ("torch", "torchvision", "onnxruntime", "transformers", "gradio")

#: Runs one CLI command (or builds the app without launching it) and prints what it imported.
DRIVER = """
import json, sys
argv = json.loads(sys.argv[1])
if argv == ["app"]:
    from wan2gp_structure_video.ui.standalone import build_app
    build_app()
    code = 0
else:
    from wan2gp_structure_video.cli import main
    code = main(argv)
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def run_fresh(argv: list[str], cwd: Path, env_extra: dict[str, str]) -> set[str]:
    """The heavy modules a fresh interpreter imported while running ``argv`` (which must succeed)."""
    env = {**os.environ, **env_extra}
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, proc.stderr[-2000:]
    return set(report["loaded"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A short source video, a cache folder, and no RAFT weights anywhere (``auto`` picks DIS)."""
    root = tmp_path_factory.mktemp("light")
    source = write_sample_video(root / "source.mp4", 256, 144, frames=40, fps=16)
    env = {"TORCH_HOME": str(root / "torch-home"), "WAN2GP_CKPTS": str(root / "no-ckpts"),
           "XDG_CACHE_HOME": str(root / "xdg"), "WAN2GP_STRUCTURE_VIDEO_HOME": str(root / "home")}
    env.pop("WAN2GP_ROOT", None)
    return root, source, env


def guide(world, name: str, *options: str) -> list[str]:
    root, source, _ = world
    return ["guide", str(source), "-o", str(root / f"{name}.mp4"), "--resolution", "256x144",
            "--cache-dir", str(root / "cache"), "-q", *options]


def test_guides_without_a_torch_model_import_none(world) -> None:
    root, _, env = world
    paths = {
        "dis guide": guide(world, "dis", "--backend", "dis", "--frames", "17"),
        "auto without weights (DIS)": guide(world, "auto", "--frames", "17", "--fps", "12"),
        "cache hit": guide(world, "hit", "--backend", "dis", "--frames", "17"),
        "re-target": guide(world, "retarget", "--backend", "dis", "--frames", "25", "--fps", "24"),
        "canny guide": guide(world, "canny", "--type", "canny", "--frames", "9"),
        "raw guide": guide(world, "raw", "--type", "raw", "--frames", "9"),
        "gray guide": guide(world, "gray", "--type", "gray", "--frames", "9"),
        "cache stats": ["cache", "stats", "--cache-dir", str(root / "cache")],
        "cache prune": ["cache", "prune", "--cache-dir", str(root / "cache"), "--cache-max-gb", "5"],
    }
    loaded = {name: run_fresh(argv, root, env) for name, argv in paths.items()}
    assert loaded == {name: set() for name in paths}
    assert (root / "hit.mp4").stat().st_size > 0 and (root / "retarget.mp4").stat().st_size > 0
    assert run_fresh(["cache", "clear", "--cache-dir", str(root / "cache")], root, env) == set()


def test_the_app_starts_with_gradio_alone(world) -> None:
    root, _, env = world
    assert run_fresh(["app"], root, env) == {"gradio"}


@pytest.mark.slow
def test_raft_loads_torch_and_its_cache_hit_does_not(world) -> None:
    """The control: the same check sees torch and torchvision when RAFT runs."""
    root, _, env = world
    argv = guide(world, "raft", "--backend", "raft", "--raft-weights", "random", "--iterations", "2",
                 "--frames", "5", "--resolution", "128x128")
    assert {"torch", "torchvision"} <= run_fresh(argv, root, env)
    assert run_fresh(argv, root, env) == set()


def test_weights_lookup_spells_torchs_names_without_torch(tmp_path: Path) -> None:
    """Looking for RAFT weights needs neither torch nor torchvision, and finds what they would name."""
    from wan2gp_structure_video.preprocessors.weights.raft_weights import hub_checkpoint_names, torchvision_hub_names

    for model in ("large", "small"):
        assert hub_checkpoint_names(model) == torchvision_hub_names(model)
    code = ("import sys, json; from wan2gp_structure_video.preprocessors.weights.raft_weights import torch_hub_dir, "
            "find_raft_weights; print(json.dumps([str(torch_hub_dir()), str(find_raft_weights('large')), "
            "'torch' in sys.modules])); import torch; print(torch.hub.get_dir())")
    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "xdg")}, {}):
        clean = {k: v for k, v in os.environ.items() if k not in ("TORCH_HOME", "XDG_CACHE_HOME")}
        proc = subprocess.run([sys.executable, "-c", code], env={**clean, **env, "WAN2GP_CKPTS": str(tmp_path)},
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = proc.stdout.strip().splitlines()
        ours, found, torch_loaded = json.loads(lines[0])
        assert (ours, found, torch_loaded) == (lines[1], "None", False)  # looked everywhere, no torch


def test_pose_and_contour_guides_drawn_from_the_cache_load_no_model_runtime(world) -> None:
    """A re-target of a pose or contour guide draws from the cached rows: no onnxruntime, no torch."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, str(Path(__file__).parent))
    from pose_models import build_pose_models
    from wan2gp_structure_video.preprocessors.annotators.contour_model import build_contour_net

    root, _, env = world
    models = build_pose_models(root / "pose-models")
    contour = root / "contour" / "netG_A_latest.pth"
    contour.parent.mkdir()
    torch.save(build_contour_net(seed=2).state_dict(), contour)
    for kind, weights in (("pose", ["--pose-weights", str(models)]), ("contour", ["--contour-weights", str(contour)])):
        first = run_fresh(guide(world, f"{kind}1", "--type", kind, "--frames", "9", *weights), root, env)
        assert first & {"onnxruntime", "torch"}, f"the {kind} model did not run the first time"
        again = run_fresh(guide(world, f"{kind}2", "--type", kind, "--frames", "13", "--fps", "24", *weights), root, env)
        assert again == set(), f"a {kind} re-target loaded {again}"
