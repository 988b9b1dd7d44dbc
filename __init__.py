"""wan2gp-structure-video: structure video → VACE control video, with strict annotator memory control.

The repository root is both the Wan2GP plugin folder (imported as ``<folder>.plugin``) and the
pip package ``wan2gp_structure_video``. Heavy modules load lazily, so importing the package (or
the plugin) stays cheap::

    from wan2gp_structure_video import GuideRequest, build_guide
    result = build_guide(GuideRequest("in.mp4", "guide.mp4", resolution="832x480", frames=81, fps=16))
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "GuideRequest": ".pipeline",
    "GuideResult": ".pipeline",
    "RunContext": ".pipeline",
    "build_guide": ".pipeline",
    "iter_guide_frames": ".pipeline",
    "GuideRun": ".pipeline",
    "export_rows": ".pipeline",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
