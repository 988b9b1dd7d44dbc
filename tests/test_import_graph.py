"""The package's import graph points one way: built from the source (every relative import, function-level
ones included), not from what happens to be loaded.

Layers, bottom up: leaf modules → preprocessors/ → memory/ → pipeline/ → ui/ → plugin/cli (DEVELOPERS.md,
"Layout and import graph"). A cycle between two modules of one layer is a layering fault too: the two
cannot be understood, tested or moved apart (the tab's panels once imported each other).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "wan2gp_structure_video"
SKIP = {"tests", "bench", "docs", "build", "dist"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        if rel[0] in SKIP or rel[0].startswith(".") or any(p.startswith(".") for p in rel):
            continue
        found[_module_name(path)] = path
    return found


MODULES = _modules()


def _resolve(name: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """The package modules one ``from ... import ...`` statement loads."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    base = package.split(".")
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    target = ".".join(base + ([node.module] if node.module else []))
    found = [target] if target in MODULES else []
    found += [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
    return found


def _imports(name: str, path: Path) -> tuple[set[str], set[str]]:
    """(package modules imported, top-level names of absolute imports), anywhere in the module."""
    inside, outside = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            inside.update(_resolve(name, path, node))
        elif isinstance(node, ast.ImportFrom) and node.module:
            outside.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            outside.update(alias.name.split(".")[0] for alias in node.names)
    return inside, outside


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _find_cycle(nodes: set[str], edges: dict[str, set[str]]) -> list[str]:
    """One cycle among ``nodes`` (as a path that returns to its start), or []."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ()) & nodes):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(nodes):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_scan_sees_the_package_and_its_function_level_imports():
    assert len(MODULES) > 80
    inside, _ = GRAPH[f"{PACKAGE}.ui.extract_panel"]
    # imported inside a function only: a scan of module-level statements would miss it
    assert f"{PACKAGE}.pipeline.build" in inside
    # ``from . import cache_panel`` names a module, not a function of the package
    assert f"{PACKAGE}.ui.cache_panel" in inside


FORBIDDEN = {
    # layer: (package layers it must not import, outside packages it must not import)
    "preprocessors": ({"memory", "pipeline", "ui", "farm", "plugin", "cli", "cli_export", "cli_shared"},
                      {"gradio", "wgp", "shared", "mmgp", "ray"}),
    "memory": ({"preprocessors", "pipeline", "ui", "farm", "plugin", "cli", "cli_export", "cli_shared"},
               {"gradio", "wgp", "shared", "ray"}),
    "pipeline": ({"ui", "farm", "plugin", "cli", "cli_export", "cli_shared"}, {"gradio", "wgp", "shared", "ray"}),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_one_way(layer):
    banned_layers, banned_outside = FORBIDDEN[layer]
    wrong = []
    for name, (inside, outside) in sorted(GRAPH.items()):
        if _layer(name) != layer:
            continue
        wrong += [f"{name} imports {dep}" for dep in sorted(inside) if _layer(dep) in banned_layers]
        wrong += [f"{name} imports {dep}" for dep in sorted(outside & banned_outside)]
    assert wrong == []


def test_leaf_modules_import_no_layer():
    layers = {"preprocessors", "memory", "pipeline", "ui", "farm"}
    leaves = [n for n, p in MODULES.items() if p.parent == ROOT and p.stem not in
              {"__init__", "plugin", "cli", "cli_export", "cli_shared"}]
    assert len(leaves) >= 6
    wrong = [f"{name} imports {dep}" for name in leaves for dep in sorted(GRAPH[name][0]) if _layer(dep) in layers]
    assert wrong == []


def test_preprocessors_subpackages_point_one_way():
    """The jobs inside preprocessors/ (video, timeline, cache, weights, annotators, render) form no cycle."""
    edges: dict[str, set[str]] = {}
    for name, (inside, _) in GRAPH.items():
        parts = name.split(".")
        if len(parts) > 3 and parts[1] == "preprocessors":
            edges.setdefault(parts[2], set()).update(
                dep.split(".")[2] for dep in inside
                if dep.split(".")[1:2] == ["preprocessors"] and len(dep.split(".")) > 3 and dep.split(".")[2] != parts[2])
    assert len(edges) >= 5
    assert _find_cycle(set(edges), edges) == []


@pytest.mark.parametrize("layer", ["ui", "pipeline", "memory", "preprocessors", "farm"])
def test_no_cycle_between_modules_of_a_layer(layer):
    nodes = {n for n in MODULES if _layer(n) == layer}
    edges = {n: GRAPH[n][0] for n in nodes}
    # a package's __init__ re-exporting its own modules is not a cycle of the code's design
    edges = {n: {d for d in deps if not MODULES[d].name == "__init__.py"} for n, deps in edges.items()}
    assert _find_cycle(nodes, edges) == []


def test_the_finder_finds_a_cycle():
    """The check above can fail: the old ``cache_panel`` ↔ ``extract_panel`` pair is one."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(set(edges), edges) == ["a", "b", "c", "a"]
    assert _find_cycle(set(edges), {"a": {"b"}, "b": set(), "c": {"a"}, "d": {"a"}}) == []
