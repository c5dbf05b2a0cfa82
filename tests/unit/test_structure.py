"""The shape of the package, held by tests: no import cycle, pytest only in the plugin, one error family."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from collections import Counter
from pathlib import Path

import pytest

import pytest_stateful
from pytest_stateful.errors import StatefulError

PACKAGE = Path(pytest_stateful.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of the package this one imports, at module level or inside functions."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a.b import c` depends on a.b.c when c is a module, else on a.b.
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in out if m in MODULES and m != name}


def _external(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_package_has_no_import_cycle() -> None:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_detector_sees_a_function_level_import(tmp_path: Path) -> None:
    # The detector must see imports inside functions, the kind that hid a cycle before.
    source = "def f():\n    from pytest_stateful.plugin import run\n"
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert "pytest_stateful.plugin.run" in _imports("pytest_stateful.checks.probe", path)


def test_only_the_plugin_imports_pytest() -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if "pytest" in _external(path)
        and not (name == "pytest_stateful.plugin" or name.startswith("pytest_stateful.plugin."))
    ]
    assert not offenders, f"library modules importing pytest: {offenders}"


def _all_exception_classes() -> list[type[BaseException]]:
    classes = []
    for info in pkgutil.walk_packages(pytest_stateful.__path__, "pytest_stateful."):
        if info.name.endswith(".__main__"):
            continue  # runs a command on import
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                classes.append(obj)
    return classes


def test_every_exception_class_of_the_package_derives_from_stateful_error() -> None:
    classes = _all_exception_classes()
    assert len(classes) >= 20
    strays = [c.__qualname__ for c in classes if not issubclass(c, StatefulError)]
    assert not strays, f"exception classes outside the StatefulError family: {strays}"


def test_the_package_raises_no_builtin_exception() -> None:
    # Errors only: KeyboardInterrupt (SIGTERM handled like Ctrl-C) is control flow, not an error.
    builtin_errors = {
        n
        for n in dir(builtins)
        if isinstance(getattr(builtins, n), type) and issubclass(getattr(builtins, n), Exception)
    }
    raised = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            call = node.exc if isinstance(node, ast.Raise) else None
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in builtin_errors:
                raised.append(f"{name}:{node.lineno} raises {call.func.id}")
    assert not raised, raised


@pytest.mark.parametrize(
    ("status", "expected"),
    [(404, "NotFound"), (409, "Conflict"), (403, "Forbidden"), (410, "Gone"), (503, "ServerError"), (0, "ServerError")],
)
def test_api_failures_map_to_typed_errors(status: int, expected: str) -> None:
    from kubernetes.client import ApiException

    from pytest_stateful.errors import api_error

    exc = ApiException(status=status, reason="Reason")
    exc.body = '{"kind":"Status","message":"pods \\"web-7\\" not found","reason":"NotFound"}'
    mapped = api_error(exc, "delete pod web-7")
    assert type(mapped).__name__ == expected
    assert isinstance(mapped, StatefulError)
    assert mapped.message.startswith("delete pod web-7: ")
    if status:
        assert mapped.message == 'delete pod web-7: pods "web-7" not found'


def test_transient_failures_are_retried_and_reported() -> None:
    from kubernetes.client import ApiException

    from pytest_stateful.cluster import api

    attempts: list[int] = []
    notes: list[str] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ApiException(status=503, reason="Service Unavailable")
        return "ok"

    assert api.call("read StatefulSet web", flaky, retry=True, on_retry=notes.append) == "ok"
    assert len(attempts) == 3 and len(notes) == 2
    assert notes[0].startswith("read StatefulSet web: 503 Service Unavailable (attempt 1")


def test_a_permanent_failure_is_not_retried() -> None:
    from kubernetes.client import ApiException

    from pytest_stateful.cluster import api
    from pytest_stateful.errors import NotFound

    attempts: list[int] = []

    def missing() -> None:
        attempts.append(1)
        raise ApiException(status=404, reason="Not Found")

    with pytest.raises(NotFound, match="delete pod web-7: 404 Not Found"):
        api.call("delete pod web-7", missing, retry=True)
    assert len(attempts) == 1


def test_test_module_basenames_are_unique() -> None:
    # tests/ has no packages: two modules of one basename break the collection of the whole suite.
    names = Counter(p.name for p in (Path(__file__).resolve().parents[1]).rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
