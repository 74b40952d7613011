"""Fixtures of the end-to-end tests: this machine's Kubernetes (`toolchain/kube up`), the `cluster` stack
deployed onto it with the real Pulumi CLI (`pulumi up` returns once every workload is ready by its own probes),
shared by every test of the session.

Each module brings up what it needs through these fixtures, and both commands are idempotent (on a running cluster
and an unchanged stack they change nothing), so any module runs alone, e.g. `python -m pytest
tests/e2e/test_02_rest.py`: test_00 needs the cluster alone, test_01..06 the `cluster` stack, test_07 the cluster,
on which it deploys a second stack (`site`) against a Slurm cluster outside Kubernetes and destroys it. No module
relies on what another left (a job, a user, a file): what one needs beyond the stack, it makes itself. (test_06
deploys a key rotation from a copy of Pulumi.cluster.yaml: a module run alone after it rotates the keys back, so
its `pulumi up` replaces every pod once more.)

One order rule, kept by pytest_collection_finish below rather than by the files' names: the tests marked `teardown`
(test_08: `pulumi destroy` of the `cluster` stack, then `toolchain/kube down`) run after every other test of the
session, whatever order the files are given in, with pytest's --ff and --nf too.
"""

from __future__ import annotations

import pytest

from tests.e2e.deployment import TIMINGS, Deployment, kube_up, pulumi_up, stack_output
from tests.e2e.kube import Kube


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter lists them (--collect-only)
def pytest_collection_finish(session):
    """The `teardown` tests last, the others in their order. Here, not in pytest_collection_modifyitems: pytest's
    cache plugin reorders there for --ff and --nf after every other plugin (a wrapper), which would undo it."""
    session.items.sort(key=lambda item: item.get_closest_marker("teardown") is not None)


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
