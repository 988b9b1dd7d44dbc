"""DEVELOPERS.md's layout table matches the tree: every package folder has its row, every path a row
names exists, and each ``preprocessors/`` row names every module its folder holds."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {"tests", "bench", "docs", "build", "dist"}


def _rows() -> dict[str, str]:
    """First cell's paths → the row's text, from the table under "Layout and import graph"."""
    text = (ROOT / "DEVELOPERS.md").read_text()
    section = text.split("## Layout and import graph", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or not cells[1].strip().startswith("`"):
            continue
        for path in re.findall(r"`([^`]+)`", cells[1]):
            rows[path] = line
    return rows


ROWS = _rows()


def _package_folders() -> list[str]:
    found = []
    for init in ROOT.rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        if rel.parts and rel.parts[0] not in SKIP and not any(p.startswith(".") for p in rel.parts):
            found.append(rel.as_posix() + "/")
    return sorted(found)


def test_every_path_in_the_table_exists() -> None:
    assert len(ROWS) > 10
    missing = [path for path in ROWS if not (ROOT / path.rstrip("/")).exists()]
    assert missing == []


def test_every_package_folder_has_a_row() -> None:
    folders = _package_folders()
    assert "preprocessors/video/" in folders and "ui/host_bridge/" in folders
    def covered(folder: str) -> bool:
        parent = folder.rsplit("/", 2)[0] + "/"
        return (folder in ROWS
                or any(path.startswith(folder) and path != folder for path in ROWS)  # rows for each subfolder
                or (parent in ROWS and f"`{folder[len(parent):]}`" in ROWS[parent]))  # named in its parent's row

    assert [f for f in folders if not covered(f)] == []


def test_every_top_level_module_has_a_row() -> None:
    modules = sorted(p.name for p in ROOT.glob("*.py") if p.name != "__init__.py")
    assert "atomic_files.py" in modules
    assert [name for name in modules if name not in ROWS] == []


def test_each_preprocessors_row_names_every_module_of_its_folder() -> None:
    unnamed = []
    for folder in (ROOT / "preprocessors").iterdir():
        if not (folder / "__init__.py").exists():
            continue
        row = ROWS[f"preprocessors/{folder.name}/"]
        unnamed += [f"{folder.name}/{p.name}" for p in sorted(folder.glob("*.py"))
                    if p.stem != "__init__" and f"`{p.stem}`" not in row]
    assert unnamed == []
