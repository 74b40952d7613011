"""The committed stack configurations (Pulumi.<stack>.yaml) as the raw values run_stack() takes."""

from __future__ import annotations

import os
from unittest import mock

import yaml

from tests.project_env import PREFIX, ROOT
from tests.unit.config_values import JWT, MUNGE, changed, raw
from tests.unit.harness import Result, run_stack


def stack_values(stack: str, **changes) -> dict:
    """Pulumi.<stack>.yaml's config without the project prefix, objects as JSON text (as Pulumi gives them)."""
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    values = {}
    for key, value in (doc.get("config") or {}).items():
        assert key.startswith(PREFIX), f"Pulumi.{stack}.yaml: {key} lacks the project prefix"
        values[key[len(PREFIX):]] = str(raw(value))
    return changed(values, **changes)


def run(stack: str, **changes) -> Result:
    """Run a committed stack under mocks. prod adopts a munge key as `pulumi config set --secret` would."""
    secret = set()
    if stack == "prod":
        changes.setdefault("mungeKey", MUNGE)
        changes.setdefault("jwtKey", JWT)
        secret |= {"mungeKey", "jwtKey"}
    return run_values(stack_values(stack, **changes), secret)


def run_values(values: dict, secret: set) -> Result:
    """run_stack() of a committed stack's `values` (stack_values()), `secret` the keys given as secrets."""
    # local's renderDir and cluster's kubeconfig name scripts/env.sh's variables; under mocks nothing is read there.
    cache = os.environ.get("SCI_CACHE", "/nonexistent/sci-cache")
    with mock.patch.dict(os.environ, {"SCI_CACHE": cache,
                                      "SCI_KUBECONFIG": os.environ.get("SCI_KUBECONFIG", f"{cache}/kube/admin.kubeconfig")}):
        return run_stack(values, secret, str(ROOT))
