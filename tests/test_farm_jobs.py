"""The farm's jobs file and its shared-cache mode, without Ray: parsing, first writer wins, per-node checks."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from wan2gp_structure_video.cli import main
from wan2gp_structure_video.farm.jobs import JobsFileError, read_jobs
from wan2gp_structure_video.farm.shared_cache import open_shared_cache
from wan2gp_structure_video.preprocessors.cache import cache_hashing, cache_locks
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache, make_key
from wan2gp_structure_video.preprocessors.cache.row_store import FlowStoreWriter


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_relative_paths_are_taken_against_the_jobs_file_folder_and_defaults_are_the_api_s(tmp_path):
    folder = tmp_path / "job"
    folder.mkdir()
    jobs = read_jobs(_write(folder / "jobs.jsonl",
                            json.dumps({"input": "clips/a.mp4", "frames": 33, "resolution": [640, 360]}),
                            "",
                            json.dumps({"input": "/abs/b.mp4", "output": "out/b.mp4", "guide_type": "canny"})),
                     out_dir=tmp_path / "guides")
    assert [job.line for job in jobs] == [1, 3]
    first, second = (job.request for job in jobs)
    assert first.input == str(folder / "clips" / "a.mp4")
    assert first.output == str(tmp_path / "guides" / "0001_a_flow_guide.mp4")
    assert (first.frames, first.resolution, first.fps, first.treatment) == (33, (640, 360), 16.0, "adjust")
    assert second.input == "/abs/b.mp4" and second.output == str(folder / "out" / "b.mp4")


@pytest.mark.parametrize("line, says", [
    ("{\"input\": \"a.mp4\"", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("{\"input\": \"a.mp4\", \"frame\": 9}", "unknown field 'frame'"),
    ("{\"frames\": 9}", "no \"input\""),
    ("{\"input\": 3}", "\"input\" must be a path"),
])
def test_a_bad_line_is_one_error_naming_its_line_and_nothing_runs(tmp_path, capsys, line, says):
    jobs = _write(tmp_path / "jobs.jsonl", json.dumps({"input": "a.mp4"}), line)
    with pytest.raises(JobsFileError, match=f"jobs.jsonl line 2: .*{says}"):
        read_jobs(jobs, tmp_path / "out")
    assert main(["farm", str(jobs), "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 2" in err[0]
    assert not (tmp_path / "out").exists()


def test_two_lines_writing_one_output_are_refused(tmp_path):
    jobs = _write(tmp_path / "jobs.jsonl", json.dumps({"input": "a.mp4", "output": "g.mp4"}),
                  json.dumps({"input": "b.mp4", "output": "./g.mp4"}))
    with pytest.raises(JobsFileError, match="line 2: output .*g.mp4 is also line 1's"):
        read_jobs(jobs)


@pytest.mark.parametrize("args, says", [
    (["--workers", "0"], "--workers 0"),
    (["--gpus-per-worker", "0"], "--gpus-per-worker 0"),
    (["--address", "auto"], "--address needs --cache-dir"),
    (["--address", "headnode"], "ray://HOST:PORT"),
])
def test_bad_farm_options_exit_2_before_ray_loads(tmp_path, capsys, args, says):
    jobs = _write(tmp_path / "jobs.jsonl", json.dumps({"input": "a.mp4"}))
    assert main(["farm", str(jobs), "--out-dir", str(tmp_path / "out"), *args]) == 2
    assert says in capsys.readouterr().err


def _producer(value: float, calls: list):
    def produce(folder: Path) -> dict:
        calls.append(folder)
        writer = FlowStoreWriter(folder / "flows.npy", 2, 16, 16)
        for row in range(2):
            writer.put(row, np.full((16, 16, 2), value + row, dtype=np.float32))
        writer.close()
        return {"shape": [2, 16, 16, 2], "nodes": [0, 1, 2]}
    return produce


@pytest.fixture()
def no_flock(monkeypatch):
    """The shared mode must not rely on flock: any call fails the test."""
    def refuse(*_args, **_kwargs):
        raise AssertionError("flock was called on a shared cache")
    monkeypatch.setattr(cache_locks.fcntl, "flock", refuse)


def test_shared_publication_first_writer_wins_and_the_loser_discards_its_copy(tmp_path, no_flock):
    params = {"kind": "test"}
    key = make_key(params)
    first, second = (FlowCache(tmp_path / "shared", node_dir=tmp_path / f"node{i}") for i in (1, 2))
    # two machines computed the same key; the second renames after the first
    entry_a, ours_a = first._entries.publish(key, _producer(1.0, []), params)
    entry_b, ours_b = second._entries.publish(key, _producer(5.0, []), params)
    assert (ours_a, ours_b) == (True, False)
    assert entry_b.path == entry_a.path and float(entry_b.rows()[0, 0, 0, 0]) == 1.0
    assert list((tmp_path / "shared" / "v1" / "tmp").iterdir()) == []  # the loser's folder is gone
    with second.use(entry_b):  # reading takes no lock either
        pass


def test_each_node_verifies_an_entry_the_first_time_and_finds_damage(tmp_path, no_flock, monkeypatch):
    hashed: list[str] = []
    real = cache_hashing.sha256_file
    monkeypatch.setattr(cache_hashing, "sha256_file", lambda path: hashed.append(Path(path).name) or real(path))
    shared = tmp_path / "shared"
    writer = open_shared_cache(shared)
    key = make_key({"kind": "test"})
    entry, hit = writer.get_or_create(key, _producer(2.0, []), {"kind": "test"})
    assert not hit and not (entry.path / "verified.json").exists()  # stamps stay on the writer's node
    time.sleep(0.2)  # past the racy window of the file's last change: a stamp may be trusted
    other = FlowCache(shared, node_dir=tmp_path / "other-node")
    hashed.clear()
    assert other.lookup(key) is not None and hashed == ["flows.npy"]  # first use on this node: read in full
    assert other.lookup(key) is not None and hashed == ["flows.npy"]  # then its node-local stamp vouches
    assert (tmp_path / "other-node" / "entries" / f"{key}.json").is_file()
    data = bytearray((entry.path / "flows.npy").read_bytes())
    data[-1] ^= 0xFF  # damage the same size: only a checksum tells
    (entry.path / "flows.npy").write_bytes(bytes(data))
    third = FlowCache(shared, node_dir=tmp_path / "third-node")
    assert third.lookup(key) is None and third.problem(key) == "checksum mismatch"


def test_a_shared_cache_never_evicts_when_storing(tmp_path, no_flock):
    cache = FlowCache(tmp_path / "shared", max_bytes=1, node_dir=tmp_path / "node")
    keys = [make_key({"n": n}) for n in range(2)]
    for key in keys:
        cache.get_or_create(key, _producer(0.0, []), {"n": key})
    video = tmp_path / "g.mp4"
    video.write_bytes(b"x" * 100)
    cache.store_render(make_key({"render": 1}), video)
    assert all(cache.lookup(key) is not None for key in keys)  # over its 1-byte limit, nothing evicted
    assert cache.lookup_render(make_key({"render": 1})) is not None
