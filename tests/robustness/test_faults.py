"""Faults: injected out-of-memory, a failing host clear_gen_cache, a full disk, SIGKILL mid-extraction."""
from __future__ import annotations

import errno
import gc
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

from robustness.rbkit import assert_cache_consistent, assert_guide, leftovers, reap
from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.errors import CacheError, OutputError, StructureVideoError
from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.ui.host_bridge import install_host_hooks
from wan2gp_structure_video.preprocessors.cache import cache_entries as cache_entries_module
from wan2gp_structure_video.preprocessors.cache import cache_locks as cache_locks_module
from wan2gp_structure_video.preprocessors.cache import row_store as flow_store_module
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.annotators.flow_dis import DisFlowBackend
from wan2gp_structure_video.preprocessors.annotators.flow_raft import RaftFlowBackend
from wan2gp_structure_video.preprocessors.cache.row_store import RowStoreWriter
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video
from wan2gp_structure_video.preprocessors.video.guide_writer import GuideVideoWriter
from wan2gp_structure_video.preprocessors.video.video_io import iter_frames
from wan2gp_structure_video.progress import Progress

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return write_sample_video(tmp_path_factory.mktemp("src") / "sample.mp4", 160, 96, frames=24, fps=24)


def _dis_request(source, out, **kw) -> GuideRequest:
    return GuideRequest(source, out, **{"resolution": (128, 64), "frames": 16, "fps": 16, "backend": "dis", **kw})


def _raft_request(source, out, **kw) -> GuideRequest:
    return GuideRequest(source, out, **{"resolution": (128, 128), "frames": 7, "fps": 8, "backend": "raft",
                                        "raft_model": "small", "raft_weights": "random", "iterations": 2,
                                        "batch_size": 4, "device": "cpu", **kw})


def _rows(cache_root: Path, key: str) -> np.ndarray:
    entry = FlowCache(cache_root).lookup(key)
    assert entry is not None
    return np.array(entry.rows())


def _decoded(path: Path) -> np.ndarray:
    return np.stack(list(iter_frames(path)))


def _flaky(monkeypatch, cls, seed: int, rate: float = 0.5) -> list[tuple[int, bool]]:
    """Make ``cls.compute`` raise torch.OutOfMemoryError at random batches (never at batch size 1)."""
    original = cls.compute
    rng = random.Random(seed)
    calls: list[tuple[int, bool]] = []

    def compute(self, first, second):
        oom = len(first) > 1 and rng.random() < rate
        calls.append((len(first), oom))
        if oom:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return original(self, first, second)

    monkeypatch.setattr(cls, "compute", compute)
    return calls


# ------------------------------------------------------------------------------------- out of memory
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dis_oom_at_random_batches_gives_the_clean_output(tmp_path, sample, monkeypatch, seed) -> None:
    clean = build_guide(_dis_request(sample, tmp_path / "clean.mp4"),
                        RunContext(cache=FlowCache(tmp_path / "c1"), pool=AnnotatorPool(offload="plain")))
    calls = _flaky(monkeypatch, DisFlowBackend, seed, rate=0.6)
    faulty = build_guide(_dis_request(sample, tmp_path / "faulty.mp4", batch_size=4),
                         RunContext(cache=FlowCache(tmp_path / "c2"), pool=AnnotatorPool(offload="plain")))
    assert any(oom for _, oom in calls), f"no OOM was injected: {calls}"
    assert clean.cache_key == faulty.cache_key
    assert np.array_equal(_rows(tmp_path / "c1", clean.cache_key), _rows(tmp_path / "c2", faulty.cache_key))
    assert np.array_equal(_decoded(tmp_path / "clean.mp4"), _decoded(tmp_path / "faulty.mp4"))
    assert faulty.flow_scale == clean.flow_scale
    for root in ("c1", "c2"):
        assert_cache_consistent(tmp_path / root)


def test_raft_oom_at_random_batches_gives_the_clean_output(tmp_path, sample, monkeypatch) -> None:
    pool = AnnotatorPool(offload="plain")
    clean = build_guide(_raft_request(sample, tmp_path / "clean.mp4"),
                        RunContext(cache=FlowCache(tmp_path / "c1"), pool=pool))
    calls = _flaky(monkeypatch, RaftFlowBackend, seed=3, rate=0.6)
    faulty = build_guide(_raft_request(sample, tmp_path / "faulty.mp4"),
                         RunContext(cache=FlowCache(tmp_path / "c2"), pool=pool))
    assert any(oom for _, oom in calls) and calls[-1][0] < 4, calls
    # RAFT on the CPU: a different batch size may change the last bits of a convolution
    np.testing.assert_allclose(_rows(tmp_path / "c1", clean.cache_key).astype(np.float32),
                               _rows(tmp_path / "c2", faulty.cache_key).astype(np.float32), atol=2e-3, rtol=1e-3)
    # ... and H.264 may round a last-bit difference of the guide differently: near-identical pixels
    assert np.abs(_decoded(tmp_path / "clean.mp4").astype(int) - _decoded(tmp_path / "faulty.mp4")).mean() < 0.5
    (name,) = pool.names()
    assert pool.construct_count(name) == 1 and not pool.in_use() and not pool.is_on_gpu()


def test_oom_even_at_batch_one_is_a_typed_error_and_leaves_nothing(tmp_path, sample, monkeypatch) -> None:
    def always(self, first, second):
        raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(DisFlowBackend, "compute", always)
    out = tmp_path / "out" / "g.mp4"
    with pytest.raises(StructureVideoError, match="(?i)out of memory"):
        build_guide(_dis_request(sample, out), RunContext(cache=FlowCache(tmp_path / "c")))
    assert not out.exists() and not leftovers(tmp_path)
    assert FlowCache(tmp_path / "c").stats().entries == 0
    assert_cache_consistent(tmp_path / "c")


# ------------------------------------------------------------------------------------- host hooks
class _FakeHost:
    """The parts of wgp.py and process_locks the hooks touch (see tests/test_host_hooks.py)."""

    def __init__(self, clear_raises: bool = False) -> None:
        import types
        self.log: list = []
        self.clear_raises = clear_raises
        self.wgp = types.ModuleType("wgp")
        self.wgp.clear_gen_cache = self._clear
        self.modules = {"process_locks": types.SimpleNamespace(
            acquire_GPU_ressources=lambda state, pid, name, gr=None: self.log.append(("acquire", pid)),
            release_GPU_ressources=lambda state, pid, keep_resident=False, process_name=None,
            release_vram_callback=None: self.log.append(("release", pid)),
            register_GPU_resident=lambda *a: None, unregister_GPU_resident=lambda *a: None),
            "offload_registry": types.SimpleNamespace(register_offloadobj=lambda *a: None,
                                                      unregister_offloadobj=lambda *a: None)}

    def _clear(self) -> None:
        self.log.append("host clear_gen_cache")
        if self.clear_raises:
            raise RuntimeError("host clear_gen_cache failed")


class _Plugin:
    def __init__(self, host: _FakeHost) -> None:
        self.host = host
        self.clear_gen_cache = host.wgp.clear_gen_cache

    def set_global(self, name, value):
        setattr(self.host.wgp, name, value)


@pytest.fixture()
def fake_host(monkeypatch):
    host = _FakeHost(clear_raises=True)
    monkeypatch.setitem(sys.modules, "wgp", host.wgp)
    yield host


def test_host_clear_gen_cache_raising_after_a_kept_extraction(tmp_path, sample, fake_host) -> None:
    """A RAFT kept after a run (teardown keep) is destroyed by the hooked clear_gen_cache even when the
    host's original raises; the host's exception still reaches the host; the next run builds again."""
    pool = AnnotatorPool(offload="plain")
    hooks = install_host_hooks(_Plugin(fake_host), pool, fake_host.modules)
    state = {"gen": {}}
    ctx = RunContext(pool=pool, use_cache=False, gpu_lock=lambda: hooks.gpu_lock(state))
    build_guide(_raft_request(sample, tmp_path / "a.mp4", frames=4, teardown="keep"), ctx)
    (name,) = pool.names()
    ref = weakref.ref(pool._entries[name].module)
    assert pool.is_built(name) and ("acquire", "structure_video") in fake_host.log
    with pytest.raises(RuntimeError, match="host clear_gen_cache failed"):
        fake_host.wgp.clear_gen_cache()
    gc.collect()
    assert ref() is None and not pool.is_built(name)
    build_guide(_raft_request(sample, tmp_path / "b.mp4", frames=4), ctx)
    assert pool.construct_count(name) == 2 and not pool.in_use()
    assert_guide(tmp_path / "b.mp4", (128, 128), 4)
    hooks.uninstall()


def test_host_clear_gen_cache_during_an_extraction_defers_the_release(tmp_path, sample, fake_host) -> None:
    """The host clears its cache while our RAFT runs: the release waits for the end of the use (the run
    completes correctly), the host's exception reaches the host, and the model is gone afterwards."""
    pool = AnnotatorPool(offload="plain")
    hooks = install_host_hooks(_Plugin(fake_host), pool, fake_host.modules)
    raised: list[BaseException] = []
    refs: list = []

    def on_progress(update):
        if update.stage == "flow" and update.done > 0 and not raised:
            (name,) = pool.names()
            refs.append(weakref.ref(pool._entries[name].module))
            try:
                fake_host.wgp.clear_gen_cache()
            except RuntimeError as exc:  # keep no traceback: its frames would keep the model alive
                raised.append(str(exc))

    result = build_guide(_raft_request(sample, tmp_path / "a.mp4", frames=4, batch_size=1, teardown="keep"),
                         RunContext(pool=pool, use_cache=False, progress=Progress(on_progress)))
    assert raised == ["host clear_gen_cache failed"] and result.frames == 4
    assert_guide(tmp_path / "a.mp4", (128, 128), 4)
    gc.collect()
    assert refs[0]() is None and not pool.is_built(pool.names()[0]) and not pool.in_use()
    hooks.uninstall()


# ------------------------------------------------------------------------------------- disk full
def _raise_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _assert_clean_after_disk_full(tmp_path: Path, out: Path, sample: Path, cache: bool = True) -> None:
    assert not out.exists(), "an output was left"
    assert not leftovers(tmp_path), f"partial files: {leftovers(tmp_path)}"
    if cache:
        assert_cache_consistent(tmp_path / "cache")
        assert FlowCache(tmp_path / "cache").stats().entries == 0


def _put_fails_at_row(monkeypatch, row: int) -> None:
    original = RowStoreWriter.put

    def put(self, index, flow):
        if index == row:
            _raise_enospc()
        return original(self, index, flow)

    monkeypatch.setattr(RowStoreWriter, "put", put)


DISK_FULL_POINTS = {
    "flow-file-create": lambda mp: mp.setattr(flow_store_module.os, "posix_fallocate", _raise_enospc),
    "flow-row-write": lambda mp: _put_fails_at_row(mp, 3),
    "flow-file-sync": lambda mp: mp.setattr(flow_store_module.os, "fsync", _raise_enospc),
    "cache-manifest": lambda mp: mp.setattr(cache_entries_module, "write_text_atomic", _raise_enospc),
    "cache-lock": lambda mp: mp.setattr(cache_locks_module, "_open_lock_file", _raise_enospc),
}


@pytest.mark.parametrize("point", sorted(DISK_FULL_POINTS))
def test_disk_full_while_writing_the_cache(tmp_path, sample, monkeypatch, point) -> None:
    clean = build_guide(_dis_request(sample, tmp_path / "clean.mp4"), RunContext(cache=FlowCache(tmp_path / "ref")))
    shutil.rmtree(tmp_path / "ref")
    out = tmp_path / "out" / "g.mp4"
    with monkeypatch.context() as mp:
        DISK_FULL_POINTS[point](mp)
        with pytest.raises(CacheError, match="No space left") as caught:
            build_guide(_dis_request(sample, out), RunContext(cache=FlowCache(tmp_path / "cache")))
    assert "\n" not in str(caught.value)
    _assert_clean_after_disk_full(tmp_path, out, sample)
    again = build_guide(_dis_request(sample, out), RunContext(cache=FlowCache(tmp_path / "cache")))
    assert again.cache_hit is False and again.cache_key == clean.cache_key
    assert np.array_equal(_decoded(out), _decoded(tmp_path / "clean.mp4"))
    assert_cache_consistent(tmp_path / "cache")


@pytest.mark.parametrize("point", ["flow-file-create", "flow-row-write"])
def test_disk_full_without_cache_is_typed_and_removes_the_temporary_flows(tmp_path, sample, monkeypatch,
                                                                         point) -> None:
    work = tmp_path / "work"
    work.mkdir()
    out = tmp_path / "out" / "g.mp4"
    with monkeypatch.context() as mp:
        DISK_FULL_POINTS[point](mp)
        with pytest.raises(CacheError, match="No space left"):
            build_guide(_dis_request(sample, out), RunContext(use_cache=False, work_dir=work))
    assert not list(work.iterdir())
    _assert_clean_after_disk_full(tmp_path, out, sample, cache=False)


def test_disk_full_while_writing_the_guide(tmp_path, sample, monkeypatch) -> None:
    original = GuideVideoWriter.write

    def write(self, frame):
        if self.frames_written == 5:
            _raise_enospc()
        return original(self, frame)

    out = tmp_path / "out" / "g.mp4"
    with monkeypatch.context() as mp:
        mp.setattr(GuideVideoWriter, "write", write)
        with pytest.raises(OutputError, match="No space left") as caught:
            build_guide(_dis_request(sample, out), RunContext(cache=FlowCache(tmp_path / "cache")))
    assert "\n" not in str(caught.value)
    assert not out.exists() and not leftovers(tmp_path)
    # the flows were complete before the guide failed: they stay cached, whole, and are reused
    assert_cache_consistent(tmp_path / "cache")
    again = build_guide(_dis_request(sample, out), RunContext(cache=FlowCache(tmp_path / "cache")))
    assert again.cache_hit is True and not again.render_cached
    assert_guide(out, (128, 64), 16)


def test_disk_full_while_copying_a_cached_guide(tmp_path, sample, monkeypatch) -> None:
    ctx = RunContext(cache=FlowCache(tmp_path / "cache"))
    build_guide(_dis_request(sample, tmp_path / "first.mp4"), ctx)
    out = tmp_path / "out" / "g.mp4"
    with monkeypatch.context() as mp:
        mp.setattr("shutil.copyfile", _raise_enospc)
        with pytest.raises(OutputError, match="No space left"):
            build_guide(_dis_request(sample, out), ctx)
    assert not out.exists() and not leftovers(tmp_path)
    assert build_guide(_dis_request(sample, out), ctx).render_cached


def test_disk_full_while_caching_the_rendered_guide_still_gives_the_guide(tmp_path, sample, monkeypatch) -> None:
    out = tmp_path / "out" / "g.mp4"
    cache = FlowCache(tmp_path / "cache")
    monkeypatch.setattr(cache, "store_render", _raise_enospc)
    build_guide(_dis_request(sample, out), RunContext(cache=cache))
    assert_guide(out, (128, 64), 16)
    assert not leftovers(tmp_path)
    assert_cache_consistent(tmp_path / "cache")


_UNSHARE = shutil.which("unshare")


@pytest.mark.skipif(_UNSHARE is None or not sys.platform.startswith("linux"), reason="needs Linux unshare")
def test_really_full_disk_is_a_typed_error_not_a_crash(tmp_path, sample) -> None:
    """A real 1 MiB tmpfs (private mount namespace): writing flows there must give CacheError, never
    SIGBUS from a memory-mapped page that cannot be allocated."""
    mount = tmp_path / "small"
    mount.mkdir()
    script = textwrap.dedent(f"""
        import sys
        from wan2gp_structure_video import GuideRequest, RunContext, build_guide
        from wan2gp_structure_video.errors import CacheError
        from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
        try:
            build_guide(GuideRequest({str(sample)!r}, {str(tmp_path / 'g.mp4')!r}, resolution=(320, 192), frames=16,
                                     fps=16, backend="dis"), RunContext(cache=FlowCache({str(mount)!r})))
        except CacheError as exc:
            print("CACHEERROR", exc)
            sys.exit(3)
    """)
    probe = subprocess.run([_UNSHARE, "-r", "-m", "sh", "-c", f"mount -t tmpfs -o size=1M tmpfs '{mount}'"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a private tmpfs here: {probe.stderr.strip()}")
    proc = subprocess.run([_UNSHARE, "-r", "-m", "sh", "-c",
                           f"mount -t tmpfs -o size=1M tmpfs '{mount}' && exec '{sys.executable}' -c \"$0\"", script],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, WAN2GP_STRUCTURE_VIDEO_HOME=str(tmp_path / "home")))
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert "No space left" in proc.stdout
    assert not (tmp_path / "g.mp4").exists()


# ------------------------------------------------------------------------------------- SIGKILL
_SLOW_EXTRACTION = """
import sys, time
from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.progress import Progress

def slow(update):
    if update.stage == "flow" and update.done > 0:
        print("flow", update.done, flush=True)
        time.sleep(0.5)

src, out, cache = sys.argv[1:4]
build_guide(GuideRequest(src, out, resolution=(128, 64), frames=16, fps=16, backend="dis", batch_size=1),
            RunContext(cache=FlowCache(cache), progress=Progress(slow)))
print("finished", flush=True)
"""


def test_sigkill_during_extraction_then_the_next_run_completes(tmp_path, sample) -> None:
    cache_root, out = tmp_path / "cache", tmp_path / "out" / "g.mp4"
    env = dict(os.environ, WAN2GP_STRUCTURE_VIDEO_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_EXTRACTION, str(sample), str(out), str(cache_root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        partial = []
        while time.monotonic() < deadline and proc.poll() is None:
            partial = list((cache_root / "v1" / "tmp").glob("*/flows.npy")) if (cache_root / "v1").exists() else []
            if partial and proc.stdout.readline().startswith("flow"):  # a few rows are in the file
                break
            time.sleep(0.05)
        assert partial and proc.poll() is None, "the extraction never reached the cache"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        reap(proc)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    cache = FlowCache(cache_root)
    assert cache.stats().entries == 0  # the killed writer never published an entry
    result = build_guide(_dis_request(sample, out), RunContext(cache=cache))
    assert result.cache_hit is False
    assert_guide(out, (128, 64), 16)
    assert_cache_consistent(cache_root)  # the dead writer's folder is gone, the new entry is whole
    clean = tmp_path / "clean.mp4"
    build_guide(_dis_request(sample, clean), RunContext(use_cache=False))
    assert np.array_equal(_decoded(out), _decoded(clean))
    assert not leftovers(tmp_path / "out")
