"""How a failed event ends on the page: one message in the page's words, one line in the terminal.

A :class:`~..errors.StructureVideoError` is the user's to fix: its message (through
:func:`~.wording.ui_words`) is all there is to say, so the terminal gets one line and no traceback.
Anything else is a fault of the program or the installation: the page says what failed and names the
log file under the user data folder that holds the traceback; the terminal gets one line. Only
``Exception`` is handled: ``KeyboardInterrupt``, ``SystemExit`` and other ``BaseException`` s go on.
"""
from __future__ import annotations

import datetime
import functools
import inspect
import logging
import os
import traceback
from pathlib import Path
from typing import Any, Callable

from ..errors import StructureVideoError
from ..paths import user_data_dir
from .wording import ui_words

logger = logging.getLogger("wan2gp_structure_video.app")

LOG_NAME = "app-errors.log"


def log_path() -> Path:
    """The log file of unexpected errors (appended to; one block per error)."""
    return user_data_dir() / "logs" / LOG_NAME


def _write_log(action: str, exc: BaseException) -> Path:
    path = log_path()
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"--- {stamp} pid {os.getpid()}: {action} failed\n{text}\n")
    return path


def describe_failure(action: str, exc: Exception) -> str:
    """The page's message for ``exc`` raised while doing ``action`` (e.g. "Extracting"), with the
    terminal line written; an unexpected error's traceback goes to :func:`log_path`."""
    if isinstance(exc, StructureVideoError):
        message = ui_words(str(exc))
        logger.warning("%s: %s", action, message)
        return message
    try:
        where = f"Details: {_write_log(action, exc)}"
    except OSError as log_error:  # no log file: the terminal gets the traceback instead
        logger.error("%s failed unexpectedly (the log file cannot be written: %s)", action, log_error.strerror,
                     exc_info=exc)
        where = "Details: in the terminal"
    logger.error("%s failed unexpectedly: %s (traceback in %s)", action, _short(exc), log_path())
    return f"Unexpected error, not caused by your settings: {_short(exc)}. {where}."


def _short(exc: BaseException) -> str:
    """The error's own text on one line, without Python's class name (its words, not its type)."""
    text = " ".join(str(exc).split())
    return ui_words(text[:200]) if text else "no message"


def page_error(message: str, toast: bool = True) -> Exception:
    """A ``gr.Error`` carrying ``message``, printed nowhere by Gradio (we wrote the terminal line).
    ``toast=False``: no pop-up on the page, where the panel's status line shows the message instead
    (one message, not two); API clients still receive it as an error."""
    import gradio as gr

    accepted = inspect.signature(gr.Error).parameters
    options: dict[str, Any] = {"print_exception": False} if "print_exception" in accepted else {}
    if not toast and "visible" in accepted:
        options["visible"] = False
    return gr.Error(message, **options)


def ends_cleanly(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a handler so that any ``Exception`` it raises reaches the page as one ``gr.Error`` in the
    page's words (an unexpected one logged, see :func:`describe_failure`); a ``gr.Error`` it raised
    itself passes with its message, written to the terminal as one line instead of a traceback."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def handler(*args: Any, **kwargs: Any) -> Any:
            import gradio as gr

            try:
                return fn(*args, **kwargs)
            except gr.Error as exc:  # the handler's own message for the user: one line, no traceback
                logger.warning("%s: %s", action, getattr(exc, "message", exc))
                exc.print_exception = False
                raise
            except Exception as exc:
                raise page_error(describe_failure(action, exc)) from exc

        return handler

    return decorate
