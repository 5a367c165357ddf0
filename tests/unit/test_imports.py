"""The direction of imports, walked with ``ast`` (so imports behind ``TYPE_CHECKING`` count).

The layers, top to bottom: ``cli`` -> ``http`` -> ``notify`` -> ``processes`` -> ``engine``
-> ``store``, with the vocabulary (errors, models, config) below them all. A module imports
only from its own layer and the ones below; nothing imports ``cli``; the client imports
no server module; the engine and the store never import aiohttp or prometheus.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "aioqueue"
LAYERS = ["cli", "http", "notify", "processes", "engine", "store"]


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
                names.add(prefix)
                names.update(f"{prefix}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_the_client_imports_nothing_of_the_server():
    for path in _modules("client"):
        server = {n for n in _imports(path) if n.startswith("aioqueue")
                  and not n.startswith("aioqueue.client")}
        assert not server, f"{path.name} imports {server}"


@pytest.mark.parametrize("name", ["client.py", "client_args.py"])
def test_the_client_commands_use_only_the_client(name):
    server = {n for n in _imports(PACKAGE / "cli" / name) if n.startswith("aioqueue")
              and not n.startswith("aioqueue.client")}
    assert not server


@pytest.mark.parametrize("folder", ["engine", "store"])
def test_the_engine_and_the_store_never_import_http_or_prometheus(folder):
    for path in _modules(folder):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("aiohttp", "prometheus_client")}
        assert not bad, f"{path.name} imports {bad}"


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_top_level_shows_the_layers():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert set(LAYERS) | {"client"} <= folders
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose <= {"__init__", "__main__", "errors", "models", "config", "validation"}, loose


def test_imports_point_down_the_layers():
    for module, targets in _graph().items():
        if module in ("aioqueue", "aioqueue.__main__"):
            continue  # the facade (``aioqueue.process``) and ``python -m aioqueue``
        own = _layer(module)
        allowed = LAYERS[LAYERS.index(own):] if own else []
        for target in targets:
            layer = _layer(target)
            assert layer is None or layer in allowed, f"{module} imports {target}"


def test_nothing_imports_the_command_line():
    for module, targets in _graph().items():
        if _layer(module) != "cli" and module != "aioqueue.__main__":
            assert not {t for t in targets if _layer(t) == "cli"}, module


#: database drivers: only a backend under ``aioqueue/store/<backend>/`` may import one
DRIVERS = {"sqlite3", "aiosqlite", "asyncpg", "psycopg", "psycopg2"}

def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, ``TYPE_CHECKING`` imports included
    (``ast.walk`` sees every import statement, wherever it stands)."""
    paths = {_module_name(p): p for p in _modules(".")}
    graph = {}
    for name, path in paths.items():
        targets = set()
        for imported in _imports(path):
            # ``from m import x`` names m.x: a module if there is one, else an attribute of m
            while imported and imported not in paths:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_only_a_store_backend_imports_a_database_driver():
    for path in _modules("."):
        inside = path.relative_to(PACKAGE).parts
        if len(inside) > 2 and inside[0] == "store":
            continue  # aioqueue/store/<backend>/...
        bad = {n for n in _imports(path) if n.split(".")[0] in DRIVERS}
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_only_the_store_and_the_command_line_import_a_backend():
    """The engine, HTTP and notifier see the contract; the factory picks the backend."""
    for path in _modules("."):
        inside = path.relative_to(PACKAGE).parts
        if inside[0] in ("store", "cli"):
            continue
        backends = {n for n in _imports(path)
                    if n.startswith("aioqueue.store.") and n.split(".")[2] not in
                    ("base", "factory", "JobStore", "Node", "StoreListener", "store_for",
                     "is_postgres_url", "ChangePage")}
        assert not backends, f"{path.relative_to(PACKAGE)} imports {backends}"


def test_there_is_no_import_cycle_not_even_behind_type_checking():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_sees_a_cycle_behind_type_checking():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
