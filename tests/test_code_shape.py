"""Short files with one purpose: no Python file of the project over 400 lines, no function over
100 (the brief's limits; a longer one is split where it has a seam)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("pvdm_core", "pvdm_cli", "pvdm", "benchmarks", "tests")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 100


def too_long(source: str, name: str) -> list[str]:
    """'name: N lines' for the file and 'name:function: N lines' for each function past the limits."""
    found = []
    if (n := len(source.splitlines())) > MAX_FILE_LINES:
        found.append(f"{name}: {n} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                found.append(f"{name}:{node.name}: {n} lines")
    return found


def test_files_and_functions_stay_short():
    paths = sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))
    assert len(paths) > 100  # the walk sees the project
    found = [line for p in paths for line in too_long(p.read_text(), str(p.relative_to(ROOT)))]
    assert not found, found


def test_the_check_sees_long_files_and_functions():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert too_long(f"def f():\n{body}\n", "a.py") == ["a.py:f: 101 lines"]
    assert too_long("x = 1\n" * (MAX_FILE_LINES + 1), "b.py") == ["b.py: 401 lines"]
    assert too_long("def g():\n    return 1\n", "c.py") == []
