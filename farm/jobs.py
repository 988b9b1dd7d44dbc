"""The jobs file: JSON Lines, one ``GuideRequest`` per line, the same fields and defaults as the API.

A line is a JSON object whose keys are ``GuideRequest`` fields (``input`` is required). Relative paths
(``input``, ``output``, ``raft_weights``, ``depth_weights``) are taken against the jobs file's folder;
a line without ``output`` writes ``<out dir>/<line>_<input stem>_<type>_guide.mp4``. Blank lines are
skipped. A line that is not such an object is a :class:`JobsFileError` naming its line number, raised
before any work; a value that is wrong only for the pipeline (a bad option, an unreadable video) is
reported for that line when the job runs, and the other lines go on.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from ..errors import OptionError
from ..options import RANDOM_WEIGHTS
from ..pipeline.request import GuideRequest

#: Fields holding a path (relative ones are resolved against the jobs file's folder).
PATH_FIELDS = ("input", "output", "raft_weights", "depth_weights")
FIELDS = tuple(f.name for f in dataclasses.fields(GuideRequest))


class JobsFileError(OptionError):
    """A line of the jobs file is not a request (the message names the line)."""


@dataclass(frozen=True)
class Job:
    """One request of a farm job and where it came from (its line number; the index + 1 in the API)."""

    line: int
    request: GuideRequest

    @property
    def label(self) -> str:
        return f"line {self.line}"


def _path(value: Any, field: str, base: Path, where: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise JobsFileError(f"{where}: \"{field}\" must be a path (a non-empty string).")
    if field in ("raft_weights", "depth_weights") and value == RANDOM_WEIGHTS:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def parse_job(text: str, line: int, base: Path, out_dir: Optional[Path], where: str) -> Job:
    """One line as a :class:`Job` (``where``: how errors name the line, e.g. ``jobs.jsonl line 3``)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise JobsFileError(f"{where}: not JSON ({exc.msg} at column {exc.colno}); write one object per line.") \
            from None
    if not isinstance(data, dict):
        raise JobsFileError(f"{where}: a request must be a JSON object like {{\"input\": \"clip.mp4\"}}.")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise JobsFileError(f"{where}: unknown field {unknown[0]!r}; the fields are those of GuideRequest "
                            f"({', '.join(FIELDS)}).")
    if "input" not in data:
        raise JobsFileError(f"{where}: no \"input\": give the structure video's path.")
    fields = dict(data)
    for name in PATH_FIELDS:
        if name in fields:
            fields[name] = _path(fields[name], name, base, where)
    if isinstance(fields.get("resolution"), list):
        fields["resolution"] = tuple(fields["resolution"])
    if fields.get("output") is None:
        if out_dir is None:
            raise JobsFileError(f"{where}: no \"output\": add one, or give an output folder (--out-dir).")
        stem = Path(fields["input"]).stem
        fields["output"] = str(out_dir / f"{line:04d}_{stem}_{fields.get('guide_type', 'flow')}_guide.mp4")
    return Job(line, GuideRequest(**fields))


def parse_jobs(lines: Iterable[str], base: Path, out_dir: Optional[Path] = None, name: str = "jobs") -> list[Job]:
    """Every non-blank line as a :class:`Job`; two lines writing one output are refused."""
    jobs: list[Job] = []
    outputs: dict[str, int] = {}
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        job = parse_job(text, number, base, out_dir, f"{name} line {number}")
        output = str(Path(str(job.request.output)).resolve())
        if output in outputs:
            raise JobsFileError(f"{name} line {number}: output {output} is also line {outputs[output]}'s; give "
                                "each request its own output.")
        outputs[output] = number
        jobs.append(job)
    if not jobs:
        raise JobsFileError(f"{name} holds no request: write one JSON object per line.")
    return jobs


def read_jobs(path: Union[str, Path], out_dir: Union[str, Path, None] = None) -> list[Job]:
    """The jobs of a JSON Lines file (relative paths against its folder)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JobsFileError(f"Cannot read the jobs file {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    folder = Path(out_dir).expanduser().absolute() if out_dir is not None else None
    return parse_jobs(text.splitlines(), path.absolute().parent, folder, path.name)


def as_jobs(requests: Iterable[Union[GuideRequest, Job]]) -> list[Job]:
    """API requests as jobs numbered from 1 (jobs are kept as they are)."""
    return [item if isinstance(item, Job) else Job(number, item) for number, item in enumerate(requests, 1)]
