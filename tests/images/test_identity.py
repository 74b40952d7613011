"""Each user is themselves in Slurm (issue 10), at image level: the user directory mounted as libnss-extrausers
files, one shared /home volume, user containers with no munge key that authenticate with a JWT (SLURM_JWT).

Real podman containers: slurm-single-node with the directory and /home, slurm-client containers started as the
user's uid (no root step, no key, no SLURM_CONF: the image contract of dockerfiles/README.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest

from components.directory import User
from components.slurm_files import SLURMRESTD_PORT, version_facts
from tests.images.directory_cluster import (
    CAROL_UID,
    DIRECTORY,
    JOB,
    MISMATCH,
    USERS,
    Cluster,
    write_directory,
)
from tests.images.slurm_containers import SingleNode
from tests.slurm_rest import SlurmRest, hs256_token

pytestmark = pytest.mark.containers

# What Slurm answers a submission for a name it cannot resolve (seen with Debian's packages).
UNKNOWN_USER_SBATCH = {"22.05": "Invalid user id",
                       "24.11": "Invalid account or account/partition combination specified",
                       "26.05": "Rejecting authentication of user nobody or group nobody"}
UNKNOWN_USER_REST = {"22.05": "Invalid account or account/partition combination specified",
                     "24.11": "Invalid account or account/partition combination specified",
                     "26.05": "Rejecting authentication of user nobody or group nobody"}
TOKEN_REFUSED = "token refused: Slurm does not accept the token in SLURM_JWT"


def submit_in_home(as_user, user: str, token: str, *sbatch_args: str, sub: str = "p"):
    """As `user`: mkdir ~/SUB, write h.sh there, cd there and sbatch it (the way a user does)."""
    return as_user(USERS[user], "bash", "-c", f"mkdir -p ~/{sub} && cd ~/{sub} && printf '%s' \"$JOB\" > h.sh"
                   f" && sbatch --parsable {' '.join(sbatch_args)} h.sh", token=token, env=(f"JOB={JOB}",))


def job_ids(node: SingleNode) -> set[str]:
    """Every job slurmctld (in any state) and slurmdbd know of, any user."""
    queued = node.exec("squeue", "-a", "-t", "all", "-h", "-o", "%i").stdout.split()
    accounted = node.exec("sacct", "-a", "-X", "-n", "-P", "-S", "2020-01-01", "-o", "JobID").stdout.split()
    return set(queued) | set(accounted)


# --- the user directory ------------------------------------------------------------------------------------
def test_directory_users_and_groups_resolve_in_both_images(cluster, as_user):
    p = as_user(USERS["alice"], "bash", "-c", "id; id bob; getent passwd alice; getent group physics")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "uid=2001(alice) gid=2001(alice) groups=2001(alice)",
        "uid=2002(bob) gid=2002(bob) groups=2002(bob),3000(physics)",
        "alice:x:2001:2001::/home/alice:/bin/bash", "physics:x:3000:alice,bob"], p.stdout
    out = cluster.node.exec("id", "alice").stdout.strip()
    assert out == "uid=2001(alice) gid=2001(alice) groups=2001(alice),3000(physics)", out
    # Control: without the directory the names are unknown, and the image's own users still resolve.
    p = as_user(USERS["alice"], "bash", "-c", "getent passwd alice; echo rc=$?; id -un 0", directory=False)
    assert p.stdout.split() == ["rc=2", "root"], p.stdout + p.stderr


def test_each_directory_user_gets_a_private_home(cluster):
    out = cluster.node.exec("stat", "-c", "%n %U %G %a", "/home/alice", "/home/bob").stdout.splitlines()
    assert out == ["/home/alice alice alice 700", "/home/bob bob bob 700"], out


def test_accounting_holds_the_directory_users(cluster):
    assocs = cluster.node.exec("sacctmgr", "-n", "-P", "show", "assoc", "format=account,user").stdout.split()
    assert {"users|alice", "users|bob", "root|root"} <= set(assocs), assocs
    assert not any(a.endswith("|carol") for a in assocs), assocs


def test_accounting_follows_the_directory_at_start(images, version, network):
    """A user gone from the directory, or added by hand, is gone from accounting at the next start; root stays."""
    c = Cluster(images["slurm-single-node"], version, network)
    try:
        c.node.start().wait_ready()
        c.node.exec("sacctmgr", "-i", "add", "user", "dave", "account=users")
        write_directory(c.directory, [User("ann", 2005, 2005), *DIRECTORY[1:]])
        c.node.stop()
        assert c.node.exit_code() == 0, c.node.logs()
        c.node.remove()
        again = SingleNode(c.node.name + "-b", c.node.image, c.node.files, network, c.node.volume,
                           run_args=c.node.run_args)
        c.node = again
        t0 = time.monotonic()
        again.start().wait_ready()
        print(f"restart to nodes idle {again.timings['nodes_idle']:.1f}s ({time.monotonic() - t0:.1f}s)")
        users = {a.split("|")[1] for a in again.exec("sacctmgr", "-n", "-P", "show", "assoc",
                                                      "format=account,user").stdout.split() if "|" in a}
        assert {"ann", "bob", "root"} <= users and not {"alice", "dave"} & users, users
        assert "added 1, removed 2" in again.logs(), again.logs()
        assert again.exec("stat", "-c", "%U %a", "/home/ann").stdout.strip() == "ann 700"
    finally:
        c.remove()


# --- unknown users are refused at submit ---------------------------------------------------------------------
def test_rest_submit_for_a_user_outside_the_directory_is_refused_and_leaves_no_job(cluster, version):
    node = cluster.node
    api_version = version_facts(version).rest_api_version
    before = job_ids(node)
    carol = SlurmRest(f"http://{node.ip}:{SLURMRESTD_PORT}", api_version, user="carol", token=node.token("root"))
    payload = {"job": {"name": "carol", "current_working_directory": "/tmp", "script": JOB,
                       "environment": ["PATH=/usr/bin:/bin"]}}
    if api_version == "v0.0.38":
        payload = {"job": {"name": "carol", "current_working_directory": "/tmp",
                           "environment": {"PATH": "/usr/bin:/bin"}}, "script": JOB}
    r = carol.request("POST", "job/submit", payload)
    print(f"REST submit as carol: HTTP {r.status_code} {r.text[:400]}")
    assert r.status_code >= 400, r.text
    errors = [e.get("error") for e in r.json().get("errors", [])]
    assert UNKNOWN_USER_REST[version] in errors, r.text
    assert job_ids(node) == before, "the refused submission left a job"
    # Control: the same call for a directory user is accepted and runs as that user.
    alice = SlurmRest(carol.base_url, api_version, user="alice", token=node.token("root"))
    job = alice.submit(JOB, name="alice-rest", cwd="/home/alice")
    node.wait_job(str(job), "COMPLETED")
    assert node.sacct(str(job), "User") == "alice"


def test_sbatch_with_a_token_for_a_user_outside_the_directory_is_refused(cluster, as_user, version):
    before = job_ids(cluster.node)
    p = as_user(CAROL_UID, "sbatch", "--parsable", "--wrap", "id", token=cluster.node.token("carol"))
    print(f"sbatch as carol: rc {p.returncode}: {p.stderr.strip()}")
    assert p.returncode != 0 and UNKNOWN_USER_SBATCH[version] in p.stderr, p.stdout + p.stderr
    assert job_ids(cluster.node) == before


# --- JWT-only user containers --------------------------------------------------------------------------------
def test_job_from_the_home_completes_as_the_user_with_its_output_there(cluster, as_user):
    p = submit_in_home(as_user, "alice", cluster.node.token("alice"))
    assert p.returncode == 0, p.stdout + p.stderr
    job = p.stdout.strip().split(";")[0]
    cluster.node.wait_job(job, "COMPLETED")
    p = as_user(USERS["alice"], "bash", "-c", f"stat -c '%U %a' ~/p/slurm-{job}.out && cat ~/p/slurm-{job}.out && "
                f"sacct -n -X -P -j {job} -o User,State", token=cluster.node.token("alice"))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "alice 644", lines
    assert lines[1].startswith("uid=2001(alice) gid=2001(alice)") and lines[2] == "/home/alice/p", lines
    assert lines[3] == "alice|COMPLETED", lines


def test_the_token_stays_out_of_the_jobs_environment(cluster, as_user):
    """sbatch exports the submitter's environment, SLURM_JWT included; the nodes' SPANK plugin (unset_jwt.c) drops it,
    so srun in the job authenticates with the node's munge and keeps working after the token expires. (Without the
    plugin the job prints the token and srun fails: "Zero Bytes were transmitted or received", seen on 24.11.)"""
    token = cluster.node.token("alice")
    p = as_user(USERS["alice"], "bash", "-c", "mkdir -p ~/env && cd ~/env && echo \"submitter: ${SLURM_JWT:+has}\" && "
                "sbatch --parsable --wrap 'echo \"job: ${SLURM_JWT:-none}\"; srun true && echo srun-ok'", token=token)
    assert p.returncode == 0 and p.stdout.startswith("submitter: has"), p.stdout + p.stderr  # control
    job = p.stdout.split()[-1].split(";")[0]
    cluster.node.wait_job(job, "COMPLETED")
    out = as_user(USERS["alice"], "cat", f"/home/alice/env/slurm-{job}.out", token=token).stdout
    assert out.splitlines() == ["job: none", "srun-ok"], out


def test_squeue_me_lists_only_ones_own_jobs(cluster, as_user):
    mine = {}
    for user in USERS:
        p = submit_in_home(as_user, user, cluster.node.token(user), "--hold", sub="q")
        assert p.returncode == 0, p.stderr
        mine[user] = p.stdout.strip().split(";")[0]
    try:
        for user in USERS:
            p = as_user(USERS[user], "squeue", "--me", "-h", "-o", "%i %u", token=cluster.node.token(user))
            assert p.returncode == 0, p.stderr
            assert p.stdout.split() == [mine[user], user], p.stdout
    finally:
        cluster.node.exec("scancel", *mine.values())


def test_another_users_job_cannot_be_cancelled_or_held(cluster, as_user):
    p = submit_in_home(as_user, "alice", cluster.node.token("alice"), "--begin=now+1hour", sub="c")
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip().split(";")[0]
    bob = cluster.node.token("bob")
    p = as_user(USERS["bob"], "scancel", job, token=bob)
    assert p.returncode != 0 and "Access/permission denied" in p.stderr, p.stdout + p.stderr
    p = as_user(USERS["bob"], "scontrol", "hold", job, token=bob)
    assert p.returncode != 0, p.stdout + p.stderr
    assert cluster.node.exec("squeue", "-h", "-j", job, "-o", "%T %r").stdout.strip() == "PENDING BeginTime"
    # Control: alice cancels her own.
    p = as_user(USERS["alice"], "scancel", job, token=cluster.node.token("alice"))
    assert p.returncode == 0, p.stderr
    cluster.node.wait_job(job, "CANCELLED")


@pytest.mark.parametrize("kind", ["other key", "expired"])
def test_a_bad_token_is_refused_with_a_message_about_the_token(cluster, as_user, kind):
    key = os.urandom(32) if kind == "other key" else cluster.node.files.jwt_key
    token = hs256_token(key, "alice", 600 if kind == "other key" else -60)
    before = job_ids(cluster.node)
    for cmd in (("sbatch", "--wrap", "id"), ("squeue", "--me"), ("sacct", "-X")):
        p = as_user(USERS["alice"], *cmd, token=token)
        assert p.returncode != 0, p.stdout
        assert TOKEN_REFUSED in p.stderr and MISMATCH not in p.stderr, f"{cmd}: {p.stderr}"
    assert job_ids(cluster.node) == before
    # Control: the same token made with the cluster's key and a future expiry is accepted.
    p = as_user(USERS["alice"], "squeue", "--me", token=hs256_token(cluster.node.files.jwt_key, "alice", 600))
    assert p.returncode == 0, p.stderr


# --- slurm-wrapper in JWT mode -------------------------------------------------------------------------------
@pytest.fixture
def slurm_token_dir():
    """A directory for a `slurm-token` command put on PATH (the contract: token on stdout, or stderr + exit 1)."""
    d = tempfile.mkdtemp(prefix="sci-slurm-token-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_slurm_token(d: str, body: str):
    path = os.path.join(d, "slurm-token")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)


PATH_WITH_TOKEN = "PATH=/opt/token:/usr/local/bin:/usr/bin:/bin"


def test_wrapper_takes_the_token_from_slurm_token(cluster, as_user, slurm_token_dir):
    write_slurm_token(slurm_token_dir, f"echo {cluster.node.token('alice')}\n")
    p = as_user(USERS["alice"], "bash", "-c", "cd ~ && sbatch --parsable --wrap id && squeue --me -h -o %u",
                env=(PATH_WITH_TOKEN,), mounts=((slurm_token_dir, "/opt/token"),))
    assert p.returncode == 0, p.stderr
    job, user = p.stdout.split()
    assert user == "alice"
    cluster.node.wait_job(job.split(";")[0], "COMPLETED")


def test_wrapper_stops_with_slurm_tokens_message_when_it_fails(cluster, as_user, slurm_token_dir):
    write_slurm_token(slurm_token_dir, "echo 'slurm-token: no token: log in again' >&2\nexit 1\n")
    before = job_ids(cluster.node)
    p = as_user(USERS["alice"], "sbatch", "--wrap", "id", env=(PATH_WITH_TOKEN,),
                mounts=((slurm_token_dir, "/opt/token"),))
    assert p.returncode == 1 and p.stderr.strip() == "slurm-token: no token: log in again", p.stderr
    assert job_ids(cluster.node) == before


def test_without_token_or_slurm_token_the_wrapper_says_to_set_slurm_jwt(as_user):
    p = as_user(USERS["alice"], "squeue")
    assert p.returncode == 1 and "SLURM_JWT is not set" in p.stderr and MISMATCH not in p.stderr, p.stderr


@pytest.mark.parametrize("cmd", ["srun", "salloc"])
def test_interactive_commands_fail_at_once_pointing_to_sbatch(cluster, as_user, cmd):
    t0 = time.monotonic()
    p = as_user(USERS["alice"], cmd, "id", token=cluster.node.token("alice"), timeout=30)
    assert p.returncode == 1 and "interactive jobs need munge" in p.stderr and "sbatch" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 10
