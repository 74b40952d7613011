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

from components.slurm_files import DEFAULT_SLURM_VERSION
from tests.e2e.deployment import TIMINGS, StackCopy
from tests.e2e.kube import Kube
from tests.images.slurm_containers import wait_until

pytestmark = pytest.mark.e2e

STACK, NAMESPACE, USER = "dist", "slurm-dist", "alice"  # Pulumi.dist.yaml
NODE = "dist-node-0"
FROM, TO = DEFAULT_SLURM_VERSION, "26.05"  # 24.11 (trixie) to 26.05 (sid): within Slurm's three-release window


@pytest.fixture(scope="module")
def stack(cluster, tmp_path_factory):
    s = StackCopy(STACK, "Pulumi.dist.yaml", tmp_path_factory.mktemp("dist-upgrade") / "Pulumi.dist.yaml")
    s.set("slurmVersion", FROM)
    s.set("authType", "auth/munge")  # 24.11's
    s.set("nodes", "1")
    with s.deployed(f"dist at Slurm {FROM}"):
        yield s


def on(pod: str, script: str, user: str = "") -> str:
    """`bash -c SCRIPT` in POD (as root, or as `user` from their home); its stdout."""
    cmd = ("runuser", "-u", user, "--", "bash", "-c", f"cd ~ && {script}") if user else ("bash", "-c", script)
    kube = Kube(NAMESPACE)
    return kube.exec(kube.pod(pod), *cmd, timeout=120).stdout


def records() -> dict[str, str]:
    """Every job accounting holds: id -> state (its first word: "CANCELLED by 0" reads "CANCELLED" after a restart)."""
    out = on(NODE, "timeout 20 sacct -a -X -n -P -S 2000-01-01 -o jobid,state")
    return {job: state.split()[0] for job, state in (line.split("|", 1) for line in out.split())}


def idle() -> bool:
    return on(NODE, "timeout 10 sinfo -h -N -o '%N %t'").split() == [NODE, "idle"]


def versions() -> dict[str, str]:
    """The release each daemon runs (major.minor)."""
    found = {"slurmctld": on(NODE, "timeout 10 scontrol show config | sed -n 's/^SLURM_VERSION *= *//p'"),
             "slurmdbd": on("dist-accounting-0", "slurmdbd -V"), "slurmd": on(NODE, "slurmd -V")}
    return {daemon: ".".join(text.split()[-1].split(".")[:2]) for daemon, text in found.items()}


def test_an_upgrade_keeps_every_accounting_record_and_the_queued_job(stack):
    wait_until(idle, 120, f"{NODE} idle")
    assert versions() == dict.fromkeys(("slurmctld", "slurmdbd", "slurmd"), FROM)
    done = on(NODE, "sbatch --parsable --wait -o /dev/null --wrap true", user=USER).split()[-1]
    held = on(NODE, "sbatch --parsable --hold -o held.%j --wrap 'id -un'", user=USER).strip()
    before = records()
    assert before[done] == "COMPLETED", before  # (a held job is not eligible: accounting may not have it yet)

    stack.set("slurmVersion", TO)
    stack.set("authType", "auth/munge")
    t0 = time.monotonic()
    stack.pulumi("up")
    TIMINGS[f"dist: pulumi up from Slurm {FROM} to {TO}"] = time.monotonic() - t0
    wait_until(idle, 120, f"{NODE} idle after the upgrade")
    assert versions() == dict.fromkeys(("slurmctld", "slurmdbd", "slurmd"), TO)
    restarted = {p.name for p in Kube(NAMESPACE).pods for c in p.status.get("containerStatuses", []) if c["restartCount"]}
    assert not restarted, f"crashed on the way (each daemon waits for the one it needs): {restarted}"
    kept = {job: state for job, state in records().items() if job in before}
    assert kept == before, "accounting lost or changed a record in the upgrade"
    reason = on(NODE, f"squeue -h -j {held} -o '%T %r'").strip()
    assert reason == "PENDING JobHeldUser", reason

    on(NODE, f"scontrol release {held}", user=USER)
    wait_until(lambda: records().get(held) == "COMPLETED", 60, f"job {held} COMPLETED", lambda: str(records()))
    assert on(NODE, f"cat held.{held}", user=USER).split() == [USER]
    after = on(NODE, "sbatch --parsable --wait -o /dev/null --wrap true", user=USER).split()[-1]
    assert records()[after] == "COMPLETED"
