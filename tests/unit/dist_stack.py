"""The committed `dist` stack (Pulumi.dist.yaml, the distributed deployment) under Pulumi's mocks, and how its tests
read its objects."""

from __future__ import annotations

import functools

from tests.unit.stacks import run

STATEFULSET = "kubernetes:apps/v1:StatefulSet"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DIST = dict(components={"singleNode": False, "distributed": True})  # the config changes that choose it


@functools.cache
def dist():
    """The committed `dist` stack (Pulumi.dist.yaml, the e2e test's) under mocks."""
    return run("dist")


def statefulset(result, role: str) -> dict:
    return result.one(STATEFULSET, f"distributed-{role}-statefulset").plain


def pod(result, role: str) -> dict:
    return statefulset(result, role)["spec"]["template"]["spec"]


def container(result, role: str) -> dict:
    return pod(result, role)["containers"][0]


def slurm_conf(result) -> str:
    return config_files(result)["slurm.conf"]


def config_files(result) -> dict[str, str]:
    """The Slurm ConfigMap's files (components/slurm_config.py)."""
    return result.one(CONFIG_MAP, "slurm-config-files").plain["data"]
