"""The layering rules of ``architecture.md``, checked on the source (ast) and at import time.

* Nothing in ``studio/`` outside ``studio/app`` imports Qt (PySide6 or another binding).
* ``studio/app`` imports no torch directly (it sees requests, events and results, never tensors).
* Nothing in ``studio/`` imports diffusers (it is a test-only oracle).
* Nothing imports upward: engine, models and media never import the service, the app or the CLI;
  the service never imports the app or the CLI; only ``studio/__main__.py`` starts the app.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIO = ROOT / "studio"
QT_BINDINGS = {"PySide6", "shiboken6", "PySide2", "shiboken2", "PyQt5", "PyQt6", "sip"}
IMPORTERS = {"import_module", "__import__"}


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name, e.g. "PySide6.QtCore" or "studio.engine.sampler"
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, name: str, is_package: bool = False) -> list[Import]:
    """Every module ``source`` imports: plain, from-, relative (resolved) and literal dynamic ones
    (``importlib.import_module("x")``, ``__import__("x")``), wherever they sit in the file."""
    package = name if is_package else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append(Import(base, node.lineno))
            found += [Import(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and _dynamic_target(node) is not None:
            found.append(Import(_dynamic_target(node), node.lineno))
    return found


def _dynamic_target(node: ast.Call) -> str | None:
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called in IMPORTERS and node.args and isinstance(node.args[0], ast.Constant):
        value = node.args[0].value
        return value if isinstance(value, str) else None
    return None


def violations(name: str, found: list[Import]) -> list[str]:
    """The layering rules for module ``name`` (dotted, under ``studio``)."""
    layer = name.split(".")[1] if "." in name else ""
    problems = []
    for imp in found:
        top = imp.module.split(".")[0]
        below = imp.module.split(".")[1] if top == "studio" and "." in imp.module else ""
        where = f"{name}:{imp.line} imports {imp.module}"
        if top in QT_BINDINGS and layer != "app":
            problems.append(f"{where} (only studio/app may import Qt)")
        if top == "torch" and layer == "app":
            problems.append(f"{where} (studio/app must not import torch)")
        if top == "diffusers":
            problems.append(f"{where} (diffusers is for tests only)")
        if below in {"app", "cli"} and layer not in {"app", "cli", "__main__"}:
            problems.append(f"{where} (nothing below the app imports the app or the CLI)")
        if below == "service" and layer in {"engine", "models", "media"}:
            problems.append(f"{where} ({layer} must not import the service layer)")
    return problems


def studio_modules() -> list[Path]:
    return sorted(p for p in STUDIO.rglob("*.py") if "__pycache__" not in p.parts)


def test_walk_sees_the_whole_package() -> None:
    names = {module_name(p) for p in studio_modules()}
    expected = {"studio", "studio.errors", "studio.engine.sampler", "studio.engine.request",
                "studio.models.family", "studio.app"}  # fmt: skip
    assert expected <= names
    assert len(names) >= 20


def test_source_layering() -> None:
    problems = []
    for path in studio_modules():
        name = module_name(path)
        source = path.read_text(encoding="utf-8")
        problems += violations(name, imports_of(source, name, path.name == "__init__.py"))
    assert not problems, "layering violations:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        ("studio.engine.x", "import PySide6.QtCore", "only studio/app may import Qt"),
        ("studio.service.x", "from PySide6 import QtCore", "only studio/app may import Qt"),
        ("studio.media.x", "def f():\n    from shiboken6 import isValid", "Qt"),
        ("studio.models.x", "import importlib\nimportlib.import_module('PySide6.QtGui')", "Qt"),
        ("studio.app.x", "import torch.nn as nn", "must not import torch"),
        ("studio.app.x", "from torch import Tensor", "must not import torch"),
        ("studio.app.x", "__import__('torch')", "must not import torch"),
        ("studio.models.x", "try:\n    import diffusers\nexcept ImportError:\n    x = 0", "tests"),
        ("studio.app.x", "from diffusers.models import AutoencoderKLWan", "tests only"),
        ("studio.engine.x", "from studio.service import generation", "must not import the service"),
        ("studio.engine.x", "from ..service.jobs import JobQueue", "must not import the service"),
        ("studio.service.x", "from studio.app.worker import GenerationWorker", "imports the app"),
        ("studio.models.wan.x", "from ...app import main", "imports the app"),
    ],
)
def test_checker_catches_violations(name: str, source: str, expected: str) -> None:
    problems = violations(name, imports_of(source, name))
    assert problems and expected in problems[0]


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("studio.app.x", "from PySide6.QtWidgets import QWidget\nfrom studio.engine import cancel"),
        ("studio.app.x", "import numpy as np"),
        ("studio.engine.x", "import torch\nfrom studio.engine.model import LoadedModel"),
        ("studio.service.x", "import torch\nfrom studio.engine import pipeline"),
        ("studio.__main__", "from studio.app.main import run_app\nfrom studio.cli import run_cli"),
        ("studio.engine.x", "from . import schedule\nfrom .noise import make_noise"),
    ],
)
def test_checker_accepts_allowed_imports(name: str, source: str) -> None:
    assert violations(name, imports_of(source, name)) == []


def test_relative_imports_are_resolved() -> None:
    found = {i.module for i in imports_of("from ..engine import noise", "studio.service.job_queue")}
    assert "studio.engine.noise" in found
    found = {i.module for i in imports_of("from .sampler import x", "studio.engine", True)}
    assert "studio.engine.sampler" in found


def _loaded_after(modules: list[str]) -> dict[str, list[str]]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "tops = {m.split('.')[0] for m in sys.modules}\n"
        f"qt = tops & set({sorted(QT_BINDINGS)!r})\n"
        "print(json.dumps({'qt': sorted(qt), 'diffusers': sorted(tops & {'diffusers'})}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_engine_import_leaves_qt_out() -> None:
    modules = ["studio.engine.sampler"]
    if (STUDIO / "engine" / "pipeline.py").exists():
        modules.append("studio.engine.pipeline")
    loaded = _loaded_after(modules)
    assert loaded == {"qt": [], "diffusers": []}


def test_checker_subprocess_sees_qt() -> None:
    """The import-time probe is not blind: importing PySide6 shows up."""
    assert _loaded_after(["PySide6.QtCore"])["qt"] != []


# --- the family redesign's rules ---------------------------------------------------------------

LOWER_LAYERS = {
    "engine": {"models", "service", "app", "cli", "bench"},
    "models": {"service", "app", "cli", "bench"},
    "media": {"models", "service", "app", "cli", "bench"},
}
FAMILY_PACKAGES = sorted(p.name for p in (STUDIO / "models").iterdir()
                         if p.is_dir() and (p / "__init__.py").exists())
#: The registry's list of shipped families is the one place outside a family that names them.
FAMILY_LIST = "studio.models.registry"


def _module_graph() -> dict[str, set[str]]:
    names = {module_name(p): p for p in studio_modules()}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        found = imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
        graph[name] = {_owning_module(imp.module, names) for imp in found} - {None, name}
    return graph


def _owning_module(imported: str, names: dict[str, Path]) -> str | None:
    """The studio module an import refers to (``from pkg import name`` names pkg's module)."""
    while imported:
        if imported in names:
            return imported
        imported = imported.rpartition(".")[0]
    return None


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

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
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert find_cycles(_module_graph()) == []


def test_lower_layers_import_nothing_above_them() -> None:
    problems = []
    for name, imported in _module_graph().items():
        layer = name.split(".")[1] if name.count(".") >= 1 else ""
        for target in imported:
            target_layer = target.split(".")[1] if target.count(".") >= 1 else ""
            if target_layer in LOWER_LAYERS.get(layer, set()):
                problems.append(f"{name} imports {target}")
    assert not problems, "\n".join(problems)


def test_no_module_outside_a_family_names_one() -> None:
    """Outside ``studio/models/<family>/`` (and the registry's list) no module imports a family
    package or spells a family's name as a string."""
    assert {"demo", "wan"} <= set(FAMILY_PACKAGES)
    problems = []
    for path in studio_modules():
        name = module_name(path)
        home = name.split(".")[2] if name.startswith("studio.models.") and name.count(".") > 2 \
            else None
        if name == FAMILY_LIST or home in FAMILY_PACKAGES:
            continue
        source = path.read_text(encoding="utf-8")
        for imp in imports_of(source, name, path.name == "__init__.py"):
            parts = imp.module.split(".")
            if parts[:2] == ["studio", "models"] and len(parts) > 2 and parts[2] in FAMILY_PACKAGES:
                problems.append(f"{name}:{imp.line} imports {imp.module}")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and node.value in FAMILY_PACKAGES:
                problems.append(f"{name}:{node.lineno} names the family {node.value!r}")
    assert not problems, "\n".join(problems)
