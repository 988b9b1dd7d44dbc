"""A guide's result is a value the run returns once its frames are drawn, not a record to read while
a generator is still filling it in."""
from __future__ import annotations

import numpy as np
import pytest

from wan2gp_structure_video import GuideRequest, RunContext, iter_guide_frames
from wan2gp_structure_video.pipeline.build import GuideRun
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return write_sample_video(tmp_path_factory.mktemp("src") / "sample.mp4", 160, 96, frames=24, fps=24)


def _request(sample, **kw) -> GuideRequest:
    return GuideRequest(sample, resolution=(96, 64), frames=7, fps=12, backend="dis", **kw)


def test_the_result_comes_after_the_last_frame(sample) -> None:
    run = GuideRun(_request(sample), RunContext(use_cache=False))
    frames = run.frames()
    first = next(frames)
    with pytest.raises(RuntimeError, match="not all been drawn"):
        run.result()  # the clip's scale is known, but the run has not ended
    rest = list(frames)
    result = run.result()
    assert 1 + len(rest) == 7 == result.frames and first.shape == (64, 96, 3)
    assert result.flow_scale is not None and result.flow_scale > 0 and result.backend == "dis"
    assert result.output is None  # frames in memory: nothing was written


def test_a_run_closed_early_has_no_result(sample) -> None:
    run = GuideRun(_request(sample, guide_type="canny"), RunContext(use_cache=False))
    frames = run.frames()
    next(frames)
    frames.close()
    with pytest.raises(RuntimeError):
        run.result()


def test_iter_guide_frames_draws_the_runs_frames(sample) -> None:
    run = GuideRun(_request(sample, guide_type="canny"), RunContext(use_cache=False))
    drawn = list(run.frames())
    assert run.result().backend == "none"
    again = list(iter_guide_frames(_request(sample, guide_type="canny"), RunContext(use_cache=False)))
    assert len(drawn) == len(again) == 7 and all(np.array_equal(a, b) for a, b in zip(drawn, again))
