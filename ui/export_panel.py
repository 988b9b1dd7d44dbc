"""The raw-data download under the details: the flows, depth maps or pose keypoints of the last Extract, zipped.

The run kept for this browser session carries its request; the export goes through the same
``pipeline.export.export_rows`` as the CLI and, right after an Extract, is served from the cache
the Extract filled (no annotator runs again).
"""
# No "from __future__ import annotations": Gradio reads the handlers' hints (gr.Request) at wiring time.

import shutil
import tempfile
import zipfile
from pathlib import Path

import gradio as gr

from ..errors import StructureVideoError
from . import host_bridge
from .deps import TabDeps
from .cache_home import tab_cache
from .failures import ends_cleanly

#: What the button explains before there is anything to export.
NOTHING_YET = ("Extract a flow, depth or pose guide first: the download holds its raw flows, depth maps or "
               "keypoints.")


def zip_folder(folder: Path, target: Path) -> Path:
    """``folder``'s files into the zip ``target`` (written under a temporary name, then renamed)."""
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"{target.stem}/{path.name}")
    partial.replace(target)
    return target


@ends_cleanly("Exporting the raw data")
def export_raw(deps: TabDeps, request: gr.Request = gr.Request()):
    """A zip of the last run's raw rows (.npy, 16-bit PNGs for depth, OpenPose JSON for pose, export.json)."""
    from ..pipeline.context import RunContext
    from ..pipeline.export import EXPORT_TYPES, export_rows

    run = deps.run_for(request) or {}
    guide_request = run.get("request")
    if guide_request is None or guide_request.guide_type not in EXPORT_TYPES:
        raise StructureVideoError(NOTHING_YET)
    target = deps.outputs.new_path(f"{Path(run['source']).stem}_{guide_request.guide_type}_raw", ".zip")
    with tempfile.TemporaryDirectory(prefix="sv-export-") as scratch:
        folder = Path(scratch) / target.stem
        ctx = RunContext(gpu_lock=deps.gpu_lock_for(deps.host_state(request)),
                         weights_locator=host_bridge.weights_locator(deps.plugin), cache=tab_cache(deps))
        result = export_rows(guide_request, folder, context=ctx)
        zip_folder(folder, target)
        shutil.rmtree(folder, ignore_errors=True)
    deps.outputs.prune()
    return str(target), f"Raw data: {result.summary().split(' -> ')[0]}."
