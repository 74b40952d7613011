"""Where the `local` stack renders its objects, and reading them back."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from tests.project_env import PREFIX, ROOT

DEFAULT_CACHE = "/var/cache/slurm-cloud-integration"  # scripts/env.sh


def local_render_dir() -> Path:
    config = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    render_dir = (config.get(PREFIX + "kubernetes") or {}).get("renderDir")
    assert render_dir, "Pulumi.local.yaml sets no kubernetes.renderDir: the local stack renders nothing"
    cache = os.environ.get("SCI_CACHE", DEFAULT_CACHE)
    return Path(os.path.expandvars(render_dir.replace("${SCI_CACHE}", cache).replace("$SCI_CACHE", cache)))


def load_objects(directory: Path) -> list[tuple[Path, dict]]:
    objects = []
    for path in sorted(directory.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                objects.append((path, doc))
    return objects
