"""Fixtures of the end-to-end tests: the `local` stack deployed with the real Pulumi CLI, its rendered objects run
by tests/e2e/kube_runner.py (podman), shared by every test of the session; torn down at the end.

Order matters and is the files' order: test_01..05 use the running stack, test_06 destroys it.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.deployment import ROOT, TIMINGS, Deployment, pulumi_up, render_dir, uses_pulumi
from tests.e2e.kube_runner import KubeRunner


@pytest.fixture(scope="session")
def rendered():
    """`scripts/pulumi up --stack local --yes` (images built and pushed, objects rendered); the render dir."""
    if uses_pulumi():
        if not (ROOT / "scripts" / "pulumi").exists():
            pytest.fail("scripts/pulumi is missing", pytrace=False)
        TIMINGS["pulumi up"] = pulumi_up()
    path = render_dir()
    if not any(path.rglob("*.yaml")):
        pytest.fail(f"no rendered YAML in {path}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def deployment(rendered):
    """Every rendered workload running as podman containers, each ready by its own probes."""
    runner = KubeRunner(rendered, prefix=f"sci-e2e-{uuid.uuid4().hex[:6]}")
    try:
        t0 = time.monotonic()
        runner.apply()
        runner.wait_ready(timeout=300)
        TIMINGS["pods ready"] = time.monotonic() - t0
        yield Deployment(runner)
    finally:
        runner.down()


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("-", "end-to-end timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what:40} {seconds:7.1f} s")
