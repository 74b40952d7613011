"""Linters over the repository: ruff (Python, rules in pyproject.toml), shellcheck (every bash script), actionlint
(GitHub Actions workflows), promtool (the Prometheus alert rules, checked and unit-tested: tests/lint/prometheus/).
scripts/bootstrap installs them all; a missing one fails, it is never skipped. And the
program's modules import each other without a cycle; the test suites' helpers are in plain modules (no test module
imports another), and the end-to-end teardown runs last whatever the order of the files."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
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


def write_rules(directory: Path, pending_minutes: int, annotations: bool = True, **parts: bool) -> Path:
    """The alert rules as the stack ships them (components/monitoring.render_rules) in `directory`/alerts.yaml."""
    from components.config import Components
    from components.monitoring import render_rules, rules_yaml

    rules = render_rules(pending_minutes, Components(**parts) if parts else None)
    if not annotations:
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    path = directory / "alerts.yaml"
    path.write_text(rules_yaml(rules))
    return path


@pytest.mark.parametrize("minutes, parts", [(30, {}), (1, {}), (7 * 24 * 60, {}),
                                            (30, {"single_node": False, "jupyterhub": False})],
                         ids=["default", "one minute", "a week", "an existing cluster without a hub"])
def test_alert_rules_pass_promtool_check(tmp_path, minutes, parts):
    assert_clean(run("promtool", "check", "rules", "configs/prometheus/alerts.yaml"), "promtool")
    assert_clean(run("promtool", "check", "rules", str(write_rules(tmp_path, minutes, **parts))), "promtool")


def test_alerts_fire_when_they_should_under_promtool_test_rules(tmp_path):
    """tests/lint/prometheus/alerts_test.yaml: Prometheus evaluates the shipped rules over synthetic series."""
    write_rules(tmp_path, 5, annotations=False)
    shutil.copy(ROOT / "tests/lint/prometheus/alerts_test.yaml", tmp_path)
    assert_clean(run("promtool", "test", "rules", str(tmp_path / "alerts_test.yaml")), "promtool test rules")
    # Control: a threshold of 4 minutes fires the pending alert at 5 minutes, where the test expects none.
    write_rules(tmp_path, 4, annotations=False)
    failed = run("promtool", "test", "rules", str(tmp_path / "alerts_test.yaml"))
    assert failed.returncode != 0 and "SlurmJobsPendingOnResources, time: 5m" in failed.stdout + failed.stderr


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
    import table` imports the module config.table, `from components.config import parse` the package's face. A
    module of a package imports the package too (importing components.config.table first runs config/__init__.py),
    except from inside that package, where the package is already being imported."""
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
        parts = [m.split(".") for m in imported]
        imported |= {package for p in parts for package in (".".join(p[:i]) for i in range(1, len(p)))
                     if me != package and not me.startswith(package + ".")}
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
    (tmp_path / "p" / "__init__.py").write_text("from components import a\n")
    (tmp_path / "p" / "q.py").write_text("")
    (tmp_path / "a.py").write_text("from components.p.q import x\n")
    assert import_cycle(component_imports(tmp_path)) == ["a", "p", "a"]  # control: and one through its __init__ alone


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
    rules = tmp_path / "bad.rules.yaml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n")
    assert run("promtool", "check", "rules", str(rules)).returncode != 0


def imported_test_modules(path: Path, package: str | None = None) -> list[str]:
    """The test modules (tests....test_*) that the file `path` imports, anywhere in it; a relative import (`from .
    import test_x`, `from ..e2e.test_x import f`) from `package`, by default the one `path` is in."""
    if package is None:
        package = ".".join(path.parent.relative_to(ROOT).parts) if path.is_relative_to(ROOT) else ""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names += [module, *(f"{module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return sorted({n for n in names if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")})


def test_no_test_module_imports_another(tmp_path):
    """What tests share is in plain modules (tests/unit/config_values.py, tests/slurm_rest.py, ...), so that each
    test module runs alone and none runs another's tests' setup by importing it."""
    found = {p.relative_to(ROOT).as_posix(): names for p in sorted((ROOT / "tests").rglob("*.py"))
             if (names := imported_test_modules(p))}
    assert found == {}, "move what they share into a plain module (not named test_*)"
    (tmp_path / "test_b.py").write_text("def f():\n    from tests.e2e import test_02_rest\n")
    assert imported_test_modules(tmp_path / "test_b.py") == ["tests.e2e.test_02_rest"]  # control: found, even hidden
    (tmp_path / "test_c.py").write_text("from . import test_02_rest\nfrom ..unit.test_config import x\n"
                                         "from .deployment import y\n")
    assert imported_test_modules(tmp_path / "test_c.py", "tests.e2e") == [  # control: and relative ones
        "tests.e2e.test_02_rest", "tests.unit.test_config"]


def test_no_two_test_modules_share_a_name():
    """pytest imports test modules by their basename (the suites are not packages): a second module of one name is
    an "import file mismatch" error when both are collected, as `scripts/test` does."""
    names: dict[str, list[str]] = {}
    for p in sorted((ROOT / "tests").rglob("test_*.py")):
        names.setdefault(p.name, []).append(p.relative_to(ROOT).as_posix())
    assert {n: ps for n, ps in names.items() if len(ps) > 1} == {}


def collected_ids(*args: str, cache: Path | None = None) -> list[str]:
    """The node ids of the tests that `pytest --collect-only ARGS` collects, in the order they would run; with
    `cache`, pytest's cache plugin on and reading that cache directory (--ff, --nf), else off."""
    plugin = ["-o", f"cache_dir={cache}"] if cache else ["-p", "no:cacheprovider"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *plugin, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [line for line in proc.stdout.splitlines() if "::" in line]


def collected(*args: str, cache: Path | None = None) -> list[str]:
    """The files of the tests that `pytest --collect-only ARGS` collects, in the order they would run."""
    return [node.split("::")[0] for node in collected_ids(*args, cache=cache)]


TEARDOWN = "tests/e2e/test_08_teardown.py"
OTHERS = ("tests/e2e/test_00_cluster.py", "tests/e2e/test_02_rest.py")


def assert_teardown_last(order: list[str]) -> None:
    assert order[-1] == TEARDOWN and TEARDOWN not in order[:-1] and set(order[:-1]) == set(OTHERS), order


def test_the_e2e_teardown_runs_after_every_other_test_whatever_the_order_of_the_files():
    assert_teardown_last(collected(TEARDOWN, *OTHERS))
    # Control: without tests/e2e/conftest.py (its ordering hook), the files' order given would run it first.
    assert collected("--noconftest", TEARDOWN, *OTHERS)[0] == TEARDOWN


@pytest.mark.parametrize("flag", ["--ff", "--nf"])
def test_the_e2e_teardown_runs_last_after_its_cached_failure_with_failed_first_or_new_first(tmp_path, flag):
    """pytest's cache plugin reorders for --ff (a cached failure first) and --nf (tests it has not seen first) after
    every other plugin's pytest_collection_modifyitems: the teardown stays last all the same."""
    cache = tmp_path / "cache"
    (cache / "v" / "cache").mkdir(parents=True)
    (cache / "v" / "cache" / "lastfailed").write_text(json.dumps({node: True for node in collected_ids(TEARDOWN)}))
    (cache / "v" / "cache" / "nodeids").write_text(json.dumps(collected_ids(*OTHERS)))  # the teardown is new
    assert_teardown_last(collected(flag, *OTHERS, TEARDOWN, cache=cache))
    # Control: without the conftest, the flag runs the teardown first.
    assert collected("--noconftest", flag, *OTHERS, TEARDOWN, cache=cache)[0] == TEARDOWN
