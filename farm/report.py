"""What a farm job did: one outcome per extraction and per request, and the job's totals."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class ExtractionOutcome:
    """One key's extraction, as its actor reported it (``extracted``: the annotator ran for it)."""

    key: str
    line: int
    extracted: bool
    node: str = ""
    pid: int = 0
    device: str = ""
    batch_size: int = 0
    seconds: float = 0.0
    error: Optional[str] = None


@dataclass(frozen=True)
class RequestOutcome:
    """One request of the job: its guide, or why it failed."""

    line: int
    output: Optional[Path]
    error: Optional[str] = None
    summary: str = ""
    #: The key of the annotator rows it read (None for canny and raw).
    key: Optional[str] = None
    #: True when its render task ran an annotator itself (never, unless its entry vanished meanwhile).
    extracted_while_rendering: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class FarmReport:
    """The whole job: ``planned`` keys needed extracting, ``cached`` keys were found in the shared cache."""

    requests: list[RequestOutcome] = field(default_factory=list)
    extractions: list[ExtractionOutcome] = field(default_factory=list)
    planned: int = 0
    cached: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> list[RequestOutcome]:
        return sorted((r for r in self.requests if not r.ok), key=lambda r: r.line)

    @property
    def extracted(self) -> int:
        """Keys whose annotator ran in this job (actors' reports)."""
        return sum(1 for e in self.extractions if e.extracted)

    def summary(self) -> str:
        done = len(self.requests) - len(self.failed)
        return (f"Farm: {done} of {len(self.requests)} guides written; {self.planned} annotator "
                f"key{'' if self.planned == 1 else 's'} to extract, {self.extracted} extracted, {self.cached} already "
                f"in the shared cache; {self.seconds:.1f}s")
