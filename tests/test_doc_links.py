"""Every relative link in README.md, DEVELOPERS.md and docs/*.md leads somewhere: the file exists and, for a
``#anchor`` into a markdown file, that file has a heading with that anchor (GitHub's rule: lower case, punctuation
dropped, spaces to hyphens). The README links its internals out to docs/ pages, so a moved or renamed section
would otherwise break links silently."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "DEVELOPERS.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked."""
    lines, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            lines.append((number, INLINE_CODE.sub("", line)))
    return lines


def slug(title: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces to hyphens."""
    title = re.sub(r"[*_`]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", title)
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a markdown file's headings (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group("title"))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, root: Path = REPO) -> list[str]:
    """Each relative link of ``path`` whose file or heading is missing, as ``file:line: target (why)``."""
    problems = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(line):
            target = match.group("target")
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            where = f"{path.relative_to(root)}:{number}: {target}"
            if not linked.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{where} (no heading with that anchor in {linked.name})")
    return problems


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_relative_links_resolve(path: Path) -> None:
    assert path.exists()
    assert broken_links(path) == []


def test_the_readme_links_its_internals_pages() -> None:
    """Every docs/ page is reachable from the README."""
    linked = {m.group("target").partition("#")[0] for _, line in _prose_lines((REPO / "README.md").read_text())
              for m in LINK.finditer(line)}
    assert {f"docs/{p.name}" for p in DOCS if p.parent.name == "docs"} <= linked


def test_the_checker_finds_a_broken_file_and_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Real footage: cuts, bursts\n\n## Python API\n\n## Python API\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#real-footage-cuts-bursts) [ok2](other.md#python-api-1) [self](#top)\n"
                    "# Top\n[gone](missing.md) [bad](other.md#motion-in-time) [web](https://example.com/x#y)\n"
                    "`[code](missing.md)`\n```\n[fenced](missing.md)\n```\n")
    assert broken_links(page, tmp_path) == ["page.md:3: missing.md (no such file)",
                                  "page.md:3: other.md#motion-in-time (no heading with that anchor in other.md)"]
