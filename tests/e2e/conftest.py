"""Fixtures of the end-to-end tests: this machine's single-node Kubernetes (`toolchain/kube up`), the `cluster` stack
deployed onto it with the real Pulumi CLI (`pulumi up` returns once every workload is ready by its own probes),
shared by every test of the session.

Order matters and is the files' order: test_00 uses the cluster alone, test_01..06 the running stack, test_07 a
second stack (`site`) against a Slurm cluster outside Kubernetes, test_08 destroys the first and stops the cluster.
"""

from __future__ import annotations

import pytest

from tests.e2e.deployment import TIMINGS, Deployment, kube_up, pulumi_up, stack_output
from tests.e2e.kube import Kube


@pytest.fixture(scope="session")
def cluster() -> None:
    """This machine's Kubernetes, running (`toolchain/kube up`)."""
    TIMINGS["cluster up (toolchain/kube up)"] = kube_up()


@pytest.fixture(scope="session")
def deployment(cluster):
    TIMINGS["pulumi up --stack cluster"] = pulumi_up()
    return Deployment(Kube(stack_output("namespace")))


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.write_sep("-", "end-to-end timings")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{what:40} {seconds:7.1f} s")
