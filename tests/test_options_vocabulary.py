"""One home for the option vocabulary: the CLI's choices and defaults, the tab's choices and
``GuideRequest``'s accepted values and defaults all come from ``options``, and no constant name means two
things in the package."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import wan2gp_structure_video
from wan2gp_structure_video import options
from wan2gp_structure_video.cli import build_parser
from wan2gp_structure_video.errors import OptionError
from wan2gp_structure_video.pipeline.request import GuideRequest

ROOT = Path(wan2gp_structure_video.__file__).parent


def _guide_actions() -> dict[str, argparse.Action]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {action.dest: action for action in commands.choices["guide"]._actions}


def test_every_cli_choice_list_is_the_vocabulary() -> None:
    actions = _guide_actions()
    with_choices = {dest: tuple(action.choices) for dest, action in actions.items() if action.choices}
    assert with_choices == options.CHOICES
    for dest, choices in with_choices.items():
        assert actions[dest].choices is options.CHOICES[dest], dest  # the same object, not a copy


def test_cli_defaults_are_the_requests() -> None:
    actions = _guide_actions()
    fields = {f.name: f.default for f in dataclasses.fields(GuideRequest)}
    for name, default in options.DEFAULTS.items():
        assert fields[name] == default, name
        assert actions[name].default == default, name
    assert actions["resolution"].default == options.DEFAULT_RESOLUTION
    assert fields["resolution"] == options.DEFAULT_SIZE
    assert actions["batch_size"].default == options.AUTO_BATCH_SIZE


def test_guide_request_accepts_exactly_the_vocabulary() -> None:
    for field, choices in options.CHOICES.items():
        for value in choices:
            GuideRequest("x.mp4", **{field: value}).validated()
        with pytest.raises(OptionError, match="use one of " + ", ".join(choices)):
            GuideRequest("x.mp4", **{field: "nonsense"}).validated()
    for device in (*options.DEVICES, "cuda:1"):
        GuideRequest("x.mp4", device=device).validated()


def test_tab_choices_are_the_vocabulary() -> None:
    from wan2gp_structure_video.ui import extract_panel, tab

    for pairs, values in ((tab.GUIDE_TYPE_CHOICES, options.GUIDE_TYPES), (tab.TREATMENT_CHOICES, options.TREATMENTS),
                          (tab.FIT_CHOICES, options.FIT_MODES), (tab.BACKEND_CHOICES, options.BACKENDS)):
        assert tuple(value for _, value in pairs) == values
    # The controls Extract reads are exactly extract()'s parameters, in order (one spelling to wire).
    parameters = list(inspect.signature(extract_panel.extract).parameters)
    assert tuple(parameters[2:2 + len(extract_panel.EXTRACT_CONTROLS)]) == extract_panel.EXTRACT_CONTROLS
    assert parameters[2 + len(extract_panel.EXTRACT_CONTROLS):] == ["progress", "request"]
    assert tab.EXTRACT_INPUTS == ("source", *extract_panel.EXTRACT_CONTROLS)


def test_tab_components_offer_the_vocabulary() -> None:
    pytest.importorskip("gradio")
    from wan2gp_structure_video.ui.standalone import build_app

    _, plugin = build_app()
    handles = plugin.handles
    for name, field in (("guide_type", "guide_type"), ("treatment", "treatment"), ("fit", "fit"),
                        ("backend", "backend"), ("range_unit", "range_unit"), ("cuts", "cuts")):
        component = handles[name]
        assert tuple(value for _, value in component.choices) == options.CHOICES[field], name
        assert component.value == options.DEFAULTS[field], name


def test_automatic_batch_size_rule() -> None:
    assert options.automatic_batch_size(0) is None and options.automatic_batch_size(3) == 3
    with pytest.raises(OptionError, match=r"^Batch size -1: give a positive number of frame pairs, or 0 for "):
        options.automatic_batch_size(-1, "Batch size")


def test_options_imports_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "options.py").read_text())
    relative = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    absolute = [alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names]
    absolute += [node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and not node.level]
    assert relative == ["errors"]  # the leaf error types, themselves standard library only
    assert all(name in sys.stdlib_module_names or name == "__future__" for name in absolute), absolute
    code = ("import sys; import wan2gp_structure_video.options; "
            "print(sorted(m for m in ('numpy', 'cv2', 'av', 'torch', 'gradio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _module_constants(path: Path) -> dict[str, object]:
    """Public upper-case names bound at module level to a literal value."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign):
            pairs = []
            for target in node.targets:
                if isinstance(target, ast.Name):
                    pairs.append((target, node.value))
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) \
                        and len(target.elts) == len(node.value.elts):
                    pairs.extend(zip(target.elts, node.value.elts))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs = [(node.target, node.value)]
        else:
            continue
        for target, value in pairs:
            if isinstance(target, ast.Name) and target.id.isupper() and not target.id.startswith("_"):
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    continue
    return found


def test_no_constant_name_has_two_meanings() -> None:
    """A name such as MIN_SIDE bound to 64 in one module and 128 in another reads as one limit and is two."""
    seen: dict[str, list[tuple[str, object]]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in ("tests", "bench", "docs") or any(part.startswith(".") for part in parts):
            continue
        for name, value in _module_constants(path).items():
            seen.setdefault(name, []).append(("/".join(parts), value))
    clashes = {name: where for name, where in seen.items() if len({repr(value) for _, value in where}) > 1}
    assert clashes == {}
    assert "MIN_SIDE" not in seen and "MAX_FPS" not in seen  # renamed: GUIDE_/SOURCE_/RAFT_ ...
    assert len(seen) > 100  # the scan really read the package


def test_the_scan_finds_a_clash(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("MIN_SIDE = 64\nX, Y = 1, 2\n")
    (tmp_path / "b.py").write_text("MIN_SIDE: int = 128\n")
    assert _module_constants(tmp_path / "a.py") == {"MIN_SIDE": 64, "X": 1, "Y": 2}
    assert _module_constants(tmp_path / "b.py") == {"MIN_SIDE": 128}


def test_one_device_cache_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    """``memory.empty_device_cache`` is the only caller of ``empty_cache``; on a CPU device it leaves CUDA alone."""
    from types import SimpleNamespace

    from wan2gp_structure_video.memory import empty_device_cache, monitor

    calls: list[str] = []
    cuda = SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True,
                           empty_cache=lambda: calls.append("empty"), ipc_collect=lambda: calls.append("ipc"))
    monkeypatch.setattr(monitor, "loaded_torch", lambda: SimpleNamespace(cuda=cuda))
    empty_device_cache(device="cpu")
    assert calls == []
    empty_device_cache(device="cuda:0")
    assert calls == ["empty", "ipc"]
    callers = [path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*.py")
               if path.relative_to(ROOT).parts[0] not in ("tests", "bench", ".venv")
               and ".empty_cache(" in path.read_text()]
    assert callers == ["memory/monitor.py"]


def test_help_texts_state_the_vocabularys_defaults() -> None:
    """``--help`` writes some defaults out in words ("(default 81)"): they must be the values in force."""
    import re

    checked = 0
    for dest, action in _guide_actions().items():
        said = re.search(r"\(default ([^):,]+)\)", action.help or "")
        if said is None or dest not in options.DEFAULTS:
            continue
        default = options.DEFAULTS[dest]
        assert said.group(1) == (f"{default:g}" if isinstance(default, float) else str(default)), dest
        checked += 1
    assert checked >= 10
