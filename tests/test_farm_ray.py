"""The farm on a local Ray instance (2 CPUs): DIS flow, canny and depth (a tiny random model).

One jobs file of 12 lines over 3 sources with repeated keys (two lengths and two treatments of one
source, a segment set, two depth contrasts), a bad request in the middle and one whose worker fails. Every guide must equal,
byte for byte, the guide of that request run alone (the CLI, or ``build_guide`` for segment windows,
which the CLI has no option for) with a fresh cache; the farm's cache must hold exactly the keys those
lone runs extracted. Then: a rerun extracts nothing; a worker killed mid-extraction changes nothing.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("transformers")

from wan2gp_structure_video.cli import main  # noqa: E402
from wan2gp_structure_video.farm import read_jobs, run_farm  # noqa: E402
from wan2gp_structure_video.pipeline import GuideRequest, RunContext, build_guide  # noqa: E402
from wan2gp_structure_video.preprocessors.weights import depth_weights  # noqa: E402
from wan2gp_structure_video.preprocessors.annotators.depth_model import build_depth_model  # noqa: E402
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache  # noqa: E402

from videogen import make_video  # noqa: E402

pytestmark = pytest.mark.slow

TINY = depth_weights.DepthArchitecture("custom", hidden=32, layers=4, heads=2, out_indices=(1, 2, 3, 4), features=8,
                                       out_channels=(4, 8, 16, 32), image_size=70)
#: CLI flags of the request fields the jobs below use.
FLAGS = {"resolution": "--resolution", "frames": "--frames", "fps": "--fps", "guide_type": "--type",
         "treatment": "--treatment", "backend": "--backend", "depth_weights": "--depth-weights",
         "depth_contrast": "--depth-contrast"}


#: Lines of the job below that must fail (and only them).
FAILING = (5, 6)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """Sources, the jobs file, and each line's reference guide and keys from a lone run."""
    root = tmp_path_factory.mktemp("farm")
    make_video(root / "walk.mp4", 96, 64, frames=30)
    make_video(root / "pan.mp4", 112, 64, frames=24)
    make_video(root / "room.mp4", 80, 64, frames=12)
    model = build_depth_model(TINY, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    model.save_pretrained(root / "tiny-depth")
    # weights whose file is readable (the planner identifies them) but do not fit the model: fails in the worker
    (root / "mismatched-depth").mkdir()
    (root / "mismatched-depth" / "config.json").write_bytes((root / "tiny-depth" / "config.json").read_bytes())
    other = depth_weights.DepthArchitecture("custom", hidden=16, layers=4, heads=2, out_indices=(1, 2, 3, 4),
                                            features=8, out_channels=(4, 8, 16, 32), image_size=70)
    build_depth_model(other, seed=0).save_pretrained(root / "other-depth")
    (root / "mismatched-depth" / "model.safetensors").write_bytes(
        (root / "other-depth" / "model.safetensors").read_bytes())
    flow = {"resolution": "96x64", "backend": "dis"}
    depth = {"input": "room.mp4", "resolution": "80x64", "frames": 9, "guide_type": "depth",
             "depth_weights": "tiny-depth", "depth_input_size": None}
    lines = [
        {"input": "walk.mp4", "frames": 17, **flow},
        {"input": "walk.mp4", "frames": 25, **flow},                                # another length
        {"input": "walk.mp4", "frames": 30, "fps": 24, "treatment": "clip", **flow},  # another treatment
        {"input": "pan.mp4", "frames": 9, "guide_type": "canny", "resolution": "96x64"},
        {"input": "missing.mp4", "frames": 9, **flow},                              # a bad request
        {**depth, "depth_weights": "mismatched-depth"},                             # fails in its worker
        *({"input": "pan.mp4", "frames": 20, "window_start": start, "window_frames": length, **flow}
          for start, length in ((0, 8), (8, 8), (16, 4))),                          # a segment set
        depth,
        {**depth, "depth_contrast": 2.0},
        {"input": "walk.mp4", "frames": 9, **flow},                                 # a coarser stride
    ]
    (root / "jobs.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    references, keys = {}, set()
    for number, line in enumerate(lines, 1):
        if number in FAILING:
            continue
        out, cache = root / "ref" / f"{number}.mp4", root / "ref" / f"cache{number}"
        resolved = {k: str(root / v) if k in ("input", "depth_weights") else v for k, v in line.items()}
        if "window_start" in line:
            build_guide(GuideRequest(output=out, **resolved), RunContext(cache=FlowCache(cache)))
        else:
            args = ["guide", resolved["input"], "--out", str(out), "--cache-dir", str(cache), "-q"]
            args += [a for k, v in resolved.items() if k in FLAGS for a in (FLAGS[k], str(v))]
            args += ["--depth-input-size", "0"] if "depth_input_size" in line else []
            assert main(args) == 0
        references[number] = out.read_bytes()
        keys |= _entry_keys(cache)
    return root, references, keys


def _entry_keys(cache: Path) -> set[str]:
    """The keys of the flow/depth entries a cache holds (from their manifests)."""
    return {json.loads(m.read_text())["key"] for m in cache.glob("v1/entries/*/*/manifest.json")}


def _outputs(root: Path) -> dict[int, bytes]:
    return {int(p.name[:4]): p.read_bytes() for p in (root / "guides").glob("*.mp4")}


def test_each_key_is_extracted_once_and_every_guide_equals_a_lone_run(local_ray, job, capsys):
    root, references, keys = job
    assert len(keys) < len(references) - 1  # the job repeats keys (canny needs none)
    status = main(["farm", str(root / "jobs.jsonl"), "--out-dir", str(root / "guides"),
                   "--cache-dir", str(root / "shared"), "--workers", "2"])
    err = capsys.readouterr().err
    assert status == 1
    assert "line 5: failed:" in err and "missing.mp4 does not exist" in err
    assert "line 6: failed:" in err and "mismatched" in err.split("line 6: failed:")[1].splitlines()[0]
    assert "Processing (12/12)" in err and "2 of 12 requests failed" in err
    assert _outputs(root) == references  # every other line written, byte-identical to its lone run
    assert _entry_keys(root / "shared") == keys  # one entry per distinct key, nothing else
    assert list((root / "shared" / "v1" / "tmp").iterdir()) == []


def test_a_rerun_of_a_finished_job_does_no_annotator_work(local_ray, job):
    root, references, keys = job
    if not (root / "shared").exists():
        pytest.skip("needs the first run")
    report = run_farm(read_jobs(root / "jobs.jsonl", root / "guides"), cache_dir=root / "shared", workers=2)
    # only the line whose worker failed is tried again (and fails again); no other annotator work
    assert (report.planned, report.extracted) == (1, 0)
    assert [(e.line, bool(e.error)) for e in report.extractions] == [(6, True)]
    assert [r.line for r in report.failed] == list(FAILING)
    assert not any(r.extracted_while_rendering for r in report.requests)
    assert _outputs(root) == references


def test_a_worker_killed_mid_extraction_changes_nothing(local_ray, tmp_path):
    make_video(tmp_path / "long.mp4", 320, 192, frames=600)
    request = dict(input=tmp_path / "long.mp4", resolution=(320, 192), frames=81, backend="dis")
    assert main(["guide", str(tmp_path / "long.mp4"), "--out", str(tmp_path / "ref.mp4"), "--resolution", "320x192",
                 "--frames", "81", "--backend", "dis", "--cache-dir", str(tmp_path / "ref-cache"), "-q"]) == 0
    shared = tmp_path / "shared"
    requests = [GuideRequest(output=tmp_path / f"g{n}.mp4", **request, treatment=t)
                for n, t in enumerate(("adjust", "clip"))]
    killed: list[int] = []

    def kill_the_writer() -> None:
        """SIGKILL the process writing the entry as soon as its rows are being written."""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            for folder in (shared / "v1" / "tmp").glob("*.*.*"):
                if (folder / "flows.npy").exists() and not (folder / "manifest.json").exists():
                    pid = int(folder.name.split(".")[1])
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_the_writer, daemon=True)
    watcher.start()
    report = run_farm(requests, cache_dir=shared, workers=1)
    watcher.join()
    assert killed, "the extraction finished before it could be killed"
    assert not report.failed, [r.error for r in report.failed]
    assert [e.pid for e in report.extractions if e.extracted] != killed  # a restarted worker did it
    clip = build_guide(GuideRequest(output=tmp_path / "ref1.mp4", **request, treatment="clip"),
                       RunContext(cache=FlowCache(tmp_path / "ref-cache-clip")))  # alone: its own cache
    lone_keys = _entry_keys(tmp_path / "ref-cache") | _entry_keys(tmp_path / "ref-cache-clip")
    assert _entry_keys(shared) == lone_keys  # whole entries only, no partial one
    cache = FlowCache(shared)
    assert all(cache.lookup(key) is not None for key in _entry_keys(shared))
    assert (tmp_path / "g0.mp4").read_bytes() == (tmp_path / "ref.mp4").read_bytes()
    assert (tmp_path / "g1.mp4").read_bytes() == clip.output.read_bytes()
