"""Linters over the repository: ruff (Python, rules in pyproject.toml), shellcheck (every bash script), actionlint
(GitHub Actions workflows). scripts/bootstrap installs all three; a missing one fails, it is never skipped."""

from __future__ import annotations

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
