"""Scenario 10b: a Slurm upgrade of the distributed deployment keeps accounting and the queue. The `dist` stack on a
copy of Pulumi.dist.yaml (tests/e2e/deployment.StackCopy) at Slurm 24.11 with munge and one node pod: a job
completed, one held in the queue. Then `slurmVersion` 26.05 and `pulumi up`, which replaces every pod: slurmdbd,
slurmctld and slurmd all run 26.05, none of their containers restarted on the way; accounting converted its database
and has every record; slurmctld kept the held job (its state on its claim), which runs as its user once released; a
new job completes. Destroyed afterwards.

Run alone: `.venv/bin/python -m pytest tests/e2e/test_10b_distributed_upgrade.py` (the `cluster` fixture runs
`toolchain/kube up`).
"""

from __future__ import annotations

import time

import pytest

from tests.e2e.deployment import TIMINGS, StackCopy
from tests.e2e.dist_stack import STACK, USER, Dist
from tests.images.slurm_containers import wait_until

pytestmark = pytest.mark.e2e

NODE = "dist-node-0"
FROM, TO = "24.11", "26.05"  # trixie's to sid's: within Slurm's window of three releases


@pytest.fixture(scope="module")
def stack(cluster, tmp_path_factory):
    s = StackCopy(STACK, "Pulumi.dist.yaml", tmp_path_factory.mktemp("dist-upgrade") / "Pulumi.dist.yaml")
    s.set("slurmVersion", FROM)
    s.set("authType", "auth/munge")  # 24.11's
    s.set("nodes", "1")
    with s.deployed(f"dist at Slurm {FROM}"):
        yield s


def versions(dist: Dist) -> dict[str, str]:
    """The release each daemon runs (major.minor)."""
    found = {"slurmctld": dist.on(NODE, "timeout 10 scontrol show config | sed -n 's/^SLURM_VERSION *= *//p'"),
             "slurmdbd": dist.on("dist-accounting-0", "slurmdbd -V"), "slurmd": dist.on(NODE, "slurmd -V")}
    return {daemon: ".".join(text.split()[-1].split(".")[:2]) for daemon, text in found.items()}


def test_an_upgrade_keeps_every_accounting_record_and_the_queued_job(stack):
    dist = Dist()
    wait_until(lambda: dist.idle([NODE]), 120, f"{NODE} idle")
    assert versions(dist) == dict.fromkeys(("slurmctld", "slurmdbd", "slurmd"), FROM)
    done = dist.on(NODE, "sbatch --parsable --wait -o /dev/null --wrap true", user=USER).split()[-1]
    held = dist.on(NODE, "sbatch --parsable --hold -o held.%j --wrap 'id -un'", user=USER).strip()
    before = dist.records()
    assert before[done] == "COMPLETED", before  # (a held job is not eligible: accounting may not have it yet)

    stack.set("slurmVersion", TO)
    t0 = time.monotonic()
    stack.pulumi("up")
    TIMINGS[f"dist: pulumi up from Slurm {FROM} to {TO}"] = time.monotonic() - t0
    wait_until(lambda: dist.idle([NODE]), 120, f"{NODE} idle after the upgrade")
    assert versions(dist) == dict.fromkeys(("slurmctld", "slurmdbd", "slurmd"), TO)
    restarted = {p.name for p in dist.kube.pods for c in p.status.get("containerStatuses", []) if c["restartCount"]}
    assert not restarted, f"crashed on the way (each daemon waits for the one it needs): {restarted}"
    kept = {job: state for job, state in dist.records().items() if job in before}
    assert kept == before, "accounting lost or changed a record in the upgrade"
    reason = dist.on(NODE, f"squeue -h -j {held} -o '%T %r'").strip()
    assert reason == "PENDING JobHeldUser", reason

    dist.on(NODE, f"scontrol release {held}", user=USER)
    wait_until(lambda: dist.records().get(held) == "COMPLETED", 60, f"job {held} COMPLETED", lambda: str(dist.records()))
    assert dist.on(NODE, f"cat held.{held}", user=USER).split() == [USER]
    after = dist.on(NODE, "sbatch --parsable --wait -o /dev/null --wrap true", user=USER).split()[-1]
    assert dist.records()[after] == "COMPLETED"
