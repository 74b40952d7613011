"""Linters over the repository: ruff (Python, rules in pyproject.toml), shellcheck (every bash script), actionlint
(GitHub Actions workflows). scripts/bootstrap installs all three; a missing one fails, it is never skipped. And the
program's modules import each other without a cycle."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p]


def bash_scripts() -> list[Path]:
    """Tracked files whose first line names bash (scripts/, the images' entrypoints, .ci/run)."""
    scripts = []
    for path in tracked_files():
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as f:
                first = f.readline()
            if first.startswith(b"#!") and b"bash" in first:
                scripts.append(path)
    return scripts


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which(tool)
    if exe is None:
        pytest.fail(f"{tool} is not installed: run scripts/bootstrap", pytrace=False)
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def assert_clean(result: subprocess.CompletedProcess, tool: str) -> None:
    assert result.returncode == 0, f"{tool} found problems:\n{result.stdout}{result.stderr}"


def test_the_bash_scripts_found_include_the_projects_commands():
    names = {p.relative_to(ROOT).as_posix() for p in bash_scripts()}
    assert {"scripts/bootstrap", "scripts/test", "toolchain/kube", ".ci/run"} <= names


def test_python_passes_ruff():
    assert_clean(run("ruff", "check", "--no-cache", "."), "ruff")


def test_bash_scripts_pass_shellcheck():
    assert_clean(run("shellcheck", "--external-sources", *[str(p) for p in bash_scripts()]), "shellcheck")


def test_workflows_pass_actionlint():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows, "no workflow in .github/workflows"
    assert_clean(run("actionlint", *[str(p) for p in workflows]), "actionlint")


def component_imports(directory: Path) -> dict[str, set[str]]:
    """Each module of `directory` (a copy of components/) -> the components modules it imports, anywhere in it. A
    package's modules are named with dots (`config.table`; its __init__.py is `config`); `from components.config
    import table` imports the module config.table, `from components.config import parse` the package's face."""
    def name(path: Path) -> str:
        parts = path.relative_to(directory).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name(path): path for path in sorted(directory.rglob("*.py"))}

    def module(dotted: str) -> str:  # components.X.Y -> X.Y
        return dotted.split(".", 1)[1]

    graph = {}
    for me, path in modules.items():
        graph[me] = imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "components":
                package = node.module.partition(".")[2]
                for a in node.names:
                    inner = f"{package}.{a.name}" if package else a.name
                    imported.add(inner if inner in modules or not package else package)
            elif isinstance(node, ast.Import):
                imported |= {module(a.name) for a in node.names if a.name.startswith("components.")}
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` as [a, b, ..., a], or None."""
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module):] + [module]
        if module not in done:
            for imported in sorted(graph.get(module, ())):
                if found := visit(imported, path + [module]):
                    return found
            done.add(module)
        return None
    return next(filter(None, (visit(m, []) for m in sorted(graph))), None)


def test_the_program_modules_import_each_other_without_a_cycle(tmp_path):
    graph = component_imports(ROOT / "components")
    assert import_cycle(graph) is None
    assert {"config", "config.table", "config.schema"} <= set(graph), "a package's modules are read too"
    (tmp_path / "a.py").write_text("def f():\n    from components.b import x\n")
    (tmp_path / "b.py").write_text("from components import a\n")
    assert import_cycle(component_imports(tmp_path)) == ["a", "b", "a"]  # control: a hidden cycle is found
    (tmp_path / "b.py").write_text("")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "__init__.py").write_text("from components.p.q import x\n")
    (tmp_path / "p" / "q.py").write_text("from components import a\n")
    (tmp_path / "a.py").write_text("from components.p import y\n")
    assert import_cycle(component_imports(tmp_path)) == ["a", "p", "p.q", "a"]  # control: and one through a package


def test_linters_can_fail(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\necho $1\n")  # SC2086: unquoted
    assert run("shellcheck", str(bad)).returncode != 0
    flow = tmp_path / "bad.yml"
    flow.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n")
    assert run("actionlint", str(flow)).returncode != 0
    py = tmp_path / "bad.py"
    py.write_text("import os\n")  # F401: unused import
    assert run("ruff", "check", "--no-cache", "--isolated", str(py)).returncode != 0
