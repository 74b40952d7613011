"""Scenario 11: the site's LDAP directory as the one source of users (config `ldap`, issue 23), for real: a slapd
(tests/ldap_directory.py) on the network of an outside site (tests/site_cluster.py, whose hosts resolve it and which
admitted its users itself), reached by the pods over ldaps:// at its address with the test CA. Three stacks in turn,
each with that directory in a copy of its config instead of a list of users, deployed and destroyed here; the hubs run
from the stacks' chart values (tests/e2e/hub_deployment.py) with the program's LDAPAuthenticator and spawn hook.

TestSingleNode, the `ldap` stack (Pulumi.ldap.yaml, namespace slurm-ldap, beside `cluster`):
- alice logs in with her directory password (a wrong one, a user outside the login group and an unknown one do not);
  her server runs as her directory uid, gid and groups, and knows her by name;
- her job, written and submitted from ~/p in her server's terminal, runs as her on the stack's Slurm, and sacct names
  her; her home is hers, mode 0700; JupyterLab runs as christopher (jupyter.user), without the bind password;
- the directory's hostile entries (an image user's name, uid 0) are nobody in the Slurm pod: no home, no association;
- a user added to the directory after `pulumi up` logs in and completes a job, without another `pulumi up` (timed);
- a user removed from the directory gets 403 from the token service at once, and loses the association;
- the directory down while users work: a login fails with a page that says so, running servers go on, a job
  running when it goes completes, lookups in the Slurm pod answer within seconds; back, logins work again.
TestSite, the `site` stack (tests/e2e/site_stack.py): a hub user's job runs on the outside site as their directory
uid, and the site's sacct names them.
TestDistributed, the `dist` stack (Pulumi.dist.yaml): every Slurm pod resolves the directory; a directory user's job
runs as them from their home (0700, theirs, made by the node pods); a user added gets an association and a home and
runs a job, without `pulumi up` (timed); removed, they lose the association.

Run alone: `.venv/bin/python -m pytest tests/e2e/test_11_ldap.py` (the `cluster` fixture runs `toolchain/kube up`).
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

import pytest

from components import ldap as ldap_files
from components.image_facts import FACTS
from components.jupyterhub import HubLdap
from tests.e2e.deployment import TIMINGS, Deployment, StackCopy
from tests.e2e.dist_stack import NODES, Dist
from tests.e2e.dist_stack import STACK as DIST_STACK
from tests.e2e.hub_deployment import (
    HubUser,
    chart_values,
    crash_check,
    hub_images,
    hub_logs,
    in_pod,
    job_script,
    running_hub,
    single_node_egress,
    start_and_time,
)
from tests.e2e.kube import Kube
from tests.e2e.site_stack import STACK as SITE_STACK
from tests.e2e.site_stack import SiteStack, site_home_volume
from tests.hub_egress import hub_users_egress
from tests.images.slurm_containers import wait_until
from tests.ldap_directory import LOGIN_GROUP, LdapDirectory
from tests.project_env import pulumi
from tests.site_cluster import SiteCluster

pytestmark = pytest.mark.e2e

STACK = "ldap"
NAMESPACE = "slurm-ldap"  # Pulumi.ldap.yaml
SYNC_LOG = next(f.value for f in FACTS if f.name == "LOG_DIR") + "/directory-sync.out"  # the single node's listing of the directory (directory.sh)


@pytest.fixture(scope="module")
def site(cluster):
    """The outside site (tests/site_cluster.py) with the site's directory on its network: slapd over ldaps://,
    which the pods reach through this machine as they reach the site's daemons, at an address its test certificate
    names; the site's hosts resolve it, and the site admitted its users (homes, associations) at boot."""
    with SiteCluster(ldap=LdapDirectory(tls=True)) as s:
        yield s


def hub_ldap(directory: LdapDirectory) -> HubLdap:
    """What config `ldap` gives the hub for `directory` (components.jupyterhub.hub_ldap_of)."""
    settings = ldap_files.Settings(uri=directory.ip_uri, base_dn=directory.base, bind_dn=directory.bind_dn,
                                   ca=open(directory.ca_cert).read())
    return HubLdap(settings=settings, bind_password=directory.bind_password, login_group=LOGIN_GROUP)


def set_ldap(set_config, directory: LdapDirectory) -> None:
    """Config `ldap` for `directory`, through a stack's `pulumi config set`."""
    set_config("--path", "ldap.uri", directory.ip_uri)
    set_config("--path", "ldap.baseDn", directory.base)
    set_config("--path", "ldap.bindDn", directory.bind_dn)
    set_config("--path", "ldap.caFile", directory.ca_cert)
    set_config("--path", "ldap.loginGroup", LOGIN_GROUP)
    set_config("--path", "ldap.bindPassword", directory.bind_password, secret=True)


class LdapStack(Deployment, StackCopy):
    """The `ldap` stack on a copy of Pulumi.ldap.yaml pointed at `directory`."""

    def __init__(self, directory: LdapDirectory, config):
        Deployment.__init__(self, Kube(NAMESPACE))
        StackCopy.__init__(self, STACK, "Pulumi.ldap.yaml", config)
        self.ldap = directory
        set_ldap(self.set, directory)

    def in_slurm(self, script: str, check: bool = True, timeout: float = 60):
        return self.kube.exec(self.slurm, "bash", "-c", script, check=check, timeout=timeout)


@pytest.fixture(scope="class")
def stack(site, tmp_path_factory):
    s = LdapStack(site.ldap, tmp_path_factory.mktemp("ldap-stack") / "Pulumi.ldap.yaml")
    with s.deployed("ldap"):
        yield s


@pytest.fixture(scope="class")
def images(stack):
    return hub_images(stack)


@pytest.fixture(scope="class")
def hub(stack, images):
    token_url = pulumi("stack", "output", "slurmTokenUrl", stack=STACK).stdout.strip()
    values = chart_values(stack, images["notebook"], token_url, egress=single_node_egress(stack),
                          hub_ldap=hub_ldap(stack.ldap))
    assert "SharedPasswordAuthenticator" not in json.dumps(values["hub"]["config"]), "no generated password"
    with running_hub(stack, images, values) as url:
        yield url


def login_and_start(stack, hub, name: str, what: str) -> HubUser:
    user = HubUser(hub, name)
    password = dir_user(stack, name).login_password
    TIMINGS[f"JupyterHub login to {name}'s server ready ({what})"] = start_and_time(
        user, password, crash_check(stack, name), logs=hub_logs(stack))
    return user


def submit_from_home(stack, name: str, job: str, seconds: int = 0) -> str:
    """A job script (running for `seconds` more) written in ~/p and submitted from there in NAME's terminal with
    their Slurm JWT; its id."""
    script = (job_script(job) + f"sleep {seconds}\n").replace("'", "'\\''")
    out = in_pod(stack, name, f"mkdir -p ~/p && cd ~/p && printf '%s' '{script}' > {job}.sh && "
                 f"SLURM_JWT=$(slurm-token) sbatch --parsable {job}.sh").stdout.strip()
    return out.split(";")[0]


@pytest.fixture(scope="class")
def alice(stack, hub):
    user = login_and_start(stack, hub, "alice", "directory")
    yield user
    user.hub_api("DELETE", "/users/alice/server")


def dir_user(stack, name: str):
    return next(u for u in stack.ldap.users if u.name == name)


class TestSingleNode:
    """The `ldap` stack: the stack's own Slurm (the single node), JupyterLab, the token service and the hub."""

    def test_only_the_directorys_login_group_logs_in_with_their_own_password(self, stack, hub):
        alice = HubUser(hub, "alice")
        assert alice.login(secrets.token_hex(8)).status_code == 403  # a wrong password
        eve = HubUser(hub, "eve")  # in the directory, not in the login group
        assert eve.login(dir_user(stack, "eve").login_password).status_code == 403
        assert HubUser(hub, "carol").login("carol-pw").status_code == 403  # not in the directory
        assert alice.login(dir_user(stack, "alice").login_password).status_code == 302  # the control

    def test_her_server_runs_as_her_directory_ids_and_knows_her_by_name(self, stack, alice):
        want = dir_user(stack, "alice")
        pod = stack.kube.pod("jupyter-alice")
        security = pod.spec["securityContext"] | pod.spec["containers"][0]["securityContext"]  # as the container runs
        assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (want.uid, want.uid, want.uid)
        assert set(security["supplementalGroups"]) == {stack.ldap.groups[g] for g in want.groups}, security
        ident = in_pod(stack, "alice", "id").stdout.strip()
        assert ident.startswith(f"uid={want.uid}(alice) gid={want.uid}(alice)"), ident
        for group in want.groups:
            assert f"({group})" in ident, ident
        assert "nslcd" not in json.dumps(pod.spec) and stack.ldap.bind_password not in json.dumps(pod.spec)

    def test_her_job_from_her_home_runs_as_her_and_sacct_names_her(self, stack, alice):
        job = f"ldap-{secrets.token_hex(2)}"
        job_id = submit_from_home(stack, "alice", job)
        stack.wait_job(job_id)
        assert stack.sacct(job_id, "User,WorkDir") == "alice|/home/alice/p"
        out = in_pod(stack, "alice", f"cat ~/p/{job}-{job_id}.out").stdout
        assert "as alice in /home/alice/p" in out, out
        uid = dir_user(stack, "alice").uid
        assert stack.in_slurm("stat -c '%u %a' /home/alice").stdout.split() == [str(uid), "700"]

    def test_jupyterlab_runs_as_a_directory_user_without_the_directorys_password(self, stack):
        lab, want = stack.jupyter, dir_user(stack, "christopher")  # Pulumi.ldap.yaml jupyter.user
        assert stack.lab_user == want.name
        ident = stack.kube.exec(lab, "id", user=want.name).stdout
        assert ident.startswith(f"uid={want.uid}(christopher) gid={want.uid}(christopher)"), ident
        job_id = stack.sbatch(lab, job_script("lab"), workdir="p")
        stack.wait_job(job_id)
        assert stack.sacct(job_id, "User,WorkDir") == "christopher|/home/christopher/p"
        # The directory's password is in the nslcd sidecar's Secret alone, not in JupyterLab's container.
        where = ("/etc", "/run", "/var/lib/extrausers", "/home", "/usr/local", "/proc/1/environ")
        found = stack.kube.exec(lab, "grep", "-rlF", stack.ldap.bind_password, *where, check=False)
        assert found.returncode == 1 and not found.stdout, found
        assert stack.kube.exec(lab, "ls", "/var/lib/extrausers").stdout.split() == ["group", "passwd"]
        control = stack.kube.kubectl("exec", lab.name, "-c", "nslcd", "--", "grep", "-rlF", stack.ldap.bind_password,
                                     "/etc").stdout.split()
        assert "/etc/nslcd.conf" in control, control

    def test_the_directorys_hostile_entries_are_nobody_in_slurm(self, stack):
        # munge (10666) has an image user's name: NSS answers the image's own munge first; toor has uid 0, which nslcd
        # never resolves (nss_min_uid). Neither gets a home or an association; christopher does (the control).
        munge = stack.in_slurm("getent passwd munge").stdout.split(":")
        assert munge[0] == "munge" and munge[2] != "10666", munge
        assert stack.in_slurm("getent passwd toor", check=False).returncode == 2
        homes = stack.in_slurm("ls /home").stdout.split()
        associations = stack.in_slurm("sacctmgr -n -P show assoc format=user").stdout.split()
        for name in ("munge", "toor"):
            assert name not in homes and name not in associations, (homes, associations)
        assert "christopher" in homes and "christopher" in associations

    def test_a_user_added_to_the_directory_runs_a_job_without_pulumi_up(self, stack, hub):
        t0 = time.monotonic()
        stack.ldap.add_user("dave", 10004, groups=(LOGIN_GROUP,))
        dave = login_and_start(stack, hub, "dave", "added to the directory")
        job_id = submit_from_home(stack, "dave", "first")
        stack.wait_job(job_id)
        TIMINGS["directory: user added to first job COMPLETED"] = time.monotonic() - t0
        assert stack.sacct(job_id, "User") == "dave"
        assert stack.in_slurm("stat -c '%u %a' /home/dave").stdout.split() == ["10004", "700"]
        dave.hub_api("DELETE", "/users/dave/server")

    def test_a_user_removed_from_the_directory_gets_no_token_and_loses_the_association(self, stack, hub):
        bob = login_and_start(stack, hub, "bob", "directory")
        token = "rm -f /tmp/slurm-token-$(id -u); slurm-token"
        assert in_pod(stack, "bob", token, check=False).returncode == 0  # the control
        stack.ldap.remove_user("bob")
        refused = in_pod(stack, "bob", token, check=False)
        assert refused.returncode == 1 and "no Slurm token for you" in refused.stderr, refused
        wait_until(lambda: not stack.in_slurm("sacctmgr -n -P show assoc user=bob format=user").stdout.strip(), 60,
                   "bob's association to go")
        bob.hub_api("DELETE", "/users/bob/server")

    def test_the_directory_down_stops_logins_with_a_message_and_nothing_else(self, stack, hub, alice):
        job_id = submit_from_home(stack, "alice", "while-down", seconds=15)
        wait_until(lambda: stack.squeue(job_id, "%T") == "RUNNING", 30, f"job {job_id} to run")
        down_before = int(stack.in_slurm(f"grep -c 'the directory lists no user' {SYNC_LOG}", check=False).stdout
                          .strip() or 0)
        stack.ldap.stop_slapd()
        try:
            t0 = time.monotonic()
            r = HubUser(hub, "christopher").login(dir_user(stack, "christopher").login_password)
            assert r.status_code == 503 and "directory" in r.text, (r.status_code, r.text[-500:])
            assert time.monotonic() - t0 < 20
            assert alice.server("GET", "/api/status").status_code == 200  # her server goes on
            t0 = time.monotonic()
            stack.in_slurm("getent passwd christopher", check=False)
            assert time.monotonic() - t0 < 10, "a lookup held a command while the directory is down"
            # A listing of the directory while it is down (its warning in the sync's log) takes no association away.
            listings_down = f"grep -c 'the directory lists no user' {SYNC_LOG}"
            wait_until(lambda: int(stack.in_slurm(listings_down, check=False).stdout.strip() or 0) > down_before,
                       60, "a listing of the directory while it is down")
            assert {"alice", "christopher"} <= set(
                stack.in_slurm("sacctmgr -n -P show assoc format=user").stdout.split())
            stack.wait_job(job_id, timeout=60)  # the job that ran when the directory went
            wait_until(lambda: stack.in_slurm("sinfo -h -o %t").stdout.split() == ["idle"], 30, "the node to be idle")
        finally:
            stack.ldap.start_slapd()
        assert HubUser(hub, "christopher").login(dir_user(stack, "christopher").login_password).status_code == 302


@pytest.fixture(scope="class")
def site_stack(site, tmp_path_factory):
    """The `site` stack (tests/e2e/site_stack.py) with config `ldap` instead of the site's list of users: the same
    directory the site's hosts resolve."""
    with site_home_volume(site):
        s = SiteStack(site, tmp_path_factory.mktemp("site-ldap-stack") / "Pulumi.site.yaml")
        for key in ("users", "groups"):
            pulumi("config", "rm", key, stack=SITE_STACK, config_file=s.config)
        set_ldap(s.set, site.ldap)
        s.ldap = site.ldap
        s.set("--path", "jupyter.user", "christopher")
        try:
            s.up(munge_key=site.munge_key, configless=False)
            yield s
        finally:
            s.destroy()


class TestSite:
    """The `site` stack with config `ldap`: the outside site resolves the same directory."""

    def test_a_hub_users_job_runs_on_the_outside_site_as_their_directory_uid(self, site, site_stack):
        images = hub_images(site_stack)
        values = chart_values(site_stack, images["notebook"], site_stack.output("slurmTokenUrl"),
                              egress=hub_users_egress(site_ports=site.ports, restd=True), hub_ldap=hub_ldap(site.ldap))
        want = dir_user(site_stack, "alice")
        assert "alice" in site.admitted and site.exec_on("cn1", "id", "-u", "alice").stdout.strip() == str(want.uid)
        with running_hub(site_stack, images, values) as url:
            alice = login_and_start(site_stack, url, "alice", "site, directory")
            job = f"site-{secrets.token_hex(2)}"
            job_id = submit_from_home(site_stack, "alice", job)
            site.wait_job(job_id)
            out = site.exec("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "User,UID,WorkDir").stdout.split()
            assert out == [f"alice|{want.uid}|/home/alice/p"], out
            assert "as alice in /home/alice/p" in Path(site.home, "alice", "p", f"{job}-{job_id}.out").read_text()
            alice.hub_api("DELETE", "/users/alice/server")


# --- the distributed deployment (components.distributed) with the directory ----------------------------------------
class DistLdap(Dist, StackCopy):
    """The `dist` stack on a copy of Pulumi.dist.yaml with config `ldap` instead of its users and groups."""

    def __init__(self, directory: LdapDirectory, config):
        Dist.__init__(self)
        StackCopy.__init__(self, DIST_STACK, "Pulumi.dist.yaml", config)
        self.ldap = directory
        for key in ("users", "groups"):
            pulumi("config", "rm", key, stack=DIST_STACK, config_file=config)
        set_ldap(self.set, directory)
        self.set("--path", "jupyter.user", "christopher")

    def associations(self) -> set[str]:
        out = self.on("dist-accounting-0", "timeout 20 sacctmgr -n -P show assoc format=user")
        return set(out.split())


@pytest.fixture(scope="class")
def dist(site, tmp_path_factory):
    d = DistLdap(site.ldap, tmp_path_factory.mktemp("dist-ldap") / "Pulumi.dist.yaml")
    with d.deployed("dist with ldap"):
        yield d


class TestDistributed:
    """The `dist` stack with config `ldap`: slurmctld, accounting and the node pods resolve the directory; the
    accounting pod follows its users' associations, the node pods their homes."""

    def test_a_directory_users_job_runs_as_them_from_their_home(self, dist):
        want = dir_user(dist, "christopher")
        wait_until(lambda: "christopher" in dist.associations(), 60, "christopher's association")
        for pod in (*NODES, "dist-slurmctld-0", "dist-accounting-0"):
            assert dist.on(pod, "id -u christopher").strip() == str(want.uid), pod
        out = dist.on(NODES[0], "sbatch --parsable --wait -o whoami.%j --wrap 'id -un; id -u; pwd'",
                      user="christopher")
        job = out.strip().splitlines()[-1]
        text = dist.on(NODES[0], f"cat whoami.{job}", user="christopher").split()
        assert text == ["christopher", str(want.uid), "/home/christopher"], text
        sacct = dist.on(NODES[0], f"sacct -X -n -P -j {job} -o user,state").strip()
        assert sacct == "christopher|COMPLETED", sacct
        assert dist.on(NODES[1], "stat -c '%u %a' /home/christopher").split() == [str(want.uid), "700"]
        assert "toor" not in dist.associations() and "munge" not in dist.associations()

    def test_a_user_added_gets_an_association_and_a_home_and_one_removed_loses_the_association(self, dist):
        t0 = time.monotonic()
        dist.ldap.add_user("frances", 10006, groups=(LOGIN_GROUP,))
        wait_until(lambda: "frances" in dist.associations()
                   and dist.on(NODES[0], "stat -c %U /home/frances", check=False).strip() == "frances", 60,
                   "frances's association and home")
        dist.on(NODES[0], "sbatch --wait -o first.%j --wrap true", user="frances")
        TIMINGS["dist: directory user added to first job COMPLETED"] = time.monotonic() - t0
        dist.ldap.remove_user("frances")
        wait_until(lambda: "frances" not in dist.associations(), 60, "frances's association to go")
        assert "christopher" in dist.associations()  # the others stay
