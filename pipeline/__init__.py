"""Orchestration: a guide request → a guide video, using preprocessors/ and memory/."""
from __future__ import annotations

from .build import GuideRun, build_guide, iter_guide_flows, iter_guide_frames
from .context import RunContext
from .export import ExportResult, export_rows
from .prepare import PreparedGuide, prepare
from .request import GuideRequest, GuideResult

__all__ = ["ExportResult", "GuideRequest", "GuideResult", "GuideRun", "PreparedGuide", "RunContext", "build_guide",
           "export_rows", "iter_guide_flows", "iter_guide_frames", "prepare"]
