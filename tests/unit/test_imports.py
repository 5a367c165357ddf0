"""The direction of imports: the client needs no server module, the engine no HTTP or metrics."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "aioqueue"


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


def test_the_client_commands_use_only_the_client():
    server = {n for n in _imports(PACKAGE / "commands.py") if n.startswith("aioqueue")
              and not n.startswith("aioqueue.client")}
    assert not server


def test_the_engine_never_imports_http_or_prometheus():
    for path in _modules("engine"):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("aiohttp", "prometheus_client")}
        assert not bad, f"{path.name} imports {bad}"
