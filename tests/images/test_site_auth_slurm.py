"""The client images against a site whose AuthType is auth/slurm (issue 21): Slurm's own authentication, one
slurm.key, no munged anywhere.

The site is tests/site_cluster.py's (controller, slurmdbd, MariaDB, two nodes in podman) started with
`auth="slurm"` (AuthType=auth/slurm, CredType=cred/slurm, AuthAltTypes=auth/jwt, a slurm.key generated for the
run). Each client gets what a pod of a stack with `existingCluster` and `slurmKey` gets: the site's slurm.conf, the
slurm-image.env the program derives from it, /etc/slurm-keys/slurm.key (root's, 0400), the site's directory and
/home (a configless client: slurm-image.env and SLURM_CONF_SERVER instead of slurm.conf). Its entrypoint starts
sackd as root (the key root's, 0600) and no munged; users' commands get their credentials from sackd's socket,
never from the key. Only where the clients use auth/slurm (Slurm 25.05+: 26.05).
"""

import os
import re
import shutil
import tempfile

import pytest

from components.slurm_config import existing_cluster_image_env
from components.slurm_files import SLURMRESTD_PORT
from tests.images.slurm_containers import (
    EXAMPLES,
    auth_slurm_only,
    podman,
    wait_until,
    write_client_config,
    write_key_dir,
)
from tests.site_cluster import USERS, SiteCluster
from tests.slurm_rest import SlurmRest, hs256_token

pytestmark = [pytest.mark.containers, auth_slurm_only()]
CLIENT_NETWORK = "podman"  # podman's default network: not the site's
SUBNET = os.environ.get("SCI_AUTH_SLURM_SUBNET", "10.89.79.0/24")  # apart from test_site.py's site


@pytest.fixture(scope="module")
def site(images, version):
    with SiteCluster(version, image=images["slurm-single-node"], subnet=SUBNET, auth="slurm") as s:
        print(f"auth/slurm site up: both nodes idle {s.timings['idle']:.1f}s after start()")
        yield s


@pytest.fixture(scope="module")
def files(site, version):
    """The clients' /etc/slurm-config (the site's slurm.conf + derived slurm-image.env) and key directories: the
    site's slurm.key, and another one."""
    d = tempfile.mkdtemp(prefix="sci-auth-slurm-client-")
    conf = write_client_config(site, version, d)
    configless = os.path.join(d, "configless")  # a configless client's mount: slurm-image.env alone
    os.makedirs(configless)
    shutil.copy(os.path.join(conf, "slurm-image.env"), configless)
    keys, other = write_key_dir(site.slurm_key, "slurm.key"), write_key_dir(os.urandom(1024), "slurm.key")
    yield {"config": conf, "configless": configless, "keys": keys, "other": other}
    for path in (d, keys, other):
        shutil.rmtree(path)


def client_args(site, files, keys, config="config") -> list[str]:
    return ["--no-healthcheck", "--network", CLIENT_NETWORK, "-v", f"{files[config]}:/etc/slurm-config:ro",
            *(["-v", f"{keys}:/etc/slurm-keys:ro"] if keys else []),
            "-v", f"{site.directory}:/var/lib/extrausers:ro", "-v", f"{site.home}:/home",
            "-v", f"{EXAMPLES}:/examples:ro"]


@pytest.fixture(scope="module")
def client(images, site, files):
    """A slurm-client container with the site's slurm.key, left running (its entrypoint's set-up, then sleep)."""
    name = f"{site.name}-client"
    podman("run", "-d", "--name", name, *client_args(site, files, files["keys"]), images["slurm-client"],
           "sleep", "infinity")
    try:
        wait_until(lambda: podman("exec", name, "test", "-S", "/run/slurm/sack.socket", check=False).returncode == 0,
                   30, "the client's sackd socket", lambda: podman("logs", name, check=False).stderr)
        yield name
    finally:
        podman("rm", "-f", "-t", "3", name, check=False)


def as_user(client: str, user: str, script: str, check: bool = False):
    return podman("exec", client, "runuser", "-u", user, "--", "bash", "-c", f"cd; {script}", check=check,
                  timeout=60)


def test_the_site_and_the_client_run_auth_slurm_without_munged(site, client):
    assert "AuthType=auth/slurm\nCredType=cred/slurm\nAuthAltTypes=auth/jwt" in site.slurm_conf
    procs = podman("exec", client, "bash", "-c", "cat /proc/[0-9]*/comm").stdout.split()
    assert "sackd" in procs and "munged" not in procs, procs
    mode = podman("exec", client, "stat", "-c", "%U:%G %a", "/etc/slurm/slurm.key").stdout.strip()
    assert mode == "root:root 600"
    for host in site.containers.values():
        procs = podman("exec", host, "bash", "-c", "cat /proc/[0-9]*/comm").stdout.split()
        assert "munged" not in procs, f"{host}: {procs}"


def test_alices_job_runs_as_alice_and_accounting_says_so(site, client):
    p = as_user(client, "alice", "sbatch --parsable -o auth-slurm-%j.out --wrap 'id -un; id -u; sleep 2'")
    assert p.returncode == 0, p.stdout + p.stderr
    job = p.stdout.strip().split(";")[0]
    p = as_user(client, "alice", f"squeue -h -j {job} -o '%i %u'")
    assert p.returncode == 0 and p.stdout.split() in ([], [job, "alice"]), p.stdout + p.stderr
    site.wait_job(job, "COMPLETED", timeout=90)

    def accounted():
        p = as_user(client, "alice", f"sacct -n -X -P -j {job} -o User,State")
        return p.returncode == 0 and p.stdout.strip() == "alice|COMPLETED" and p.stdout
    wait_until(accounted, 30, f"sacct in the client to show job {job} as alice's, COMPLETED")
    out = os.path.join(site.home, "alice", f"auth-slurm-{job}.out")
    with open(out) as f:
        assert f.read().split() == ["alice", str(USERS["alice"])]
    assert os.stat(out).st_uid == USERS["alice"]


def test_a_user_cannot_read_the_key_or_act_as_another(client):
    for path in ("/etc/slurm/slurm.key", "/etc/slurm-keys/slurm.key"):
        p = as_user(client, "bob", f"cat {path}")
        assert p.returncode != 0 and "Permission denied" in p.stderr and not p.stdout, (path, p.stdout, p.stderr)
    p = as_user(client, "bob", "find / -xdev -name 'slurm.key*' -readable 2>/dev/null; ls /run/slurm")
    assert "slurm.key" not in p.stdout, p.stdout
    p = as_user(client, "bob", "sbatch --uid=alice --wrap true")  # only root or SlurmUser may submit for another
    assert p.returncode != 0, p.stdout + p.stderr


def test_a_client_with_another_slurm_key_is_refused(images, site, files, client):
    p = podman("run", "--rm", *client_args(site, files, files["other"]), images["slurm-client"], "slurm-munge-check",
               check=False, timeout=60)
    assert p.returncode == 3 and "slurm.key mismatch" in p.stderr, f"{p.returncode}: {p.stderr}"
    p = podman("run", "--rm", *client_args(site, files, files["other"]), images["slurm-client"], "runuser", "-u",
               "alice", "--", "sinfo", "-h", check=False, timeout=60)
    assert p.returncode != 0 and "slurm.key mismatch" in p.stderr, f"{p.returncode}: {p.stdout} {p.stderr}"
    # Control: the site's key, in the same way.
    p = podman("exec", client, "slurm-munge-check", check=False)
    assert p.returncode == 0, p.stderr


def test_a_client_without_a_key_gets_nothing_without_a_token(images, site, files):
    p = podman("run", "--rm", "-u", f"{USERS['alice']}:{USERS['alice']}", *client_args(site, files, None),
               images["slurm-client"], "sinfo", "-h", check=False, timeout=60)
    assert p.returncode != 0 and "SLURM_JWT is not set" in p.stderr, f"{p.returncode}: {p.stdout} {p.stderr}"
    p = podman("run", "--rm", "-u", f"{USERS['alice']}:{USERS['alice']}", "-e", f"SLURM_JWT={site.token('alice')}",
               *client_args(site, files, None), images["slurm-client"], "sinfo", "-h", "-o", "%P", check=False,
               timeout=60)
    assert p.returncode == 0 and p.stdout.split() == ["batch*"], f"{p.returncode}: {p.stdout} {p.stderr}"


def test_jupyterlabs_user_submits_as_themself_through_sackd(jupyter_images, site, files):
    """slurm-jupyter as JupyterLab starts it (root, NB_USER): set-up with the site's slurm.key, then the command as
    alice, who submits a job that runs as her and cannot read the key."""
    script = ("id -un; sbatch --parsable -o auth-slurm-lab-%j.out --wrap 'id -un'; "
              "cat /etc/slurm/slurm.key >/dev/null 2>&1 && echo KEY-READABLE || echo key-unreadable")
    p = podman("run", "--rm", "-e", "NB_USER=alice", *client_args(site, files, files["keys"]),
               jupyter_images["slurm-jupyter"], "bash", "-c", script, check=False, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    user, job, key = p.stdout.split()[-3:]
    assert (user, key) == ("alice", "key-unreadable"), p.stdout
    site.wait_job(job.split(";")[0], "COMPLETED", timeout=90)
    with open(os.path.join(site.home, "alice", f"auth-slurm-lab-{job.split(';')[0]}.out")) as f:
        assert f.read().split() == ["alice"]


def test_a_configless_client_fetches_the_files_through_its_sackd(images, site, files):
    """SLURM_CONF_SERVER and no slurm.conf: sackd (--conf-server) fetches the site's files with the key and serves
    the commands' credentials; alice's job runs as alice."""
    script = "cd; id -un; sbatch --parsable -o auth-slurm-configless-%j.out --wrap 'id -un'"
    p = podman("run", "--rm", "-e", f"SLURM_CONF_SERVER={site.conf_server}",
               *client_args(site, files, files["keys"], "configless"), images["slurm-client"], "bash", "-c",
               f"test ! -e /etc/slurm/slurm.conf && test -s /run/slurm/conf/slurm.conf && "
               f"runuser -u alice -- bash -c {script!r}", check=False, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    user, job = p.stdout.split()[-2:]
    assert user == "alice"
    site.wait_job(job.split(";")[0], "COMPLETED", timeout=90)
    with open(os.path.join(site.home, "alice", f"auth-slurm-configless-{job.split(';')[0]}.out")) as f:
        assert f.read().split() == ["alice"]


def test_slurmrestd_runs_a_job_with_a_token_and_refuses_a_forged_one(images, site, files, version):
    """The client image's default command (slurmrestd, SLURM_JWT=daemon, behind its gate) with the site's slurm.key:
    a token minted on the site submits as alice; one signed with another key is refused."""
    name = f"{site.name}-restd"
    podman("run", "-d", "--name", name, *client_args(site, files, files["keys"]), images["slurm-client"])
    try:
        ip = podman("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{CLIENT_NETWORK}").IPAddress}}}}',
                    name).stdout.strip()
        env = existing_cluster_image_env(site.slurm_conf, "site", version)["slurm-image.env"]
        api_version = re.search(r"^SLURM_REST_API_VERSION=(\S+)", env, re.M).group(1)
        url = f"http://{ip}:{SLURMRESTD_PORT}"
        api = SlurmRest(url, api_version, user="alice", token=site.token("alice"))
        wait_until(api.ping, 30, "slurmrestd to answer ping", lambda: podman("logs", name, check=False).stderr)
        job = api.submit("#!/bin/bash\nid -un\n", name="rest-auth-slurm", cwd="/home/alice")
        site.wait_job(job, "COMPLETED", timeout=60)
        assert not SlurmRest(url, api_version, user="alice", token=hs256_token(os.urandom(32), "alice")).authenticated()
    finally:
        podman("rm", "-f", "-t", "3", name, check=False)
