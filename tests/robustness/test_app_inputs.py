"""The Gradio-endpoint leg of the robustness suite: bad uploads and 8 concurrent extractions through the
standalone app's API (gradio_client). Skips while the standalone app or gradio is absent."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("wan2gp_structure_video.ui.standalone")

from robustness.rbkit import EXPECTED, bad_input_builders  # noqa: E402
from ui_helpers import extract_via_api, video_path  # noqa: E402
from videogen import make_video  # noqa: E402
from wan2gp_structure_video.preprocessors.video.video_io import probe_video  # noqa: E402

ARGS = dict(resolution="96x64", frames=6, fps=8, guide_type="flow", treatment="adjust", fit="crop", start=None,
            end=None, range_unit="frames", motion_strength=1.0, backend="dis", iterations=20, batch_size=0)
#: Inputs that cannot be uploaded at all (no file to send): the API and CLI tests cover them.
NOT_UPLOADABLE = {"nonexistent", "directory", "url", "zero-byte"}


@pytest.fixture(scope="module")
def client():
    from ui_helpers import running_app

    with running_app() as url:
        yield gradio_client.Client(url, verbose=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("app inputs")
    good = make_video(root / "good.mp4", 64, 48, frames=12)
    return {name: build() for name, build in bad_input_builders(root / "cases", good).items()
            if name not in NOT_UPLOADABLE}





@pytest.mark.parametrize("case", sorted(set(EXPECTED) - NOT_UPLOADABLE))
def test_bad_upload_through_the_app(client, inputs, case) -> None:
    try:
        guide, *_ = extract_via_api(client, inputs[case], ARGS)
    except Exception as exc:  # gradio_client re-raises the app's gr.Error as AppError
        assert EXPECTED[case] in ("error", "either"), f"{case}: {exc}"
        message = str(exc)
        assert message and "Traceback" not in message and "\n" not in message.strip(), message
        return
    assert EXPECTED[case] in ("ok", "either"), f"{case}: expected an error"
    info = probe_video(video_path(guide))
    assert (info.width, info.height, info.frame_count) == (96, 64, 6)


def test_eight_concurrent_extractions_through_the_api(client, tmp_path) -> None:
    videos = [make_video(tmp_path / f"v{i}.mp4", 96 + 16 * (i % 3), 64, frames=8 + i % 2) for i in range(4)]
    jobs = [(videos[i % 4], dict(motion_strength=1.0 + (i // 4))) for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as executor:
        futures = [executor.submit(extract_via_api, gradio_client.Client(client.src, verbose=False), video,
                                   {**ARGS, **kw})
                   for video, kw in jobs]
        results = [future.result(timeout=300) for future in futures]
    for guide, *_ in results:
        info = probe_video(video_path(guide))
        assert (info.width, info.height, info.frame_count) == (96, 64, 6)
