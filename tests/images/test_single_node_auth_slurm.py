"""slurm-single-node with AuthType=auth/slurm (config authType, issue 21): Slurm's own authentication with the stack's
slurm.key, no munged. Only where this project runs it (Slurm 25.05+: 26.05).

The container gets what the stack's pod gets: the files rendered with auth_type auth/slurm, /etc/slurm-keys/slurm.key
(root's, 0400) and the JWT key, the user directory and /home. Its daemons serve the container's commands their
credentials (slurmd's, slurmctld's and slurmdbd's sack sockets), so users' commands and jobs work without reading
the key, which is SlurmUser's alone. The distributed deployment runs it in its pods: tests/e2e/test_10_distributed.py.
"""

import pytest

from components.slurm_files import AUTH_SLURM
from tests.images.directory_cluster import Cluster
from tests.images.slurm_containers import auth_slurm_only

pytestmark = [pytest.mark.containers, auth_slurm_only()]
SOCKETS = ("/run/slurm/sack.socket", "/run/slurmctld/sack.socket", "/run/slurmdbd/sack.socket")


@pytest.fixture(scope="module")
def cluster(images, version, network):
    c = Cluster(images["slurm-single-node"], version, network, nodes=2, auth_type=AUTH_SLURM)
    try:
        c.node.start().wait_ready()
        yield c
    finally:
        c.remove()


def as_user(cluster, user: str, script: str):
    return cluster.node.exec("runuser", "-u", user, "--", "bash", "-c", f"cd; {script}", check=False, timeout=60)


def test_no_munged_and_the_key_is_slurmusers_alone(cluster):
    node = cluster.node
    procs = set(node.exec("bash", "-c", "cat /proc/[0-9]*/comm 2>/dev/null || true").stdout.split())
    assert "munged" not in procs and {"slurmctld", "slurmdbd", "slurmd"} <= procs, procs
    assert node.exec("stat", "-c", "%U:%G %a", "/etc/slurm/slurm.key").stdout.strip() == "slurm:slurm 600"
    assert node.exec("cmp", "/etc/slurm/slurm.key", f"/etc/slurm-keys/{node.files.key_file}", check=False).returncode == 0
    assert node.exec("test", "-e", "/etc/munge/munge.key", check=False).returncode != 0, "no munge key either"
    p = node.exec("stat", "-c", "%n %F", *SOCKETS)
    assert p.stdout.split("\n")[:3] == [f"{s} socket" for s in SOCKETS], p.stdout


def test_alices_two_node_job_from_her_home_runs_as_her(cluster):
    """Her sbatch gets its credential from a daemon's socket; the job's srun, as her, from slurmd's; cred/slurm signs
    the steps' launch on both nodes."""
    p = as_user(cluster, "alice", "sbatch --parsable -N2 -o auth-slurm-%j.out "
                                  "--wrap 'id -un; srun -N2 printenv SLURMD_NODENAME | sort'")
    assert p.returncode == 0, p.stdout + p.stderr
    job = p.stdout.strip().split(";")[0]
    cluster.node.wait_job(job, "COMPLETED", timeout=90)
    out = cluster.node.exec("cat", f"/home/alice/auth-slurm-{job}.out").stdout.split()
    assert out == ["alice", "c1", "c2"], out
    p = as_user(cluster, "alice", f"sacct -n -X -P -j {job} -o User,State,NNodes")
    assert p.stdout.strip() == "alice|COMPLETED|2", p.stdout + p.stderr


def test_a_user_cannot_read_the_key_nor_act_on_anothers_job(cluster):
    """bob's credential says bob (the socket's daemon signs the caller's uid): slurmctld refuses him alice's job."""
    for path in ("/etc/slurm/slurm.key", f"/etc/slurm-keys/{cluster.node.files.key_file}"):
        p = as_user(cluster, "bob", f"cat {path}")
        assert p.returncode != 0 and "Permission denied" in p.stderr and not p.stdout, (path, p.stdout, p.stderr)
    p = as_user(cluster, "alice", "sbatch --parsable -o /dev/null --wrap 'sleep 300'")
    job = p.stdout.strip().split(";")[0]
    try:
        cluster.node.wait_for(lambda: cluster.node.exec("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "RUNNING",
                              f"alice's job {job} running")
        p = as_user(cluster, "bob", f"scancel {job}")
        assert p.returncode != 0 and "Access/permission denied" in p.stderr, (p.returncode, p.stdout, p.stderr)
        assert cluster.node.exec("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() == "RUNNING"
    finally:
        # Control: root may, so bob's refusal is slurmctld's judgement of who he is.
        cluster.node.exec("scancel", job)
    cluster.node.wait_job(job, "CANCELLED", timeout=60)
