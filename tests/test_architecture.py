"""The layering of docs/architecture (command lines -> config -> engines -> tasks -> shared -> units),
checked on the source: every ``import`` in ``src/nalu_suite``, function-local ones included."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nalu_suite"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``module -> the nalu_suite modules it imports`` (a name imported from a package counts as the
    submodule where one of that name exists)."""
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}".strip(".")
                targets |= {f"{base}.{alias.name}" for alias in node.names} | {base}
        resolved = set()
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                resolved.add(target)
        graph[name] = resolved
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_helper_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_anywhere_in_the_package():
    assert find_cycle(import_graph()) is None


def test_nothing_imports_a_command_line_module():
    importers = {
        (name, dep)
        for name, deps in import_graph().items()
        for dep in deps
        if dep.startswith("nalu_suite.cli") and not name.startswith("nalu_suite.cli")
    }
    assert not importers


def test_engines_and_tasks_do_not_import_the_train_entry():
    graph = import_graph()
    assert {name for name, deps in graph.items() if "nalu_suite.train" in deps} <= {"nalu_suite.cli.train"}


def test_units_and_encoders_import_no_task_engine_or_lightning():
    allowed = ("nalu_suite.units", "nalu_suite.encoders", "nalu_suite.errors")
    for path in [*(SRC / "units").rglob("*.py"), *(SRC / "encoders").rglob("*.py")]:
        source = path.read_text()
        assert "lightning" not in source.replace("Lightning", ""), path
        deps = import_graph()[module_name(path)]
        assert all(dep.startswith(allowed) for dep in deps), (path, deps)


def test_the_config_imports_no_task():
    graph = import_graph()
    for name in ("nalu_suite.config", "nalu_suite.recipes"):
        assert not any(dep.startswith("nalu_suite.tasks") for dep in graph[name]), name
