"""Damaged or incomplete sources: a stream that holds fewer frames than its container announces.

A file cut short (an interrupted download or copy of an MP4 whose index sits at the front) still
opens and its index still announces every frame, but only the first few decode. Building a guide
from them silently gives a guide of a few source frames; so it is an error (one line naming both
numbers) unless the user allows a short source, then a note.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

from ...errors import InvalidVideoError
from .video_io import VideoInfo

__all__ = ["shortfall", "check_complete"]


def shortfall(info: VideoInfo) -> Optional[str]:
    """One line when the frames read fall short of what the container announces by more than one
    frame, or reading stopped on an error; ``None`` for a complete file."""
    name = Path(info.path).name
    if info.announced_frames and info.frame_count < info.announced_frames - 1:
        return (f"{name} is damaged or incomplete: {info.frame_count} frames could be read of the "
                f"{info.announced_frames} its container announces")
    if info.read_error:
        return f"{name} is damaged: reading stopped after {info.frame_count} frames ({info.read_error})"
    return None


def check_complete(info: VideoInfo, allow_short: bool) -> tuple[VideoInfo, Optional[str]]:
    """``info`` marked with the user's choice, and a note when a short file is accepted; raises
    :class:`InvalidVideoError` (one line, both numbers) for a short file unless ``allow_short``."""
    problem = shortfall(info)
    if problem and not allow_short:
        raise InvalidVideoError(f"{problem}: re-download or re-encode it, or allow a short source "
                                "(--allow-short, allow_short=True) to use the frames that are there.")
    note = f"{problem}; the guide uses the {info.frame_count} frames read (short source allowed)." if problem else None
    return replace(info, allow_short=bool(allow_short)), note
