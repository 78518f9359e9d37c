"""The shape of the code, checked: no import cycles among Corral's modules, and the processes
meet only through ``services`` (``gateway``, ``registry`` and ``runner`` never import one
another; ``services`` imports none of them).

The graph is read from the source with ``ast``, so every import counts: module level, inside a
function (a deferred import that hides a cycle is still a cycle) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "registry", "runner", "services")
PROCESSES = ("gateway", "registry", "runner")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_modules() -> dict[str, Path]:
    return {module_name(path): path
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported_names(path: Path, module: str, modules: set[str]) -> set[str]:
    """Every module ``path`` imports: ``from X import y`` is module ``X.y`` when there is one,
    else ``X`` (a package's ``__init__`` that merely runs first is not an edge, as in grimp)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                names.add(submodule if submodule in modules else base)
    return names


def import_graph() -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports."""
    modules = first_party_modules()
    return {module: {name for name in imported_names(path, module, set(modules))
                     if name in modules and name != module}
            for module, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def top(module: str) -> str:
    return module.partition(".")[0]


def test_the_graph_sees_the_packages():
    graph = import_graph()
    assert "runner.server" in graph and "runner.engine" in graph["runner.server"]
    assert "services.settings" in graph["gateway.app"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_processes_meet_only_through_services():
    crossings = sorted(f"{module} -> {target}"
                       for module, targets in import_graph().items()
                       for target in targets
                       if top(target) != top(module) and top(target) in PROCESSES)
    assert crossings == []


def test_no_test_module_imports_another():
    """Shared test helpers live in helper modules (``fakes.py``, ``transfer_helpers.py``, ...):
    importing from a test module runs its module-level code twice and hides the helper."""
    tests = ROOT / "tests"
    found = sorted(f"{path.relative_to(ROOT)} -> {name}"
                   for path in tests.rglob("test_*.py")
                   for name in imported_names(path, module_name(path), set())
                   if name.startswith("tests.") and name.rpartition(".")[2].startswith("test_"))
    assert found == []
