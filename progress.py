"""One progress type for all long work: reports steps and carries cancellation.

The CLI maps it to tqdm, the UI to ``gr.Progress``. Work calls :meth:`Progress.update`
between steps; a cancelled progress raises :class:`CancelledError` there, so work stops
within one step and its ``finally`` blocks run.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import CancelledError


@dataclass(frozen=True)
class ProgressUpdate:
    """One report: ``done`` of ``total`` units of ``stage`` (e.g. "flow", "encode")."""

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Share of the stage that is done, in [0, 1]."""
        if self.total <= 0:
            return 0.0
        return min(1.0, max(0.0, self.done / self.total))


ProgressCallback = Callable[[ProgressUpdate], None]


class Progress:
    """Forwards updates to an optional callback and carries a cancel flag."""

    def __init__(self, callback: Optional[ProgressCallback] = None,
                 cancel_event: Optional[threading.Event] = None) -> None:
        self._callback = callback
        self._cancel = cancel_event if cancel_event is not None else threading.Event()

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was asked for."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the work to stop at its next step."""
        self._cancel.set()

    def check_cancelled(self) -> None:
        """Raise :class:`CancelledError` if cancellation was asked for."""
        if self._cancel.is_set():
            raise CancelledError("Cancelled by the user; nothing was written.")

    def update(self, stage: str, done: int, total: int, message: str = "") -> None:
        """Report a step, then stop here if cancellation was asked for."""
        if self._callback is not None:
            self._callback(ProgressUpdate(stage, done, total, message))
        self.check_cancelled()


def ensure_progress(progress: Optional[Progress]) -> Progress:
    """Return ``progress`` or a silent one."""
    return progress if progress is not None else Progress()
