"""The annotators, one description each (see ``base.Annotator``), by the guide type they serve.

Adding one: a module with an :class:`~.base.Annotator` subclass, and its line in :data:`ANNOTATORS`.
"""
from __future__ import annotations

from typing import Optional

from .base import Annotator
from .contour import CONTOUR, SCRIBBLE
from .depth import DEPTH
from .flow import FLOW
from .pose import POSE

__all__ = ["Annotator", "ANNOTATORS", "annotator_for"]

#: Guide types whose frames come from an annotator's stored rows (the others are drawn from the frames).
ANNOTATORS: dict[str, Annotator] = {annotator.guide_type: annotator
                                    for annotator in (FLOW, DEPTH, CONTOUR, SCRIBBLE, POSE)}


def annotator_for(guide_type: str) -> Optional[Annotator]:
    """The annotator of ``guide_type``, or None for a guide drawn straight from the frames (canny, raw, gray)."""
    return ANNOTATORS.get(guide_type)
