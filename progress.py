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


class ConsoleProgress:
    """Draws :class:`ProgressUpdate` s on a text stream (the CLI's stderr).

    On a terminal: one tqdm bar per stage, redrawn in place. Anywhere else (a log file, CI, a parent
    process reading a pipe): plain lines, one when a stage starts, then at most one every
    ``interval_s`` seconds or each ``step`` of the stage (10 %), and one when it ends — never
    carriage returns. :meth:`close` leaves the cursor at the start of a line, so a message printed
    afterwards (an error, "interrupted") starts on its own line.
    """

    def __init__(self, stream, *, interval_s: float = 5.0, step: float = 0.1,
                 clock: Optional[Callable[[], float]] = None, terminal: Optional[bool] = None) -> None:
        import time

        self.stream = stream
        self.interval_s, self.step = interval_s, step
        self._clock = clock or time.monotonic
        if terminal is None:
            isatty = getattr(stream, "isatty", None)
            terminal = bool(isatty and isatty())
        self.terminal = terminal
        self._bar = None
        self._stage: Optional[str] = None
        self._last_time = 0.0
        self._last_fraction = 0.0

    def __call__(self, update: ProgressUpdate) -> None:
        if self.terminal:
            self._draw_bar(update)
        else:
            self._draw_line(update)

    def _draw_bar(self, update: ProgressUpdate) -> None:
        if update.stage != self._stage:
            self.close()
            from tqdm import tqdm

            self._bar = tqdm(total=update.total, desc=update.stage, unit="frame", leave=False,
                             dynamic_ncols=True, file=self.stream)
            self._stage = update.stage
        self._bar.total = update.total
        self._bar.n = update.done
        self._bar.refresh()

    def _draw_line(self, update: ProgressUpdate) -> None:
        now, fraction = self._clock(), update.fraction
        new_stage = update.stage != self._stage
        finished = update.total > 0 and update.done >= update.total
        due = now - self._last_time >= self.interval_s or fraction - self._last_fraction >= self.step - 1e-9
        if not (new_stage or finished or due):
            return
        if not new_stage and finished and self._last_fraction >= 1.0:
            return  # the end of this stage was reported already
        self._stage, self._last_time, self._last_fraction = update.stage, now, fraction
        percent = f" ({fraction:.0%})" if update.total > 0 else ""
        self.stream.write(f"{update.stage}: {update.done}/{update.total}{percent}\n")
        self.stream.flush()

    def close(self) -> None:
        """End the current bar or line; the next output starts at the beginning of a line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._stage = None
        self._last_fraction = 0.0
