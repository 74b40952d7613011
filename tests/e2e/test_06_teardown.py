"""Scenario 6 (last: it removes the stack the other tests use): `scripts/pulumi destroy --stack local --yes`, then
the runner applies what is left (nothing: deleting the Namespace takes the pods and the PVCs with it) and tears
down. No container, volume, network, file or process of the deployment is left behind."""

import json
import os
from pathlib import Path

import pytest

from tests.e2e.deployment import TIMINGS, pulumi, pulumi_destroy, uses_pulumi
from tests.e2e.kube_runner import podman

pytestmark = pytest.mark.e2e


def descendants(pid: int) -> list[str]:
    """Processes below `pid` (this test run): pulumi plugins, browsers, podman, ... that outlived their use."""
    children: dict[int, list[int]] = {}
    cmd: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:150]
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(f"{p}: {cmd.get(p, '?')}")
        todo += children.get(p, [])
    return found


def test_destroy_and_teardown_leave_no_containers_volumes_or_processes(deployment, rendered):
    if not uses_pulumi():
        pytest.skip("SCI_RENDERED_DIR given: there is no Pulumi stack to destroy")
    runner = deployment.runner
    assert runner.pods, "nothing was running before the teardown"
    volumes_before = set(runner.leftovers().get("volumes", []))
    assert volumes_before, "the single node's PVC volume should exist before the teardown"

    TIMINGS["pulumi destroy"] = pulumi_destroy()
    left = sorted(str(p) for p in rendered.rglob("*.yaml"))
    assert not left, f"pulumi destroy left rendered objects: {left}"
    resources = json.loads(pulumi("stack", "export").stdout)["deployment"].get("resources") or []
    assert [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"] == [], "resources left in the state"

    runner.apply()  # the Namespace is gone: so are its pods and PVCs
    assert not runner.pods, f"pods left after their objects were destroyed: {list(runner.pods)}"
    assert "containers" not in runner.leftovers() and "volumes" not in runner.leftovers(), runner.leftovers()

    runner.down()  # the network and the materialised files
    assert runner.leftovers() == {}, f"left behind: {runner.leftovers()}"
    ours = podman("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert not [c for c in ours if c.startswith(runner.prefix)], ours
    assert not volumes_before & set(podman("volume", "ls", "-q").stdout.split())
    assert descendants(os.getpid()) == [], "processes started by the tests are still running"
