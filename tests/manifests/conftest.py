"""The Kubernetes objects the `local` stack renders, as the manifest tests' input.

By default the session runs `scripts/pulumi up --stack local --yes` (the real CLI; a no-op when nothing
changed) and reads the directory `kubernetes.renderDir` of Pulumi.local.yaml names, so the objects checked
are those the current code renders. `SCI_RENDERED_DIR=DIR` checks an already rendered directory instead
(e.g. a CI artefact) without running Pulumi.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.manifests.rendered import load_objects, local_render_dir
from tests.project_env import ROOT, pulumi


@pytest.fixture(scope="session")
def rendered_dir() -> Path:
    given = os.environ.get("SCI_RENDERED_DIR")
    if given:
        path = Path(given)
    else:
        cli = ROOT / "scripts" / "pulumi"
        if not os.access(cli, os.X_OK):
            pytest.fail(f"{cli} is missing: these checks need the real Pulumi CLI (scripts/bootstrap builds it) "
                        "to render the local stack, or SCI_RENDERED_DIR=DIR naming an already rendered directory",
                        pytrace=False)
        proc = pulumi("up", "--yes", stack="local", check=False)
        if proc.returncode != 0:
            pytest.fail(f"scripts/pulumi up --stack local failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                        f"{proc.stderr[-3000:]}", pytrace=False)
        path = local_render_dir()
    if not path.is_dir() or not any(path.rglob("*.yaml")):
        pytest.fail(f"no rendered YAML in {path}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def objects(rendered_dir) -> list[tuple[Path, dict]]:
    return load_objects(rendered_dir)
