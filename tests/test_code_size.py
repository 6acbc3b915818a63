"""The size budget of ``studio/``: small modules with one job and short functions.

Budgets (the family redesign's): no module over 400 lines, a median module of at most ~120
lines, and 90 % of functions at most 22 lines long.
"""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

STUDIO = Path(__file__).resolve().parents[1] / "studio"
MAX_MODULE_LINES = 400
MEDIAN_MODULE_LINES = 120
FUNCTION_P90_LINES = 22


def _modules() -> list[Path]:
    return sorted(p for p in STUDIO.rglob("*.py") if "__pycache__" not in p.parts)


def function_lengths(source: str) -> list[int]:
    """Lines of every function and method in ``source``, decorators excluded."""
    return [node.end_lineno - node.lineno + 1 for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]  # fmt: skip


def test_function_lengths_counts_nested_functions() -> None:
    source = "def f():\n    def g():\n        return 1\n    return g\n"
    assert sorted(function_lengths(source)) == [2, 4]


def test_modules_stay_small() -> None:
    lengths = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in _modules()}
    too_long = {str(p.relative_to(STUDIO)): n for p, n in lengths.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"
    assert statistics.median(lengths.values()) <= MEDIAN_MODULE_LINES


def test_functions_stay_short() -> None:
    lengths = sorted(n for p in _modules() for n in function_lengths(p.read_text("utf-8")))
    p90 = lengths[int(0.9 * (len(lengths) - 1))]
    assert p90 <= FUNCTION_P90_LINES, f"90th percentile function length {p90} lines"
