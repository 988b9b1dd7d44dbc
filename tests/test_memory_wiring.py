"""The memory side of real runs (CPU, DIS and RAFT-small): history, pressure, timeline, summary."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wan2gp_structure_video.memory import BatchSizeHistory, PressurePolicy, RamReading, Timeline, default_history
from wan2gp_structure_video.paths import user_data_dir
from wan2gp_structure_video.pipeline import GuideRequest, RunContext, build_guide, iter_guide_frames, prepare
from wan2gp_structure_video.pipeline.multi import Placement, build_composite_guide
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video

GIB = 1024 ** 3


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> str:
    return str(write_sample_video(tmp_path_factory.mktemp("wiring") / "s.mp4", width=320, height=180, frames=30))


def _request(sample: str, output, **options) -> GuideRequest:
    return GuideRequest(sample, output, **{"resolution": (160, 96), "frames": 13, "fps": 16, "backend": "dis",
                                           **options})


def test_every_run_gets_the_user_history_and_a_pressure_policy() -> None:
    ctx = RunContext(use_cache=False).resolved()
    assert ctx.history is default_history() and ctx.history.path == user_data_dir() / "batch_history.json"
    assert isinstance(ctx.pressure, PressurePolicy)


def test_second_run_starts_at_the_learned_size_and_says_so(sample, tmp_path) -> None:
    history = BatchSizeHistory(tmp_path / "h.json")
    first = build_guide(_request(sample, tmp_path / "a.mp4"), RunContext(history=history, use_cache=False))
    assert first.batch_note == "batch 8 (default)" and "batch 8 (default)" in first.summary()
    second = build_guide(_request(sample, tmp_path / "b.mp4"), RunContext(history=history, use_cache=False))
    assert second.batch_note == "batch 8 (learned)" and "learned from 1 earlier run" in second.summary(verbose=True)
    explicit = build_guide(_request(sample, tmp_path / "c.mp4", batch_size=3),
                           RunContext(history=history, use_cache=False))
    assert explicit.batch_size == 3 and explicit.batch_note == "batch 3 (set)"
    entry = history.get("dis|none|cpu|192x128|fp32")  # backend identity | device | 64-px bucket | precision
    assert entry["runs"] == 3 and entry["final"] == 3 and len(history) == 1


def test_ram_pressure_shrinks_the_batch_logs_and_keeps_the_output(sample, tmp_path) -> None:
    # Rendered frames are compared (the H.264 encoder itself is not bit-reproducible under load).
    calm = list(iter_guide_frames(_request(sample, None),
                                  RunContext(history=BatchSizeHistory(tmp_path / "h1.json"), use_cache=False)))
    squeeze = {"checks": 0}

    def reader() -> RamReading:  # 95 % of a 4 GiB budget at every check
        squeeze["checks"] += 1
        return RamReading(int(3.8 * GIB), int(0.2 * GIB), 4 * GIB)

    policy = PressurePolicy(ram_reader=reader, sleep=lambda s: None)
    history = BatchSizeHistory(tmp_path / "h2.json")
    ctx = RunContext(history=history, pressure=policy, timeline=Timeline(), use_cache=False)
    prepared = prepare(_request(sample, None))
    frames = list(iter_guide_frames(prepared.request, ctx, prepared))
    tight, timeline = prepared.result, ctx.timeline
    assert len(frames) == len(calm) == 13 and all(np.array_equal(a, b) for a, b in zip(calm, frames))
    assert squeeze["checks"] >= 4 and policy.decisions and {d.level for d in policy.decisions} == {"emergency"}
    pressure_events = [e for e in timeline.events if e.kind == "pressure"]
    assert pressure_events and pressure_events[0].text.startswith("emergency (RAM 95%) before the input")
    assert [e.text for e in timeline.events if e.kind == "batch size"][:2] == \
        ["batch size 8", "batch 8 -> 4 (emergency RAM pressure)"]
    verbose = tight.summary(verbose=True)
    assert "Batch size changed: batch 8 -> 4" in verbose and "Clean-up: Memory pressure emergency" in verbose
    nxt = build_guide(_request(sample, tmp_path / "next.mp4"), RunContext(history=history, use_cache=False))
    assert nxt.batch_size == 1 and "backed off" in nxt.summary(verbose=True)


def test_raft_run_marks_phases_and_pool_events(sample, tmp_path) -> None:
    result = build_guide(_request(sample, tmp_path / "r.mp4", backend="raft", raft_model="small",
                                  raft_weights="random", iterations=1, teardown="release"),
                         RunContext(history=BatchSizeHistory(tmp_path / "h.json"), use_cache=False))
    timeline = result.timeline
    assert {"decode", "flow", "render", "encode"} <= {p.name for p in timeline.phases}
    kinds = [e.kind for e in timeline.events]
    assert "batch size" in kinds and "release" in kinds
    assert {row["series"] for row in timeline.chart_rows()} == {"process memory (anonymous)"}
    assert result.peak_anon_bytes > 0 and "Peak process memory (anonymous)" in result.summary(verbose=True)


def test_a_cache_hit_says_nothing_was_extracted(sample, tmp_path) -> None:
    cache = FlowCache(tmp_path / "cache")
    ctx = dict(history=BatchSizeHistory(tmp_path / "h.json"), cache=cache)
    build_guide(_request(sample, tmp_path / "a.mp4"), RunContext(**ctx))
    hit = build_guide(_request(sample, tmp_path / "b.mp4", motion_strength=0.5), RunContext(**ctx))
    assert hit.flows_from_cache and hit.batch_note == ""
    assert any("nothing was extracted" in note for note in hit.timeline.notes)
    assert "nothing was extracted" in hit.summary(verbose=True)
    assert not [e for e in hit.timeline.events if e.kind in ("load", "batch size")]


def test_multi_input_runs_check_pressure_and_adapt_between_inputs(sample, tmp_path) -> None:
    other = write_sample_video(tmp_path / "other.mp4", width=320, height=180, frames=30, seed=3)
    readings = iter([0.95] * 3 + [0.2] * 1000)  # tight before the first input only

    def reader() -> RamReading:
        used = next(readings)
        return RamReading(int(used * 4 * GIB), int((1 - used) * 4 * GIB), 4 * GIB)

    history, timeline = BatchSizeHistory(tmp_path / "h.json"), Timeline()
    ctx = RunContext(history=history, timeline=timeline, use_cache=False,
                     pressure=PressurePolicy(ram_reader=reader, sleep=lambda s: None))
    result = build_composite_guide(tmp_path / "c.mp4", 20, [Placement(sample, 0, 10), Placement(other, 10, 10)],
                                   resolution=(160, 96), backend="dis", context=ctx)
    assert result.output.exists()
    (key,) = [k for k in json.loads((tmp_path / "h.json").read_text())]
    assert history.get(key)["runs"] == 2  # both inputs recorded; the second started from the first's outcome
    sizes = [e.text for e in timeline.events if e.kind == "batch size"]
    assert sizes == ["batch size 8", "batch size 8"]
    pressure = [e.text for e in timeline.events if e.kind == "pressure"]
    assert pressure and pressure[0].startswith("emergency (RAM 95%) before the input")
