"""The RAFT warm start as users reach it: ``--raft-warm-updates N`` / ``GuideRequest.raft_warm_updates``
runs N updates for every pair that follows the previous one, says so in the backend line, and keeps
its flows apart from cold-start flows in the cache (whose keys do not change)."""
from __future__ import annotations

import pytest

from wan2gp_structure_video import GuideRequest, RunContext, build_guide
from wan2gp_structure_video.cli import main
from wan2gp_structure_video.errors import OptionError
from wan2gp_structure_video.preprocessors.annotators import flow_raft
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_sample_video(tmp_path_factory.mktemp("warm") / "s.mp4", 160, 128, frames=7, fps=8)


def raft_request(source, out, **fields) -> GuideRequest:
    options = dict(resolution=(128, 128), frames=7, fps=8, backend="raft", raft_model="small", raft_weights="random",
                   iterations=3, batch_size=2)
    return GuideRequest(source, out, **{**options, **fields})


@pytest.mark.parametrize("updates", [0, 4, True, 2.5, "2"])
def test_bad_warm_updates_are_one_line_errors(source, tmp_path, updates) -> None:
    with pytest.raises(OptionError, match=r"warm-start updates .* from 1 to the iterations \(3\)"):
        raft_request(source, tmp_path / "g.mp4", raft_warm_updates=updates).validated()


def test_cli_checks_the_option_before_anything_loads(source, tmp_path, capsys) -> None:
    code = main(["guide", str(source), "-o", str(tmp_path / "g.mp4"), "--raft-warm-updates", "30", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "error: --raft-warm-updates 30: give 1 to 20 updates (at most --iterations)."
    assert not (tmp_path / "g.mp4").exists()


def test_warm_flows_are_computed_warm_noted_and_cached_apart(source, tmp_path, monkeypatch) -> None:
    updates: list[int] = []
    real = flow_raft.refine

    def spy(model, image1, image2, iterations, **options):
        updates.extend([iterations] * image1.shape[0])
        return real(model, image1, image2, iterations, **options)

    monkeypatch.setattr(flow_raft, "refine", spy)
    cache = FlowCache(tmp_path / "cache")
    warm = build_guide(raft_request(source, tmp_path / "warm.mp4", raft_warm_updates=1), RunContext(cache=cache))
    assert updates[0] == 3 and set(updates[1:]) == {1} and len(updates) >= 6  # batches of 2 still follow on
    assert "warm start: 1 update for a pair that follows the previous one (3 for the first)" in warm.backend_reason
    updates.clear()
    cold = build_guide(raft_request(source, tmp_path / "cold.mp4"), RunContext(cache=cache))
    assert cold.cache_hit is False and set(updates) == {3}  # warm flows never serve a cold request
    assert "warm start" not in cold.backend_reason
    updates.clear()
    again = build_guide(raft_request(source, tmp_path / "again.mp4", raft_warm_updates=1, frames=5),
                        RunContext(cache=cache))
    assert again.flows_from_cache and updates == []  # the warm entry serves a warm re-target
