"""The tree shows its layers, and the imports keep to them.

``LAYERS`` is the table, top to bottom. A package (or top-level module) of
raft_trio may import only from layers below its own: never upwards, never
sideways, so no two packages import each other in a circle. Every import
counts, also one inside a function or under ``TYPE_CHECKING``. No package
imports another's private (``_``) module. The monitor stands beside the
stack: it talks to the nodes over HTTP, and from raft_trio it takes only
the public tools in ``MONITOR_USES``. The README's "Layout" section draws
the same table (checked below)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = (ROOT, ROOT / "monitor")
PACKAGES = ("raft_trio", "raft_monitor")

#: Top to bottom: a unit imports only units of the rows below its own.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("raft_monitor",),
    ("cli",),
    ("server", "testing"),
    ("http", "discovery"),
    ("node",),
    ("storage", "peer", "asgi", "client", "auth"),
    ("core", "kv", "security", "broadcast", "process_group", "schema", "wakeups"),
)
#: All the monitor takes from raft_trio (it reaches the nodes over HTTP,
#: through the public client, and reads their answers as the schema says).
MONITOR_USES = frozenset({"broadcast", "asgi", "client", "schema"})

Edge = tuple[str, str, str, int]  # (importer unit, imported module, file, line)


def module_name(path: Path) -> str:
    for root in SOURCE_ROOTS:
        relative = path.relative_to(root) if path.is_relative_to(root) else None
        if relative is not None and relative.parts[0] in PACKAGES:
            parts = list(relative.with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def source_files() -> list[Path]:
    return sorted([*(ROOT / "raft_trio").rglob("*.py"), *(ROOT / "monitor" / "raft_monitor").rglob("*.py")])


def unit_of(module: str) -> str | None:
    """``raft_trio.node.runtime`` -> ``node``; ``raft_monitor.x`` ->
    ``raft_monitor``; None outside the project (or raft_trio itself)."""
    parts = module.split(".")
    if parts[0] == "raft_monitor":
        return "raft_monitor"
    if parts[0] == "raft_trio" and len(parts) > 1:
        return parts[1]
    return None


def imported_modules(path: Path) -> Iterable[tuple[str, int]]:
    """Every module ``path`` imports, relative imports resolved; for
    ``from X import Y`` both X and X.Y (Y may be a module)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:
                yield f"{target}.{alias.name}", node.lineno


def project_edges() -> list[Edge]:
    edges: list[Edge] = []
    for path in source_files():
        importer = unit_of(module_name(path))
        if importer is None:
            continue  # raft_trio/__init__.py (see test_the_root_package_imports_nothing)
        for target, line in imported_modules(path):
            if unit_of(target) not in (None, importer):
                edges.append((importer, target, str(path.relative_to(ROOT)), line))
    return edges


def layer_index(layers: tuple[tuple[str, ...], ...]) -> dict[str, int]:
    """Unit -> height (0 at the bottom)."""
    return {unit: len(layers) - 1 - row for row, units in enumerate(layers) for unit in units}


def wrong_way_imports(edges: Iterable[Edge], layers: tuple[tuple[str, ...], ...]) -> list[str]:
    height = layer_index(layers)
    problems = []
    for importer, target, where, line in edges:
        imported = unit_of(target)
        assert imported is not None
        if height[imported] >= height[importer]:
            way = "sideways" if height[imported] == height[importer] else "upwards"
            problems.append(f"{where}:{line}: {importer} imports {target} ({way})")
    return problems


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path (first node repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == "open":
                return [*stack[stack.index(successor) :], successor]
            if successor not in state and (cycle := visit(successor)) is not None:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def unit_graph(edges: Iterable[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for importer, target, _, _ in edges:
        imported = unit_of(target)
        assert imported is not None
        graph.setdefault(importer, set()).add(imported)
    return graph


def private_reaches(edges: Iterable[Edge]) -> list[str]:
    """Imports of another unit's private module (``raft_trio.node._pending``)."""
    problems = []
    for importer, target, where, line in edges:
        inside = target.split(".")[1 if target.startswith("raft_monitor") else 2 :]
        if any(part.startswith("_") for part in inside):
            problems.append(f"{where}:{line}: {importer} imports the private {target}")
    return problems


# -- the project ------------------------------------------------------------------


def test_every_package_has_its_place_in_the_table() -> None:
    units = {unit_of(module_name(path)) for path in source_files()} - {None}
    placed = {unit for row in LAYERS for unit in row}
    assert units == placed, f"not in LAYERS: {units - placed}; gone: {placed - units}"


def test_the_root_package_imports_nothing_of_the_project() -> None:
    """Else importing any one layer (``raft_trio.core``) would load them all."""
    imported = [target for target, _ in imported_modules(ROOT / "raft_trio" / "__init__.py")]
    assert [t for t in imported if t.split(".")[0] in PACKAGES] == []


def test_no_package_imports_upwards_or_sideways() -> None:
    assert wrong_way_imports(project_edges(), LAYERS) == []


def test_no_packages_import_each_other_in_a_circle() -> None:
    assert find_cycle(unit_graph(project_edges())) is None


def test_no_package_imports_the_private_module_of_another() -> None:
    assert private_reaches(project_edges()) == []


def test_the_monitor_takes_only_public_tools_from_raft_trio() -> None:
    used = {unit_of(target) for importer, target, _, _ in project_edges() if importer == "raft_monitor"}
    assert used <= MONITOR_USES, f"the monitor imports {sorted(map(str, used - MONITOR_USES))} of raft_trio"


def test_the_readme_draws_the_same_layers() -> None:
    """README.md's layout diagram: one row per layer, top to bottom, the
    units left of a ``│``."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Layout") :]
    rows = re.findall(r"^([\w./, ]+?)\s*│", section, re.MULTILINE)
    names = [[name.strip().rstrip("/").removesuffix(".py") for name in row.split(",")] for row in rows]
    drawn = tuple(
        tuple(name if name in PACKAGES else unit_of(f"raft_trio.{name}") or name for name in row)
        for row in names
    )
    assert drawn == LAYERS


# -- the checks themselves can fail ---------------------------------------------------


def test_the_checks_catch_an_upward_import_a_cycle_and_a_private_reach() -> None:
    layers = (("http",), ("node",), ("core",))
    edges: list[Edge] = [
        ("node", "raft_trio.http.app", "node.py", 1),
        ("http", "raft_trio.node._pending", "app.py", 2),
        ("core", "raft_trio.core2", "x.py", 3),
    ]
    assert wrong_way_imports(edges[:2], layers) == ["node.py:1: node imports raft_trio.http.app (upwards)"]
    assert find_cycle(unit_graph(edges[:2])) == ["http", "node", "http"]
    assert private_reaches(edges) == ["app.py:2: http imports the private raft_trio.node._pending"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize(
    ("path", "module"),
    [
        ("raft_trio/discovery/_join.py", "raft_trio.discovery._join"),
        ("raft_trio/cli/__init__.py", "raft_trio.cli"),
        ("monitor/raft_monitor/_run.py", "raft_monitor._run"),
    ],
)
def test_file_paths_name_their_modules(path: str, module: str) -> None:
    assert module_name(ROOT / path) == module
