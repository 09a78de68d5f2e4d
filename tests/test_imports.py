"""Imports: every module of the stages below imports in a fresh interpreter, the settings
modules without torch (their --help, the report and the study stay fast), and no two modules
import each other, directly or round about, not even from inside a function (a cycle hidden
that way breaks as soon as someone moves the import up). Imports under `if TYPE_CHECKING:`
are for annotations only and do not count."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# pipeline/ and study/ are checked by their own tests.
PACKAGES = ("common", "pipeline", "tokenizer", "pretrain", "finetune", "report", "publish", "bench")
CONFIG_MODULES = (
    "common.config",
    "tokenizer.config",
    "pretrain.config",
    "finetune.config",
    "report.config",
    "publish.config",
)


def modules(package: str) -> list[str]:
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":  # runs the stage
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_imports_in_a_fresh_interpreter(package):
    names = modules(package)
    done = _python(f"import importlib\nfor name in {names!r}:\n    importlib.import_module(name)\n")
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.parametrize("name", CONFIG_MODULES)
def test_settings_modules_load_no_torch(name):
    done = _python(f"import sys, {name}\nprint(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]", f"importing {name} loads {done.stdout.strip()}"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(path: Path, name: str, known: set[str]) -> set[str]:
    """The first-party modules `path` (module `name`) imports anywhere: top level, functions, classes."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                out.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:  # `from pkg import module` imports the module
                    out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in out if m in known and m != name}


def test_no_import_cycles():
    paths = {
        name: ROOT / Path(*name.split("."), "__init__.py")
        if (ROOT / Path(*name.split("."))).is_dir()
        else ROOT / Path(*name.split(".")).with_suffix(".py")
        for package in PACKAGES
        for name in modules(package)
    }
    known = set(paths)
    graph = {name: imported(path, name, known) for name, path in paths.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + c[:1]) for c in cycles)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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
            connect(node)
    return sorted(found)
