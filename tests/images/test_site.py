"""The client images against the site (tests/site_cluster.py), an outside Slurm cluster on a network of its own.

The clients run on podman's default network, so they reach the site through the host as pods do, and get what
a pod of a stack with `existingCluster` gets: the site's slurm.conf (only its addresses, no Service name), the
slurm-image.env the program derives from it, the site's munge key, its user directory and its /home.
"""

import os
import re
import shutil
import tempfile

import pytest

from components.slurm_config import existing_cluster_image_env
from components.slurm_files import SLURMRESTD_PORT
from tests.images.slurm_containers import EXAMPLES, podman, wait_until, write_client_config, write_key_dir
from tests.site_cluster import USERS, SiteCluster
from tests.slurm_rest import SlurmRest, SlurmRestError, hs256_token

pytestmark = pytest.mark.containers
CLIENT_NETWORK = "podman"  # podman's default network: not the site's


@pytest.fixture(scope="module")
def site(images, version):
    with SiteCluster(version, image=images["slurm-single-node"]) as s:
        print(f"site up: both nodes idle {s.timings['idle']:.1f}s after start()")
        yield s


@pytest.fixture(scope="module")
def client_files(site, version):
    """The client's /etc/slurm-config (the site's slurm.conf + derived slurm-image.env) and /etc/slurm-keys."""
    d = tempfile.mkdtemp(prefix="sci-site-client-")
    conf = write_client_config(site, version, d)
    keys = write_key_dir(site.munge_key)
    yield {"config": conf, "keys": keys}
    shutil.rmtree(d)
    shutil.rmtree(keys)


def client_args(site, files, keys=None):
    return ["--network", CLIENT_NETWORK, "-v", f"{files['config']}:/etc/slurm-config:ro",
            "-v", f"{keys or files['keys']}:/etc/slurm-keys:ro", "-v", f"{site.directory}:/var/lib/extrausers:ro",
            "-v", f"{site.home}:/home", "-v", f"{EXAMPLES}:/examples:ro"]


def run_client(images, site, files, *cmd, keys=None, timeout=60):
    return podman("run", "--rm", "--no-healthcheck", *client_args(site, files, keys), images["slurm-client"], *cmd,
                  check=False, timeout=timeout)


def submit_as_alice(images, site, files, example):
    """As alice in the client: copy examples/EXAMPLE into ~/p and sbatch it there; returns the job id."""
    script = f"mkdir -p ~/p && cp /examples/{example} ~/p/ && cd ~/p && sbatch --parsable {example}"
    p = run_client(images, site, files, "runuser", "-u", "alice", "--", "bash", "-c", f"HOME=/home/alice; {script}")
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.strip().split(";")[0]


def test_the_site_slurm_conf_names_only_addresses(site):
    assert "SlurmctldHost=ctl(" + site.controller_addr + ")" in site.slurm_conf
    assert site.slurmctld_ports == [7817, 7818] and site.slurmdbd_port == 7819
    assert not re.search(r"\.svc\b|cluster\.local", site.slurm_conf)


def test_sinfo_from_another_network_shows_the_site_nodes(images, site, client_files):
    p = run_client(images, site, client_files, "sinfo", "-h", "-N", "-o", "%N %P %t")
    assert p.returncode == 0, p.stdout + p.stderr
    assert sorted(p.stdout.splitlines()) == ["cn1 batch* idle", "cn2 batch* idle"], p.stdout


def test_sbatch_as_alice_completes_in_the_site_accounting_with_output_in_her_home(images, site, client_files):
    job = submit_as_alice(images, site, client_files, "test.slurm")
    site.wait_job(job, "COMPLETED", timeout=90)
    out_path = os.path.join(site.home, "alice", "p", f"test-{job}.out")
    with open(out_path) as f:
        out = f.read()
    assert f"job {job} on cn" in out and "as alice with 2300 MB" in out and "held 1024 MiB" in out, out
    assert os.stat(out_path).st_uid == USERS["alice"]


def test_a_two_node_job_runs_on_cn1_and_cn2(images, site, client_files):
    job = submit_as_alice(images, site, client_files, "two-nodes.slurm")
    site.wait_job(job, "COMPLETED", timeout=60)
    assert site.nodes_of(job) == ["cn1", "cn2"]
    with open(os.path.join(site.home, "alice", "p", f"two-nodes-{job}.out")) as f:
        tasks = sorted(f.read().splitlines())
    assert tasks == ["task 0 on cn1", "task 1 on cn2"], tasks


def test_a_wrong_munge_key_is_named_by_munge_check(images, site, client_files):
    bad = write_key_dir(os.urandom(1024))
    try:
        p = run_client(images, site, client_files, "slurm-munge-check", keys=bad)
    finally:
        shutil.rmtree(bad)
    assert p.returncode == 3 and "munge key" in p.stderr, f"{p.returncode}: {p.stderr}"
    p = run_client(images, site, client_files, "slurm-munge-check")  # control: the site's key
    assert p.returncode == 0, p.stderr


@pytest.fixture(scope="module")
def restd(images, site, client_files, version):
    """slurmrestd of the slurm-client image (its default command) against the site: (base URL, API version)."""
    name = f"{site.name}-restd"
    podman("run", "-d", "--no-healthcheck", "--name", name, *client_args(site, client_files), images["slurm-client"])
    try:
        ip = podman("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{CLIENT_NETWORK}").IPAddress}}}}',
                    name).stdout.strip()
        env = existing_cluster_image_env(site.slurm_conf, "site", version)["slurm-image.env"]
        api_version = re.search(r"^SLURM_REST_API_VERSION=(\S+)", env, re.M).group(1)
        yield f"http://{ip}:{SLURMRESTD_PORT}", api_version, name
    finally:
        podman("rm", "-f", "-t", "3", name, check=False)


def test_slurmrestd_pings_and_runs_a_job_with_a_token_minted_on_the_site(site, restd):
    url, api_version, name = restd
    api = SlurmRest(url, api_version, user="alice", token=site.token("alice"))
    wait_until(api.ping, 30, "slurmrestd to answer ping", lambda: podman("logs", name, check=False).stderr)
    job = api.submit("#!/bin/bash\nid -un\n", name="rest-site", cwd="/home/alice")
    site.wait_job(job, "COMPLETED", timeout=60)


def test_slurmrestd_refuses_a_token_signed_with_another_key(site, restd):
    url, api_version, name = restd
    wait_until(SlurmRest(url, api_version, user="alice", token=site.token("alice")).ping, 30, "slurmrestd to answer ping")
    assert SlurmRest(url, api_version, user="alice", token=hs256_token(site.jwt_key, "alice")).authenticated()
    forged = SlurmRest(url, api_version, user="alice", token=hs256_token(os.urandom(32), "alice"))
    assert not forged.authenticated()
    with pytest.raises(SlurmRestError):
        forged.submit("#!/bin/bash\ntrue\n", cwd="/home/alice")
