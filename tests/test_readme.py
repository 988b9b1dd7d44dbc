"""The README runs as written: every fenced ``bash`` and ``python`` block of README.md and of the ``docs/`` pages
it links, in a temporary folder that holds the sample video under the names the README uses.

A block preceded by ``<!-- readme-test: skip (reason) -->`` is set aside with that reason (synopses,
sketches, commands needing weights). Inside a bash block, steps that create a virtual environment or
``pip install`` (network) are left out and the rest runs with this interpreter's entry points
(``.venv/bin/X`` is this venv's ``X``); steps that start a server or the test suite are left out with
a reason. Every left-out step is listed in the test's output. One flow cache serves every block, so the
sample's flows are computed once."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
#: The README first, then the internals pages it links (their examples run too).
PAGES = (README, *sorted((REPO / "docs").glob("*.md")))
BIN = Path(sys.executable).parent
SKIP_MARK = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>.+)\)\s*-->")
FENCE = re.compile(r"^```(?P<lang>\w*)\s*$")
#: Videos the README's snippets name as "your video": the generated sample stands in for each.
INPUT_NAMES = ("dance.mp4", "walk.mp4", "jump.mp4", "IN.mp4", "in.mp4")

pytestmark = pytest.mark.slow


@dataclass
class Block:
    page: str
    line: int
    lang: str
    text: str
    skip: str = ""


def readme_blocks(page: Path = README) -> list[Block]:
    """A page's fenced bash / python blocks, with the reason of a skip marker just before one."""
    blocks: list[Block] = []
    name = str(page.relative_to(REPO))
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if not opened:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        previous = next((lines[k] for k in range(index - 1, -1, -1) if lines[k].strip()), "")
        marker = SKIP_MARK.search(previous)
        if opened.group("lang") in ("bash", "python"):
            blocks.append(Block(name, index + 1, opened.group("lang"), "\n".join(lines[index + 1:end]),
                                marker.group("reason") if marker else ""))
        index = end + 1
    return blocks


def _left_out(argv: list[str]) -> str:
    """Why a bash step does not run here ("" when it does)."""
    name = Path(argv[0]).name
    if argv[:3] == ["python3", "-m", "venv"]:
        return "creates a virtual environment (the test's own venv stands in)"
    if name in ("pip", "pip3") or "pip" in argv[1:3] and "install" in argv:
        return "pip install needs the network (the test's venv has the project installed)"
    if "pytest" in argv:
        return "runs the test suite (this test is part of it)"
    if name == "wan2gp-structure-video" and "app" in argv[1:]:
        return "starts the web app, which serves until stopped (tests/test_app_terminal.py starts it)"
    return ""


def _local(argv: list[str]) -> list[str]:
    """``.venv/bin/X`` and bare ``wan2gp-structure-video``: this venv's entry points."""
    head = argv[0]
    if head.startswith(".venv/bin/") or head == "wan2gp-structure-video":
        return [str(BIN / Path(head).name), *argv[1:]]
    if head in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return argv


def bash_steps(text: str) -> list[list[str]]:
    """The commands of a bash block: lines joined at ``\\``, comments dropped, split at ``&&``."""
    joined = re.sub(r"\\\n\s*", " ", text)
    steps: list[list[str]] = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in words + ["&&"]:
            if word == "&&":
                if current:
                    steps.append(current)
                current = []
            else:
                current.append(word)
    return steps


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """The sample video, written once with the CLI as the README says (``sample OUT.mp4``)."""
    path = tmp_path_factory.mktemp("readme-sample") / "sample.mp4"
    subprocess.run([str(BIN / "wan2gp-structure-video"), "sample", str(path)], check=True, timeout=300)
    return path


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme-home")


BLOCKS = [block for page in PAGES for block in readme_blocks(page)]


def test_the_readme_has_runnable_blocks() -> None:
    runnable = [b for b in BLOCKS if not b.skip and b.page == "README.md"]
    assert len([b for b in runnable if b.lang == "python"]) >= 2 and len([b for b in runnable if b.lang == "bash"]) >= 3
    assert all(b.skip.strip() for b in BLOCKS if b.skip)  # a skipped block always says why


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.page}:{b.line}-{b.lang}" for b in BLOCKS])
def test_readme_block_runs_as_written(block: Block, tmp_path, sample, shared_home, capsys) -> None:
    if block.skip:
        pytest.skip(f"marked not runnable: {block.skip}")
    for name in INPUT_NAMES:
        shutil.copy(sample, tmp_path / name)
    env = {**os.environ, "WAN2GP_STRUCTURE_VIDEO_HOME": str(shared_home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    if block.lang == "python":
        script = tmp_path / f"readme_{block.line}.py"
        script.write_text(block.text, encoding="utf-8")
        commands = [[sys.executable, str(script)]]
    else:
        commands = []
        for argv in bash_steps(block.text):
            reason = _left_out(argv)
            if reason:
                print(f"left out: {shlex.join(argv)}: {reason}")
            else:
                commands.append(_local(argv))
    if not commands:
        pytest.skip("every step needs the network or a server: " + "; ".join(
            _left_out(argv) for argv in bash_steps(block.text)))
    for argv in commands:
        proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{block.page}:{block.line}: {shlex.join(argv)}\n{proc.stdout}\n{proc.stderr}"
