"""The tree's layers: which part of labspool may import which (README, "The packages").

Every import of a labspool module in ``spooler/`` and ``result/`` is read from the source
(also those inside functions) and checked against :data:`MAY_IMPORT`; the BLACS plugin is
copied into BLACS and imports nothing of labspool. A test fails when a layer imports upward,
when the modules import each other in a cycle, when SQL is written outside the store, or when
the analysis workers would import the job store.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# part -> the parts it may import (itself always)
MAY_IMPORT: dict[str, set[str]] = {
    "spooler": set(),  # the package's own __init__: the version
    "spooler.core": set(),
    "spooler.lab": {"spooler.core"},
    "spooler.virtual": {"spooler.core", "spooler.lab"},
    "spooler.pipeline": {"spooler.core", "spooler.lab"},
    "spooler.gateway": {"spooler.core"},
    "spooler.cli": {
        "spooler",
        "spooler.core",
        "spooler.lab",
        "spooler.virtual",
        "spooler.pipeline",
        "spooler.gateway",
    },
    "result": {"spooler.core"},
}
PLUGIN = "spooler.lab.blacs_plugin"
# what the analysis workers import (a process each, or a Dask worker): no job store there
WORKER_SIDE = ("result.pool", "result.task")
SQL = re.compile(r"\.execute(many|script)?\(|\b(SELECT|INSERT|UPDATE|DELETE) .*\b(FROM|INTO|SET)\b")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {}
    for top in ("spooler", "result"):
        for path in sorted((ROOT / top).rglob("*.py")):
            found[module_name(path)] = path
    return found


def type_only(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:`` (never run)."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(n for stmt in node.body for n in ast.walk(stmt))
    return found


def imports(
    name: str, path: Path, known: set[str], *, run_only: bool = False
) -> Iterator[tuple[str, int]]:
    """The labspool modules *name* imports, with the line of each import (*run_only*: not
    those for type checking only)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = type_only(tree) if run_only else set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target, node.lineno


def part_of(name: str) -> str:
    return max((p for p in MAY_IMPORT if name == p or name.startswith(p + ".")), key=len)


def graph(*, run_only: bool = False) -> dict[str, dict[str, int]]:
    found = modules()
    known = set(found)
    return {
        name: dict(imports(name, path, known, run_only=run_only))
        for name, path in found.items()
        if not name.startswith(PLUGIN)
    }


def upward(edges: dict[str, dict[str, int]]) -> list[str]:
    """The imports that break :data:`MAY_IMPORT` (``module:line -> module``)."""
    wrong = []
    for name, targets in sorted(edges.items()):
        part = part_of(name)
        for target, line in sorted(targets.items()):
            allowed = {part} | MAY_IMPORT[part]
            if part_of(target) not in allowed or target.startswith(PLUGIN):
                wrong.append(f"{name}:{line} -> {target}")
    return wrong


def cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import cycles among modules (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def reachable(edges: dict[str, dict[str, int]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(edges.get(node, {}))
    return seen


@pytest.fixture(scope="module")
def edges() -> dict[str, dict[str, int]]:
    return graph()


def test_no_part_imports_a_part_above_it(edges: dict[str, dict[str, int]]) -> None:
    assert upward(edges) == []


def test_the_check_finds_an_import_upward() -> None:
    assert upward({"spooler.core.store": {"spooler.pipeline.daemon": 3}}) == [
        "spooler.core.store:3 -> spooler.pipeline.daemon"
    ]
    assert upward({"result.daemon": {"spooler.lab.blacs": 7}}) != []
    assert upward({"spooler.gateway.app": {"spooler.pipeline.validation": 1}}) != []
    # the old names (spooler.lab.physics, ...) are found by spooler.lab.oldnames, no import
    assert upward({"spooler.lab.physics": {"spooler.virtual.physics": 1}}) != []
    assert upward({"spooler.lab.blacs": {"spooler.virtual.physics": 1}}) != []


def test_no_modules_import_each_other_in_a_cycle(edges: dict[str, dict[str, int]]) -> None:
    assert cycles(edges) == []
    assert cycles({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == [["a", "b", "c"]]


def test_the_blacs_plugin_imports_nothing_of_labspool() -> None:
    found = modules()
    known = set(found)
    for name, path in found.items():
        if name.startswith(PLUGIN):
            outside = [t for t, _ in imports(name, path, known) if not t.startswith(PLUGIN)]
            assert outside == [], name


def test_no_sql_is_written_outside_the_store() -> None:
    store = ROOT / "spooler" / "core" / "store"
    offenders = []
    for path in modules().values():
        if path.is_relative_to(store):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SQL.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_analysis_workers_do_not_import_the_job_store() -> None:
    edges = graph(run_only=True)
    for worker in WORKER_SIDE:
        assert not any(m.startswith("spooler.core.store") for m in reachable(edges, worker))
