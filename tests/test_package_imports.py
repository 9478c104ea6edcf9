"""The package's import graph: no module imports itself back through others, and the library never imports the
command line (`hf_crossenc.cli`, `hf_crossenc.commands`); commands call the library, not the other way round.

The graph is read from the source with `ast` (nothing is imported): every `import` and `from ... import` of a
module of `hf_crossenc`, relative or absolute, at the top or inside a function. Importing the package itself
(`from . import __version__`) is not an edge: `hf_crossenc/__init__.py` re-exports the library, so every module
would otherwise sit on a circle through it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "hf_crossenc"
PACKAGE = PACKAGE_DIR.name
COMMAND_LINE = ("hf_crossenc.cli", "hf_crossenc.commands")


def is_command_line(module: str) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in COMMAND_LINE)


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is named by its __init__.py)."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _own_module(name: str, known: dict[str, Path]) -> str | None:
    """The package module `name` refers to: itself, or the module holding it (`hf_crossenc.data.read_table` -> `hf_crossenc.data`)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (the package itself left out, see the module docstring)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        base = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = base.split(".")
                    root = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    root = node.module or ""
                names = [root, *(f"{root}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                if name == PACKAGE or name.startswith(f"{PACKAGE}."):
                    target = _own_module(name, known)
                    if target not in (None, module, PACKAGE):
                        targets.add(target)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_the_graph_reader_sees_relative_absolute_and_function_level_imports():
    graph = import_graph()
    assert "hf_crossenc.mining" in graph["hf_crossenc.commands.mine"]  # from ..mining import ... (top level)
    assert "hf_crossenc.modeling" in graph["hf_crossenc.commands.mine"]  # from ..modeling import BUNDLED_MODEL (in a function)
    assert set(graph["hf_crossenc.cli"]) >= {"hf_crossenc.commands.evaluate", "hf_crossenc.commands.common", "hf_crossenc.logs"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_library_never_imports_the_command_line():
    offenders = {
        module: sorted(t for t in targets if is_command_line(t))
        for module, targets in import_graph().items()
        if not is_command_line(module)
    }
    assert {module: targets for module, targets in offenders.items() if targets} == {}
