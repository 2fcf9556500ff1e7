"""The house stays easy to change: cli.py is a parser and a dispatcher, every module fits in one
reading, and data walks one way (no module imports, at load time, one that imports it back)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "plugin" / "anthropic_compliance_input"


def modules() -> dict[str, Path]:
    return {str(p.relative_to(PACKAGE).with_suffix("")).replace("/", "."): p for p in PACKAGE.rglob("*.py")}


def test_cli_is_under_200_lines_and_no_module_is_over_350():
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert sizes["cli"] < 200, sizes["cli"]
    assert {name: n for name, n in sizes.items() if n > 350} == {}


def test_no_import_cycles_at_load_time():
    """Imports inside a function (a command's body, an optional feature) run late and are left out."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name.split(".")[:-1]  # "simulator.server" and "simulator.__init__" -> simulator
        graph[name] = set()
        for node in ast.parse(path.read_text()).body:  # module level only
            if isinstance(node, ast.ImportFrom) and node.level:
                parts = package[:len(package) - node.level + 1] + ([node.module] if node.module else [])
                names = [".".join(parts)] if node.module else [".".join([*parts, a.name]) for a in node.names]
                for target in names:  # a module, or a name from a package's __init__
                    graph[name].add(target if target in known else f"{target.rsplit('.', 1)[0]}.__init__"
                                    if "." in target else "__init__")
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(node)

    done: set[str] = set()
    for start in graph:
        visit(start, [start])
    assert graph["api"] >= {"answers", "config", "__init__"} and graph["simulator.server"] >= {"simulator.feed"}
    assert cycles == []
