"""The distributed deployment following the site's LDAP directory (issues 21 and 23), at image level: its roles
(distributed.sh accounting|controller|node, tests/images/distributed_cluster.py) in podman against a real OpenLDAP
server (tests/ldap_directory.py) over TLS, each with the directory volume the stack gives its pod with config `ldap`
(no static users, nslcd.conf and the CA).

Every role resolves the directory through its own nslcd; the accounting container gives the directory's users their
associations and the node container their homes (it mounts the shared home), both following users added and removed
without a restart; a directory user's job runs as them on the node and sacct names them. The figures (time from
adding a user to their association, home and first job) are printed: run with -s to see them.
"""

from __future__ import annotations

import time

import pytest

from tests.images.distributed_cluster import DistributedCluster, Role
from tests.images.slurm_containers import wait_until
from tests.ldap_directory import write_ldap_directory

pytestmark = pytest.mark.containers

LONG, LONG_UID = "christopher", 54321  # longer than 8 characters; a uid no image has
SYNC_S = 60  # a user added to (removed from) the directory has a home and association (loses it) within a minute


@pytest.fixture(scope="module")
def dist(images, version, network, ldap, tmp_path_factory):
    directory = tmp_path_factory.mktemp("directory")
    directory.chmod(0o755)
    write_ldap_directory(str(directory), ldap)
    c = DistributedCluster(images["slurm-single-node"], version, network, str(directory), run_args=ldap.add_host)
    try:
        c.start()
        yield c
    finally:
        c.remove()


def assocs(accounting: Role) -> set[str]:
    out = accounting.exec("timeout", "10", "sacctmgr", "-n", "-P", "show", "assoc", "format=account,user").stdout
    return set(out.split())


def home(node: Role, name: str) -> str:
    """`owner mode` of /home/NAME, or "" while there is none."""
    return node.exec("stat", "-c", "%U %a", f"/home/{name}", check=False).stdout.strip()


def submit_as(node: Role, uid: int, script: str) -> str:
    """sbatch as uid from their home on the node (its slurmd's fetched slurm.conf; munge authenticates them)."""
    out = node.exec("setpriv", f"--reuid={uid}", f"--regid={uid}", "--init-groups", "--reset-env", "bash", "-c",
                    "cd ~ && sbatch --parsable -o out-%j.txt", input=script).stdout
    return out.strip().split(";")[0]


def sacct(controller: Role, job: str) -> str:
    out = controller.exec("timeout", "10", "sacct", "-n", "-X", "-P", "-j", job, "-o", "User,State", check=False).stdout
    return out.strip().splitlines()[0] if out.strip() else ""


def wait_completed(dist: DistributedCluster, job: str) -> str:
    def done():
        s = sacct(dist.controller, job)
        assert not s.endswith(("FAILED", "CANCELLED", "NODE_FAIL", "TIMEOUT")), f"job {job}: {s}\n{dist.logs()}"
        return s.endswith("COMPLETED") and s
    return wait_until(done, 60, f"job {job} COMPLETED in sacct", dist.logs)


def test_every_role_resolves_the_directory_through_its_own_nslcd(dist):
    for role in dist.roles():
        assert role.exec("id", "-u", LONG).stdout.strip() == str(LONG_UID), role.name
        assert role.exec("pgrep", "-x", "nslcd", check=False).returncode == 0, role.name
    # Control: the name is the directory's alone (no file knows it), and a name it lacks is unknown.
    node = dist.nodes[0]
    assert node.exec("getent", "-s", "files", "passwd", LONG, check=False).returncode == 2
    assert node.exec("getent", "passwd", "mallory", check=False).returncode == 2


def test_the_directory_users_get_associations_in_accounting_and_homes_on_the_node(dist):
    assert {"users|alice", f"users|{LONG}"} <= assocs(dist.accounting)
    node = dist.nodes[0]
    assert home(node, LONG) == f"{LONG} 700" and home(node, "alice") == "alice 700"
    assert node.exec("stat", "-c", "%U %a", "/home").stdout.strip() == "root 755"
    # Homes are the node pods' (they mount the shared home), associations the accounting pod's: neither elsewhere.
    assert dist.accounting.exec("test", "-e", f"/home/{LONG}", check=False).returncode != 0
    assert "directory-sync" not in dist.controller.exec("ls", "/var/log/slurm").stdout


def test_a_directory_users_job_runs_as_them_on_the_node_and_sacct_names_them(dist):
    node = dist.nodes[0]
    job = submit_as(node, LONG_UID, "#!/bin/bash\nid -un\nid -u\npwd\n")
    assert wait_completed(dist, job) == f"{LONG}|COMPLETED"
    assert node.exec("cat", f"/home/{LONG}/out-{job}.txt").stdout.split() == [LONG, str(LONG_UID), f"/home/{LONG}"]
    assert node.exec("stat", "-c", "%U", f"/home/{LONG}/out-{job}.txt").stdout.strip() == LONG


def test_a_user_added_gets_an_association_and_a_home_within_a_minute_and_loses_the_association_when_removed(
        dist, ldap):
    node, accounting = dist.nodes[0], dist.accounting
    # Control: before they are added, dave is nobody anywhere.
    assert "users|dave" not in assocs(accounting) and home(node, "dave") == ""
    assert node.exec("id", "dave", check=False).returncode != 0
    t0 = time.monotonic()
    ldap.add_user("dave", 10004, ("hpcusers",))
    try:
        accounting.wait_for(lambda: "users|dave" in assocs(accounting), "dave's association", SYNC_S)
        associated = time.monotonic() - t0
        node.wait_for(lambda: home(node, "dave") == "dave 700", "dave's home on the node", SYNC_S)
        homed = time.monotonic() - t0
        job = submit_as(node, 10004, "#!/bin/bash\nid -un\n")
        assert wait_completed(dist, job) == "dave|COMPLETED"
        print(f"\nuser added: association after {associated:.1f} s, home after {homed:.1f} s, "
              f"first job COMPLETED after {time.monotonic() - t0:.1f} s")
    finally:
        t1 = time.monotonic()
        ldap.remove_user("dave")
    accounting.wait_for(lambda: "users|dave" not in assocs(accounting), "dave's association to go", SYNC_S)
    print(f"user removed: association gone after {time.monotonic() - t1:.1f} s")
    assert {"users|alice", f"users|{LONG}"} <= assocs(accounting)  # control: only dave went
    assert node.exec("stat", "-c", "%u %a", "/home/dave").stdout.split() == ["10004", "700"], \
        "a home is never taken away (the user's files)"
