"""The tab's raw-data download: after Extract, a zip of the run's flows served from the cache."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("gradio")

from wan2gp_structure_video.preprocessors.annotators.flow_dis import DisFlowBackend  # noqa: E402
from wan2gp_structure_video.preprocessors.video.sample_video import write_sample_video  # noqa: E402
from wan2gp_structure_video.ui import export_panel  # noqa: E402
from wan2gp_structure_video.ui import extract_panel as tab  # noqa: E402
from wan2gp_structure_video.ui.deps import TabDeps  # noqa: E402
from wan2gp_structure_video.ui.outputs import OutputFolder  # noqa: E402


class _Req:
    session_hash = "export-session"


def test_the_download_zips_the_last_runs_flows_without_running_the_annotator(tmp_path, monkeypatch) -> None:
    import gradio as gr

    deps = TabDeps(plugin=None, outputs=OutputFolder(tmp_path / "outputs"))
    with pytest.raises(gr.Error, match="Extract a flow, depth or pose guide first"):
        export_panel.export_raw(deps, _Req())
    source = str(write_sample_video(deps.outputs.ensure() / "s.mp4", width=160, height=96, frames=10, fps=12, seed=4242))
    tab.extract(deps, source, "128x96", 6, 8, "flow", "adjust", "crop", 0, 0, "frames", 1.0, "dis", 4, 0,
                request=_Req())
    calls: list[int] = []
    original = DisFlowBackend.compute
    monkeypatch.setattr(DisFlowBackend, "compute", lambda self, a, b: calls.append(1) or original(self, a, b))
    path, status = export_panel.export_raw(deps, _Req())
    assert calls == []  # served from the cache the Extract filled
    assert path.endswith(".zip") and "Exported flow flows.npy (9, 96, 128, 2)" in status
    assert "from the cache" in status
    with zipfile.ZipFile(path) as archive:
        names = sorted(name.split("/", 1)[1] for name in archive.namelist())
        assert names == ["export.json", "flows.npy"]
        prefix = archive.namelist()[0].split("/", 1)[0]
        sidecar = json.loads(archive.read(f"{prefix}/export.json"))
        flows = np.load(io.BytesIO(archive.read(f"{prefix}/flows.npy")), allow_pickle=False)
    assert sidecar["from_cache"] is True and sidecar["frames"] == list(range(10))
    assert flows.shape == (9, 96, 128, 2) and flows.dtype == np.float16
    assert not [p for p in (tmp_path / "outputs").iterdir() if p.name.startswith(".")]
