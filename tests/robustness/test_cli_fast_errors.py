"""Issue 24: every argument error the README promises answers before torch, OpenCV, PyAV or Gradio load
(each case in a fresh interpreter: what it imported, its exit status and its one line)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from wan2gp_structure_video import cli_args

HEAVY = ("torch", "torchvision", "cv2", "av", "gradio", "matplotlib")

_PROBE = """
import json, sys
from wan2gp_structure_video.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
sys.stderr.flush()
print(json.dumps({"code": code, "heavy": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def _run(tmp_path, *args: str) -> tuple[int, list[str], str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    return outcome["code"], outcome["heavy"], proc.stderr.strip()


@pytest.fixture()
def real_input(tmp_path):
    path = tmp_path / "in.mp4"
    path.write_bytes(b"not decoded: the arguments are refused first")
    return path


CASES = [
    (["--frames", "-5"], "error: --frames -5: give 1 to 100000 frames."),
    (["--frames", "0"], "error: --frames 0: give 1 to 100000 frames."),
    (["--fps", "0"], "error: --fps 0: give a frame rate above 0 up to 240."),
    (["--fps", "nan"], "error: --fps nan: give a frame rate above 0 up to 240."),
    (["--resolution", "foo"], "error: --resolution 'foo' is not WIDTHxHEIGHT: write it like 832x480."),
    (["--resolution", "8x8"], "error: --resolution 8x8: give 64 to 4096 pixels on each side, e.g. 832x480."),
    (["--iterations", "0"], "error: --iterations 0: give 1 to 100 iterations."),
    (["--start", "9", "--end", "3"], "error: --end 3 is not after --start 9: give an end after the start."),
    (["--depth-contrast", "0"], "error: --depth-contrast 0: give a number above 0 up to 10."),
    (["--batch-size", "-1"], "0 for automatic"),
    (["--device", "gpu"], "error: --device gpu: use auto, cpu, cuda or cuda:N."),
    (["--raft-weights", "missing.pth"], "error: --raft-weights missing.pth does not exist: give the path of a RAFT weights file"),
    (["--type", "bogus"], "--type"),  # a choice: argparse's own line
]


@pytest.mark.parametrize("extra,line", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_option_errors_answer_before_heavy_imports(tmp_path, real_input, extra, line) -> None:
    code, heavy, err = _run(tmp_path, "guide", str(real_input), "-o", str(tmp_path / "g.mp4"), *extra)
    assert code == 2 and heavy == [], (code, heavy, err)
    assert len(err.splitlines()) == 1 and line in err and "Traceback" not in err, err
    assert not (tmp_path / "g.mp4").exists()


@pytest.mark.parametrize("source,line", [
    ("https://example.com/x.mp4", "error: https://example.com/x.mp4 is a URL: download it first"),
    ("missing.mp4", "error: missing.mp4 does not exist: check the path of the structure video."),
])
def test_paths_and_urls_answer_before_heavy_imports(tmp_path, source, line) -> None:
    code, heavy, err = _run(tmp_path, "guide", source, "-o", str(tmp_path / "g.mp4"))
    assert code == 2 and heavy == [] and err.startswith(line) and len(err.splitlines()) == 1, (code, heavy, err)


def test_cache_size_answers_before_heavy_imports(tmp_path) -> None:
    code, heavy, err = _run(tmp_path, "cache", "stats", "--cache-max-gb", "-1", "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and heavy == [] and err == "error: --cache-max-gb -1: give a size above 0 gigabytes.", err


def test_cuda_without_cuda_is_an_error(tmp_path, real_input) -> None:
    """Without a GPU driver torch is not even imported; with one, only torch is (to ask it)."""
    code, heavy, err = _run(tmp_path, "guide", str(real_input), "-o", str(tmp_path / "g.mp4"), "--device", "cuda")
    if cli_args._gpu_driver_present():
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA: --device cuda is valid here")
        assert set(heavy) <= {"torch"}, heavy
    else:
        assert heavy == [], heavy
    assert code == 2 and err == "error: --device cuda: CUDA is not available on this machine: use --device cpu or auto."


def test_bounds_are_the_pipelines() -> None:
    from wan2gp_structure_video.pipeline import request
    from wan2gp_structure_video.pipeline.annotators import flow as backend_choice
    from wan2gp_structure_video.preprocessors.video import fit

    assert (cli_args.MAX_FRAMES, cli_args.MAX_GUIDE_FPS, cli_args.MAX_ITERATIONS) == \
        (request.MAX_FRAMES, request.MAX_GUIDE_FPS, request.MAX_ITERATIONS)
    assert (cli_args.MAX_DEPTH_CONTRAST, cli_args.MAX_DEPTH_SMOOTHING) == \
        (request.MAX_DEPTH_CONTRAST, request.MAX_DEPTH_SMOOTHING)
    assert (cli_args.GUIDE_MIN_SIDE, cli_args.GUIDE_MAX_SIDE) == (fit.GUIDE_MIN_SIDE, fit.GUIDE_MAX_SIDE)
    assert cli_args.RANDOM_WEIGHTS == backend_choice.RANDOM_WEIGHTS
