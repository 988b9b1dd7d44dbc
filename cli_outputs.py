"""The command line's output paths, checked before any work starts (one line and exit 2 when wrong), and the
memory timeline written where ``--timeline`` says. Standard library only at import."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from .errors import OptionError, OutputError


def _check_folder(folder: Path, option: str, shown: str) -> None:
    """``folder`` exists as a writable folder, or can be created: else a one-line :class:`OptionError`."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OptionError(f"{option} {shown}: {existing} is a file, not a folder: choose a path in a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OptionError(f"{option} {shown}: the folder {existing} is not writable (permission denied): "
                          "choose a folder you can write to.")


def check_output_file(path: Path, option: str, suffixes: Sequence[str]) -> None:
    """Check an output file path before any work: suffix, not a folder, and a writable (or creatable) folder."""
    if path.suffix.lower() not in suffixes:
        raise OptionError(f"{option} {path}: use a {', '.join(suffixes[:-1]) + ' or ' if len(suffixes) > 1 else ''}"
                          f"{suffixes[-1]} path.")
    if path.is_dir():
        raise OptionError(f"{option} {path} is a folder: give a file path ending in {path.suffix or suffixes[0]}.")
    _check_folder(path.parent, option, str(path))


def check_output_folder(folder: Path, option: str) -> None:
    """Check an output folder before any work: not an existing file, and writable (or creatable)."""
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"{option} {folder} is an existing file: name a folder (it is created if missing).")
    _check_folder(folder, option, str(folder))


def check_timeline_writer(path: Path) -> None:
    """A ``--timeline`` path the run can write (a .png chart needs matplotlib)."""
    if path.suffix.lower() == ".png":
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise OptionError(f"--timeline {path.name}: a .png chart needs matplotlib (pip install matplotlib); "
                              "or use a .csv or .json path.")


def write_timeline(timeline, path: Path) -> None:
    """Write a run's memory timeline as a chart, CSV or JSON, by the path's suffix."""
    writers: dict[str, Callable[[Path], None]] = {".png": timeline.render_png, ".csv": timeline.to_csv,
                                                  ".json": timeline.to_json}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writers[path.suffix.lower()](path)
    except OSError as exc:
        raise OutputError(f"Cannot write --timeline {path}: {exc.strerror or exc}.") from exc
