"""Dependencies inside ``sync`` run one way (issue 11: one-way imports).

Read from the source (every ``import``, module level or inside a function):
no import cycle among the app's modules; only entry points (tasks, views,
admin, commands) import ``sync.tasks``; task and queue names are spelled
only in ``sync/names.py``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYNC = ROOT / "sync"
# Entry points: they may import anything of the app; nothing imports them but Django/Celery.
ENTRY_POINTS = ("sync.tasks", "sync.api", "sync.admin", "sync.management", "sync.endpoint",
                "sync.webhook_wsgi", "sync.urls", "sync.schema_views", "sync.health", "sync.apps",
                "sync.metrics_view", "sync.status_views")


def _modules() -> dict[str, Path]:
    out = {}
    for path in SYNC.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The app modules ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in known:
                    found.add(full)
                elif base in known:
                    found.add(base)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: imports_of(name, path, set(modules)) for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_detector_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_in_function_imports_are_seen(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from sync import runs\n    from .reconcile import x\n")
    assert imports_of("sync.mod", path, {"sync.runs", "sync.reconcile"}) == {
        "sync.runs", "sync.reconcile"}


def test_no_import_cycles_in_the_app():
    assert cycles(graph()) == []


@pytest.mark.parametrize("lower", ["sync.ingest", "sync.runs", "sync.split", "sync.reconcile",
                                   "sync.apply", "sync.inbox", "sync.sweeper", "sync.queueing",
                                   "sync.retention", "sync.models", "sync.status", "sync.coverage",
                                   "sync.rollups", "sync.charts"])
def test_services_never_import_entry_points(lower):
    edges = graph()
    below = {m for m in edges if m == lower or m.startswith(lower + ".")}
    bad = {(m, dep) for m in below for dep in edges[m]
           if any(dep == e or dep.startswith(e + ".") for e in ENTRY_POINTS)}
    assert bad == set()


NAME = re.compile(r"sync\.tasks\.\w+|cloudsync\.(events|sync)")


def spells_a_name(path: Path) -> bool:
    """A string literal that is a task or queue name (comments and prose do not count)."""
    return any(isinstance(node, ast.Constant) and isinstance(node.value, str)
               and NAME.fullmatch(node.value) for node in ast.walk(ast.parse(path.read_text())))


def test_the_name_detector_sees_literals_only(tmp_path):
    path = tmp_path / "m.py"
    path.write_text('# "cloudsync.events"\nQ = "cloudsync.sync"\n')
    assert spells_a_name(path)
    path.write_text('# "cloudsync.events"\n"""see sync.tasks.ingest"""\n')
    assert not spells_a_name(path)


def test_task_and_queue_names_are_spelled_once():
    spelled = {
        str(path.relative_to(ROOT))
        for path in [*SYNC.rglob("*.py"), *(ROOT / "project").rglob("*.py")]
        if "migrations" not in path.parts and spells_a_name(path)
    }
    assert spelled == {"sync/names.py"}
