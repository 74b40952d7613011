"""The site's LDAP directory as the source of users (issue 23), at image level: a real OpenLDAP server
(tests/ldap_directory.py) and slurm-single-node resolving it through nslcd with the nslcd.conf the stack renders
(components/ldap.py), over TLS with a test CA made at start; the static directory empty, as config `ldap` requires.

The single node resolves the directory's users (a name longer than 8 characters, a uid no image has), runs their jobs
as them, makes their homes and associations, follows users added and removed without a restart, and keeps working,
with lookups answered within seconds, while slapd is down. The figures (lookup times, time from adding a user to the
association) are printed: run with -s to see them.
"""

from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest

from components.slurm_files import SLURMRESTD_PORT, version_facts
from tests.images.directory_cluster import Cluster
from tests.images.slurm_containers import SingleNode, podman, wait_until
from tests.ldap_directory import GROUPS, LdapDirectory, write_ldap_directory
from tests.slurm_rest import SlurmRest

pytestmark = pytest.mark.containers

LONG = "christopher"  # longer than 8 characters; uid 54321, which no image has
LONG_UID = 54321
LOOKUP_UP_S = 1.0  # a lookup with the directory up
LOOKUP_DOWN_S = 5.0  # with slapd down: bounded by nslcd's timeouts (components/ldap.py), not minutes
SYNC_S = 60  # a user added to (removed from) the directory has a home and association (loses it) within a minute
# (removed: two consecutive listings must lack them, DIRECTORY_SYNC_S 15 apart: directory.sh)


@pytest.fixture(scope="module")
def ldap_cluster(images, version, network, ldap):
    c = Cluster(images["slurm-single-node"], version, network)
    write_ldap_directory(c.directory, ldap)
    c.node.run_args += ldap.add_host
    try:
        c.node.start().wait_ready()
        yield c
    finally:
        c.remove()


def timed(node: SingleNode, *cmd: str, timeout: float = 60):
    t0 = time.monotonic()
    p = node.exec(*cmd, check=False, timeout=timeout)
    return p, time.monotonic() - t0


def assocs(node: SingleNode) -> set[str]:
    return set(node.exec("timeout", "10", "sacctmgr", "-n", "-P", "show", "assoc", "format=account,user").stdout.split())


def submit_as(node: SingleNode, uid: int, script: str, *args: str) -> str:
    """sbatch as uid (munge authenticates the submitter), from its home."""
    out = node.exec("setpriv", f"--reuid={uid}", f"--regid={uid}", "--init-groups", "--reset-env", "bash", "-c",
                    f"cd ~ && sbatch --parsable {' '.join(args)}", input=script).stdout
    return out.strip().split(";")[0]


def test_directory_users_and_groups_resolve_with_their_directory_ids(ldap_cluster):
    node = ldap_cluster.node
    p, seconds = timed(node, "bash", "-c", f"getent passwd {LONG}; id {LONG}; getent group physics; id -un 10001")
    assert p.returncode == 0, p.stdout + p.stderr + node.logs()
    passwd, ids, group, name = p.stdout.splitlines()
    assert passwd == f"{LONG}:*:{LONG_UID}:{LONG_UID}:{LONG}:/home/{LONG}:/bin/bash"  # no password from nslcd
    assert ids == (f"uid={LONG_UID}({LONG}) gid={LONG_UID}({LONG}) groups={LONG_UID}({LONG}),"
                   f"{GROUPS['physics']}(physics),{GROUPS['hpcusers']}(hpcusers)")
    assert group.startswith(f"physics:*:{GROUPS['physics']}:") and set(group.split(":")[3].split(",")) == {"alice", LONG}
    assert name == "alice"
    p, seconds = timed(node, "getent", "passwd", LONG)
    print(f"\nlookup with the directory up: {seconds * 1000:.0f} ms (podman exec included)")
    assert seconds < LOOKUP_UP_S
    # Control: a name the directory does not have is unknown; the image's own users still come from its files.
    assert node.exec("getent", "passwd", "mallory", check=False).returncode == 2
    assert node.exec("getent", "passwd", "slurm").stdout.startswith("slurm:x:")


def test_a_directory_entry_never_becomes_root_or_an_image_user(ldap_cluster, ldap):
    node = ldap_cluster.node
    assert node.exec("getent", "passwd", "toor", check=False).returncode == 2  # uid 0: below nss_min_uid
    assert node.exec("id", "-un", "0").stdout.strip() == "root"
    munge = node.exec("getent", "passwd", "munge").stdout.split(":")
    assert munge[2] != "10666", munge  # the image's munge, not the directory's
    assert node.exec("test", "-e", "/home/munge", check=False).returncode != 0
    assert not {a for a in assocs(node) if a.endswith(("|munge", "|toor"))}
    # Control: the directory does hold both entries.
    assert "uidNumber: 10666" in ldap.search("(uid=munge)").stdout
    assert "uidNumber: 0" in ldap.search("(uid=toor)").stdout


def test_each_directory_user_has_a_private_home_and_an_association(ldap_cluster):
    node = ldap_cluster.node
    out = node.exec("stat", "-c", "%n %U %a", "/home/alice", f"/home/{LONG}").stdout.splitlines()
    assert out == ["/home/alice alice 700", f"/home/{LONG} {LONG} 700"], out
    assert {"users|alice", "users|bob", f"users|{LONG}", "users|eve"} <= assocs(node)


def test_a_directory_users_job_runs_as_them_and_sacct_names_them(ldap_cluster):
    node = ldap_cluster.node
    job = submit_as(node, LONG_UID, "#!/bin/bash\nid -un\npwd\n", "-o", "out-%j.txt")
    node.wait_job(job)
    assert node.sacct(job, "User,State") == f"{LONG}|COMPLETED"
    out = node.exec("cat", f"/home/{LONG}/out-{job}.txt").stdout.split()
    assert out == [LONG, f"/home/{LONG}"], out
    assert node.exec("stat", "-c", "%U", f"/home/{LONG}/out-{job}.txt").stdout.strip() == LONG


def test_a_user_added_to_the_directory_gets_a_home_and_association_within_a_minute_and_loses_it_when_removed(
        ldap_cluster, ldap):
    node = ldap_cluster.node
    # Control: before they are added, dave is nobody here.
    assert node.exec("id", "dave", check=False).returncode != 0
    assert "users|dave" not in assocs(node)
    t0 = time.monotonic()
    ldap.add_user("dave", 10004, ("hpcusers",))
    try:
        wait_until(lambda: node.exec("id", "-u", "dave", check=False).stdout.strip() == "10004", 10,
                   "dave to resolve")
        resolved = time.monotonic() - t0
        node.wait_for(lambda: "users|dave" in assocs(node), "dave's association", SYNC_S)
        associated = time.monotonic() - t0
        assert node.exec("stat", "-c", "%U %a", "/home/dave").stdout.strip() == "dave 700"
        job = submit_as(node, 10004, "#!/bin/bash\nid -un\n", "-o", "out-%j.txt")
        node.wait_job(job)
        completed = time.monotonic() - t0
        assert node.sacct(job, "User") == "dave"
        print(f"\nuser added: resolves after {resolved:.1f} s, association after {associated:.1f} s, "
              f"first job COMPLETED after {completed:.1f} s")
    finally:
        t1 = time.monotonic()
        ldap.remove_user("dave")
    node.wait_for(lambda: "users|dave" not in assocs(node), "dave's association to go", SYNC_S)
    print(f"user removed: association gone after {time.monotonic() - t1:.1f} s")
    assert node.exec("id", "dave", check=False).returncode != 0
    assert "users|alice" in assocs(node)  # control: only dave went


def test_every_directory_users_home_is_under_the_home_root_whatever_the_entry_says(ldap_cluster, ldap):
    """nslcd.conf maps homeDirectory to /home/<uid> (components/ldap.py): where the hub mounts the home and the image
    makes it. frank's entry says /u/frank (a site's own layout); trudy's says alice's home."""
    node = ldap_cluster.node
    ldap.add_user("frank", 10007, home="/u/frank")
    ldap.add_user("trudy", 10008, home="/home/alice")
    try:
        # Control: the directory does say so.
        assert "homeDirectory: /u/frank" in ldap.search("(uid=frank)", "homeDirectory").stdout
        assert "homeDirectory: /home/alice" in ldap.search("(uid=trudy)", "homeDirectory").stdout
        wait_until(lambda: node.exec("getent", "passwd", "frank", "trudy", check=False).returncode == 0, 10,
                   "frank and trudy to resolve")
        homes = [line.split(":")[5] for line in node.exec("getent", "passwd", "frank", "trudy").stdout.splitlines()]
        assert homes == ["/home/frank", "/home/trudy"], homes
        node.wait_for(lambda: {"users|frank", "users|trudy"} <= assocs(node), "frank's and trudy's associations",
                      SYNC_S)
        node.wait_for(lambda: node.exec("test", "-d", "/home/trudy", check=False).returncode == 0, "trudy's home",
                      SYNC_S)
        out = node.exec("stat", "-c", "%n %U %a", "/home/frank", "/home/trudy", "/home/alice").stdout.splitlines()
        assert out == ["/home/frank frank 700", "/home/trudy trudy 700", "/home/alice alice 700"], out
        assert node.exec("test", "-e", "/u", check=False).returncode != 0
    finally:
        ldap.remove_user("frank")
        ldap.remove_user("trudy")


@contextmanager
def slurmrestd_with(images, cluster: Cluster, directory: str, ldap: LdapDirectory) -> Iterator[str]:
    """slurm-client's slurmrestd (behind its gate) against the cluster, with `directory` as its directory volume;
    yields (container name, base URL)."""
    node, files = cluster.node, cluster.node.files
    name = f"{node.name}-restd-{uuid.uuid4().hex[:4]}"
    podman("run", "-d", "--no-healthcheck", "--name", name, "--network", node.network,
           "--add-host", f"{files.controller_host}:{node.ip}", *ldap.add_host,
           "-v", f"{files.client_config}:/etc/slurm-config:ro", "-v", f"{files.client_keys}:/etc/slurm-keys:ro",
           "-v", f"{directory}:/var/lib/extrausers:ro", images["slurm-client"])
    try:
        ip = podman("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{node.network}").IPAddress}}}}',
                    name).stdout.strip()
        yield name, f"http://{ip}:{SLURMRESTD_PORT}"
    finally:
        podman("rm", "-f", "-t", "3", name, check=False)


def test_slurmrestd_resolves_the_directory_and_runs_a_directory_users_job_as_them(images, version, ldap_cluster,
                                                                                   ldap, tmp_path):
    node = ldap_cluster.node
    api = version_facts(version).rest_api_version
    with slurmrestd_with(images, ldap_cluster, ldap_cluster.directory, ldap) as (name, url):
        rest = SlurmRest(url, api, user=LONG, token=node.token(LONG))
        wait_until(rest.ping, 30, "slurmrestd to answer", lambda: podman("logs", name, check=False).stderr)
        assert podman("exec", name, "id", "-u", LONG).stdout.strip() == str(LONG_UID)
        job = rest.submit("#!/bin/bash\nid -un\n", name="ldap-rest", cwd=f"/home/{LONG}")
        node.wait_job(str(job))
        assert node.sacct(str(job), "User") == LONG
    # Control: the same container without nslcd.conf does not know the directory's users.
    (tmp_path / "passwd").write_text("")
    (tmp_path / "group").write_text("")
    os.chmod(tmp_path, 0o755)
    with slurmrestd_with(images, ldap_cluster, str(tmp_path), ldap) as (name, url):
        rest = SlurmRest(url, api, user=LONG, token=node.token(LONG))
        wait_until(lambda: rest.request("GET", "ping").status_code < 500, 30, "slurmrestd to answer")
        assert podman("exec", name, "id", "-u", LONG, check=False).returncode != 0


def test_with_the_directory_down_lookups_return_within_seconds_and_slurm_keeps_running(ldap_cluster, ldap):
    node = ldap_cluster.node
    ldap.stop_slapd()
    try:
        times = []
        for _ in range(3):
            p, seconds = timed(node, "getent", "passwd", LONG)
            times.append(seconds)
            assert p.returncode == 2
        print(f"\nlookups with slapd down: {', '.join(f'{s:.2f} s' for s in times)}")
        assert max(times) < LOOKUP_DOWN_S, times
        p, seconds = timed(node, "id", "slurm")
        assert p.returncode == 0 and seconds < 1, (p.stdout, seconds)
        # Slurm goes on: nodes answer, root's job runs, and no directory user loses their association to the sync.
        assert node.nodes_idle()
        node.wait_job(node.sbatch("--wrap", "true"))
        # A listing of the directory while it is down (its warning in the sync's log) takes no association away.
        def listings_down() -> int:
            return node.exec("cat", "/var/log/slurm/directory-sync.out", check=False).stdout.count(
                "WARNING: the directory lists no user")
        before = listings_down()
        node.wait_for(lambda: listings_down() > before, "a listing while slapd is down", 40)
        assert {"users|alice", f"users|{LONG}"} <= assocs(node)
    finally:
        ldap.start_slapd()
    t0 = time.monotonic()
    node.wait_for(lambda: node.exec("getent", "passwd", LONG, check=False).returncode == 0,
                  "the directory's users to resolve again", 30)
    print(f"slapd back: resolves again after {time.monotonic() - t0:.1f} s")
    assert node.status() == "running"
