"""The package structure: no import circles in pvdm_core/pvdm_cli/pvdm, the front ends (the CLI,
the Python API) over the core and never the other way, and every entry point gives the whole CLI."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pvdm_core", "pvdm_cli", "pvdm")
COMMANDS = ("presets", "info", "plan", "synth", "train-ae", "encode", "train-diffusion", "sample", "extend", "eval-fvd",
            "convert", "plot", "demo")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `path` imports anywhere (module level or inside functions);
    `from pkg import name` counts as pkg.name when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
    return {name for name in found if name in modules}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circles():
    modules = module_files()
    graph = {name: imports_of(path, modules) - {name} for name, path in modules.items()}
    assert "pvdm_cli.app" in graph["pvdm_cli.cmd_train_ae"]  # the walk sees imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_front_ends_sit_on_the_core():
    """pvdm_core imports neither front end; the CLI and the API (pvdm) share the core, not each
    other (only `python -m pvdm`, pvdm.__main__, runs the CLI)."""
    modules = module_files()
    allowed = {"pvdm_core": ("pvdm_core",), "pvdm_cli": ("pvdm_core", "pvdm_cli"), "pvdm": ("pvdm_core", "pvdm")}
    wrong = []
    for name, path in modules.items():
        if name == "pvdm.__main__":
            continue
        package = name.split(".")[0]
        wrong += [f"{name} -> {dep}" for dep in sorted(imports_of(path, modules)) if dep.split(".")[0] not in allowed[package]]
    assert "pvdm.model" in modules and not wrong, wrong


def test_find_cycle_sees_function_level_circles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_importing_main_registers_every_command():
    from pvdm_cli.main import app

    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    assert names == set(COMMANDS)


@pytest.mark.parametrize("entry", [["-m", "pvdm_cli.main"], ["-m", "pvdm"], ["-m", "pvdm_cli"]])
def test_every_entry_point_lists_every_command(entry):
    out = subprocess.run([sys.executable, *entry, "--help"], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "COLUMNS": "200"}, timeout=120)
    assert out.returncode == 0, out.stderr
    for command in COMMANDS:
        assert f" {command} " in out.stdout, (command, out.stdout)
