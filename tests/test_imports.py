"""The package structure: no import circles in pvdm_core/pvdm_cli/pvdm, pvdm_core's layers
(LAYERS) imported only downwards, the front ends (the CLI, the Python API) over the core and never
the other way, pyproject shipping every package, no import circles among the benchmarks, and every
entry point gives the whole CLI."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pvdm_core", "pvdm_cli", "pvdm")
# pvdm_core's layers, lowest first: a module may import its own layer and those before it, never
# one after it. Every pvdm_core module belongs to one layer (the package itself, pvdm_core, holds
# only the version and counts as the lowest).
LAYERS = (
    ("pvdm_core.base",),
    ("pvdm_core.models", "pvdm_core.diffusion"),
    ("pvdm_core.io",),
    ("pvdm_core.data",),
    ("pvdm_core.artifacts",),
    ("pvdm_core.generate",),
    ("pvdm_core.evaluation",),
    ("pvdm_core.training",),
    ("pvdm_core.tools",),
)
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


def core_modules() -> dict[str, Path]:
    return {name: path for name, path in module_files().items() if name.split(".")[0] == "pvdm_core"}


def layer_of(module: str, layers=LAYERS) -> int:
    """The index of `module`'s layer in `layers` (pvdm_core itself: 0)."""
    if module == "pvdm_core":
        return 0
    found = [i for i, layer in enumerate(layers) for pkg in layer if module == pkg or module.startswith(pkg + ".")]
    assert len(found) == 1, f"{module} is in {len(found)} layers of tests/test_imports.py's LAYERS, not 1"
    return found[0]


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """'a -> b' for every import in `graph` (module -> the pvdm_core modules it imports) of a
    module `b` from a lower layer's `a`."""
    return [f"{name} -> {dep}" for name in sorted(graph) for dep in sorted(graph[name])
            if layer_of(dep, layers) > layer_of(name, layers)]


def test_core_layers_import_only_downwards():
    modules = core_modules()
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    assert "pvdm_core.artifacts.load" in graph["pvdm_core.training.memory_plan"]  # a function-level import, seen
    for name in graph:
        layer_of(name)  # every module has one layer
    assert upward_imports(graph) == []


def test_upward_imports_catches_a_planted_one(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("from pvdm_core.base.errors import PvdmError\n\n\n"
                       "def late():\n    from pvdm_core.training import toolbox\n")
    graph = {"pvdm_core.base.planted": imports_of(planted, core_modules())}
    assert graph["pvdm_core.base.planted"] == {"pvdm_core.base.errors", "pvdm_core.training.toolbox"}
    assert upward_imports(graph) == ["pvdm_core.base.planted -> pvdm_core.training.toolbox"]
    assert upward_imports({"pvdm_core.training.planted": graph["pvdm_core.base.planted"]}) == []
    with pytest.raises(AssertionError, match="in 0 layers"):
        layer_of("pvdm_core.unlayered")


def test_pyproject_ships_every_package():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {name for name, path in module_files().items() if path.name == "__init__.py"}
    assert on_disk <= listed, sorted(on_disk - listed)


def benchmark_imports() -> dict[str, set[str]]:
    """benchmarks/NAME.py -> the other benchmarks it imports anywhere. The scripts put their folder
    on sys.path and import each other as top-level modules (`import X`, `from X import ...`)."""
    scripts = {path.stem: path for path in sorted((ROOT / "benchmarks").glob("*.py"))}
    return {name: imports_of(path, scripts) - {name} for name, path in scripts.items()}


def test_benchmarks_have_no_import_circles():
    graph = benchmark_imports()
    assert {"release_code", "release_speed"} <= graph["vs_release"]  # the second inside main(): seen
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


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
