"""A third annotator is one description: the shared loop, row store and cache serve it unchanged.

The annotator here is a toy (a pooled "model" that turns each fitted frame into a uint8 luminance row),
written only against ``pipeline/annotators/base.py``. Its rows go through the real extraction loop (pool,
GPU lock, progress, batch-size history), the real row store and cache entry (in their own shape and
dtype), and come back from the cache on the next request without the model being built again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from wan2gp_structure_video.memory import AnnotatorPool
from wan2gp_structure_video.pipeline.annotators import ANNOTATORS
from wan2gp_structure_video.pipeline.annotators.base import Annotator
from wan2gp_structure_video.pipeline.build import open_rows
from wan2gp_structure_video.pipeline.context import RunContext
from wan2gp_structure_video.pipeline.prepare import prepare
from wan2gp_structure_video.pipeline.request import GuideRequest
from wan2gp_structure_video.preprocessors.cache.flow_cache import FlowCache
from wan2gp_structure_video.progress import Progress
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video


class _Choice:
    name = "toy-luma"
    reason = "the test's toy annotator"
    weights_label = "none"

    def identity(self) -> str:
        return "toy-luma|v1"

    def annotator_name(self) -> str:
        return "toy-luma"


class _Model:
    """Stands in for a model in the pool: counts how often it is built and what it computed."""

    built = 0

    def __init__(self) -> None:
        type(self).built += 1
        self.frames = 0

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        self.frames += len(frames)
        return frames.mean(axis=-1).astype(np.uint8)


class ToyLuma(Annotator):
    guide_type = "toy-luma"
    per_pair = False
    dtype = "uint8"
    key_kind = "source-toy-luma"
    progress_words = "luma"
    phase = "luma"

    def choose(self, request, locator):
        return _Choice()

    def factory(self, choice):
        return _Model

    def batch_fn(self, choice, model, device, request, precision):
        return lambda frames: list(model(np.stack(frames)))

    def bytes_per_input(self, choice, request, height, width):
        return height * width

    def row_shape(self, width, height):
        return (height, width)

    def key_fields(self, prepared, choice):
        return {"model": choice.identity()}

    def frames(self, stored, prepared, ctx) -> Iterator[np.ndarray]:
        for k in range(*prepared.window):
            row = np.asarray(stored.rows[min(k, len(stored.rows) - 1)])
            yield np.repeat(row[..., None], 3, axis=-1)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_sample_video(tmp_path / "s.mp4", width=96, height=64, frames=9, fps=16)


def test_a_third_annotator_runs_through_the_shared_loop_store_and_cache(tmp_path, source) -> None:
    toy = ToyLuma()
    assert "toy-luma" not in ANNOTATORS  # nothing of the shared code was told about it
    _Model.built = 0
    pool, cache = AnnotatorPool(offload="plain"), FlowCache(tmp_path / "cache")
    seen: list[tuple[str, int, int]] = []
    progress = Progress(lambda u: seen.append((u.stage, u.done, u.total)))
    request = GuideRequest(input=source, guide_type="raw", frames=9, fps=16, resolution=(96, 64), device="cpu")
    prepared = prepare(request)
    with open_rows(toy, prepared, RunContext(pool=pool, cache=cache, progress=progress).resolved()) as stored:
        assert stored.rows.dtype == np.uint8 and stored.rows.shape == (9, 64, 96)
        assert not stored.from_cache and stored.key is not None
        frames = list(toy.frames(stored, prepared, None))
    assert _Model.built == 1 and pool.names() == ["toy-luma"] and not pool.is_on_gpu("toy-luma")
    assert ("luma", 9, 9) in seen, "progress did not come from the shared loop"
    # the rows are the luminance of the fitted frames
    from wan2gp_structure_video.preprocessors.video.video_io import iter_frames

    first = next(iter(iter_frames(source)))
    np.testing.assert_array_equal(frames[0][..., 0], first.mean(axis=-1).astype(np.uint8))
    # the next request (another frame count) is served from the cache entry, in its own dtype
    again = prepare(GuideRequest(input=source, guide_type="raw", frames=5, fps=10, resolution=(96, 64), device="cpu"))
    with open_rows(toy, again, RunContext(pool=AnnotatorPool(offload="plain"), cache=cache).resolved()) as stored:
        assert stored.from_cache and stored.rows.dtype == np.uint8
    assert _Model.built == 1
    entry = cache.lookup(stored.key)
    assert entry is not None and entry.manifest["dtype"] == "uint8" and entry.manifest["annotator"] == "toy-luma"


def test_a_model_free_annotator_runs_outside_the_pool(tmp_path, source) -> None:
    class Free(ToyLuma):
        def factory(self, choice: Any):
            return None

        def batch_fn(self, choice, model, device, request, precision):
            assert model is None
            return lambda frames: [f.mean(axis=-1).astype(np.uint8) for f in frames]

    pool = AnnotatorPool(offload="plain")
    prepared = prepare(GuideRequest(input=source, guide_type="raw", frames=9, fps=16, resolution=(96, 64)))
    with open_rows(Free(), prepared, RunContext(pool=pool, use_cache=False).resolved()) as stored:
        assert stored.rows.shape == (9, 64, 96) and stored.key is None
    assert pool.names() == []
