"""What `pip install .` (not editable) ships: every package folder of the repository, and its data files."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOT_SHIPPED = {"tests", "bench", "build", "dist", "outputs", "test-artifacts"}


def shipped_part(path: Path) -> bool:
    """Whether a path under the repository belongs to the package (not tests, benches, builds, dot folders)."""
    top = path.relative_to(ROOT).parts[0]
    return top not in NOT_SHIPPED and not top.startswith(".") and not top.endswith(".egg-info")


def package_folders() -> set[str]:
    """Dotted names of the folders with an ``__init__.py`` in the repository (tests and benches aside)."""
    names = set()
    for init in ROOT.rglob("__init__.py"):
        parts = init.parent.relative_to(ROOT).parts
        if parts and not shipped_part(init):
            continue
        names.add(".".join(("wan2gp_structure_video",) + parts))
    return names


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed_for_setuptools() -> None:
    listed = set(setuptools_config()["packages"])
    found = package_folders()
    assert "wan2gp_structure_video.ui.host_bridge" in found
    assert found == listed, f"missing from pyproject.toml: {sorted(found - listed)}; stale: {sorted(listed - found)}"


def test_the_package_data_files_exist() -> None:
    for name in setuptools_config()["package-data"]["wan2gp_structure_video"]:
        assert (ROOT / name).is_file(), name


def test_a_built_wheel_holds_every_module(tmp_path) -> None:
    setuptools = pytest.importorskip("setuptools")
    if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.importorskip("wheel")  # older setuptools build wheels through the `wheel` package
    source = tmp_path / "src"  # a copy: setuptools writes build/ and *.egg-info/ into the folder it builds
    shutil.copytree(ROOT, source, ignore=lambda folder, names: [
        n for n in names if Path(folder) == ROOT and not shipped_part(ROOT / n)])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {"/".join(("wan2gp_structure_video",) + p.relative_to(ROOT).parts)
               for p in ROOT.rglob("*.py") if shipped_part(p)}
    assert sources - shipped == set(), "not in the wheel"
    assert {"wan2gp_structure_video/plugin_info.json", "wan2gp_structure_video/requirements.txt"} <= shipped
