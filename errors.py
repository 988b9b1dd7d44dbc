"""Typed errors of the project.

Every message says what the user should change. The UI shows them as ``gr.Error``;
the CLI prints them on one line and exits with status 2.
"""
from __future__ import annotations

import re


class StructureVideoError(Exception):
    """Base class of every error this project raises on purpose."""


class InvalidVideoError(StructureVideoError):
    """The structure video is missing, unreadable or unusable for the request."""


class TargetError(StructureVideoError):
    """The target (resolution, frame count, fps, range) cannot be produced."""


class OptionError(StructureVideoError):
    """An option has a value outside its allowed set or range."""


class WeightsNotFoundError(StructureVideoError):
    """Model weights were asked for but none were found locally."""


class WeightsError(StructureVideoError):
    """A weights file exists but cannot be read or does not fit the model."""


class OutOfMemoryAfterBackoff(StructureVideoError):
    """Out of memory even at the smallest batch size (and on the CPU fallback if allowed)."""


class CancelledError(StructureVideoError):
    """The user cancelled the work; nothing partial was kept."""


class CacheError(StructureVideoError):
    """The flow cache cannot be read or written (disk full, permissions, ...)."""


class OutputError(StructureVideoError):
    """The guide video cannot be written (disk full, permissions, ...); nothing partial was kept."""


#: Programmers' words that say nothing to a user: errno numbers, exception class names in brackets,
#: urllib's wrapper. Removed, the rest of the sentence stays.
_JARGON: tuple[tuple[str, str], ...] = (
    (r"<urlopen error (.*?)>", r"\1"),
    (r"\[Errno -?\d+\]\s*", ""),
    (r"\s*\((?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Interrupt)\)", ""),
    (r"\s*\(-?\d+\)", ""),
)


def plain_words(message: str) -> str:
    """``message`` without errno numbers and exception class names (``(InvalidDataError)``, ``(101)``)."""
    text = str(message)
    for pattern, replacement in _JARGON:
        text = re.sub(pattern, replacement, text)
    return text
