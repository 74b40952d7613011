"""Configless sites (issue 12): client containers get no slurm.conf, only slurm-image.env and
SLURM_CONF_SERVER=<addr>:<port>; the site's slurmctld has SlurmctldParameters=enable_configless.

Real podman containers: the identity test's single node (user directory, shared /home) with configless
enabled by the test (appended to its slurm.conf), and slurm-client and slurm-jupyter containers in both modes
(munge, started as root; JWT, as the directory user alice from the start, no key). Contract: dockerfiles/README.md "Configless sites".
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import pytest
import requests

from components.slurm_files import SLURMRESTD_PORT, version_facts
from tests.images.directory_cluster import JOB, MISMATCH, USERS, Cluster
from tests.images.slurm_containers import SingleNode, make_files, podman, wait_until, write_key_dir
from tests.slurm_rest import SlurmRest

pytestmark = pytest.mark.containers

ENABLE = "SlurmctldParameters=enable_configless\n"
NOT_ENABLED = "does not serve its configuration: the site's slurm.conf needs SlurmctldParameters=enable_configless"


def client_dir(files) -> str:
    """A config mount as in configless mode: slurm-image.env only."""
    d = tempfile.mkdtemp(prefix="sci-configless-")
    shutil.copy(os.path.join(files.client_config, "slurm-image.env"), d)
    os.chmod(d, 0o755)
    return d


def port(files) -> str:
    conf = open(os.path.join(files.server_config, "slurm.conf")).read()
    return conf.split("SlurmctldPort=", 1)[1].split()[0].split("-")[0]


@pytest.fixture(scope="module")
def site(images, version, network):
    """The single node with enable_configless. Its plugstack.conf is emptied: slurmctld hands it to configless
    clients, which do not have the single node's SPANK plugins (a real site's plugins must be in its clients); so
    here jobs keep SLURM_JWT (none of these runs srun)."""
    c = Cluster(images["slurm-single-node"], version, network)
    with open(os.path.join(c.node.files.server_config, "slurm.conf"), "a") as f:
        f.write(ENABLE)
    fd, c.plugstack = tempfile.mkstemp(prefix="sci-plugstack-", suffix=".conf")
    os.write(fd, b"# none\n")
    os.close(fd)
    os.chmod(c.plugstack, 0o644)
    c.node.run_args += ("-v", f"{c.plugstack}:/etc/slurm/plugstack.conf:ro")
    c.config = client_dir(c.node.files)
    try:
        c.node.start().wait_ready()
        yield c
    finally:
        c.remove()
        os.remove(c.plugstack)
        shutil.rmtree(c.config, ignore_errors=True)


def client(images, node: SingleNode, config: str, *cmd: str, user=None, keys=None, env=(), home=None,
           detach=False, timeout=90):
    """podman run slurm-client in configless mode: SLURM_CONF_SERVER=<node ip>:<port>, config = slurm-image.env
    only; the fetched slurm.conf names the controller by host name, so that name resolves (--add-host)."""
    args = ["run", "--no-healthcheck", "--network", node.network,
            "--add-host", f"{node.files.controller_host}:{node.ip}",
            "-e", f"SLURM_CONF_SERVER={node.ip}:{port(node.files)}", "-v", f"{config}:/etc/slurm-config:ro"]
    args += ["-d"] if detach else ["--rm"]
    if user is not None:
        args += ["--passwd=false", "--user", f"{user}:{user}"]
    if keys:
        args += ["-v", f"{keys}:/etc/slurm-keys:ro"]
    if home:
        args += ["-v", f"{home.directory}:/var/lib/extrausers:ro", "-v", f"{home.home}:/home"]
    for e in env:
        args += ["-e", e]
    return podman(*args, images["slurm-client"], *cmd, check=False, timeout=timeout)


# As the user in their home: a job script written there, sbatch, squeue, then sacct (after it ended).
SESSION = ('set -e; mkdir -p ~/cl && cd ~/cl && printf "%s" "$JOB" > job.sh; sinfo -h -o "%R %D"; '
           'id=$(sbatch --parsable job.sh); echo "job $id"; squeue -h -j "$id" -o %i >/dev/null; '
           'for i in $(seq 100); do [[ -s slurm-$id.out ]] && sacct -n -X -j "$id" -o State | grep -q COMPLETED && break; sleep 0.2; done; '
           'sacct -n -X -P -j "$id" -o User,State; cat slurm-$id.out')


def check_session(p, user: str):
    assert p.returncode == 0, p.stdout + p.stderr
    assert "debug 1" in p.stdout, p.stdout  # sinfo: the site's partition and node
    assert f"{user}|COMPLETED" in p.stdout, p.stdout + p.stderr
    assert f"/home/{user}/cl" in p.stdout, p.stdout  # the job ran in the submit directory, in the home


def test_munge_mode_as_root_then_user(images, site):
    """Munge mode: the entrypoint's setup (no slurm.conf), then alice's session in her home."""
    t0 = time.monotonic()
    p = client(images, site.node, site.config, "bash", "-c",
               f'slurm-munge-check && exec setpriv --reuid={USERS["alice"]} --regid={USERS["alice"]} --init-groups '
               f'env HOME=/home/alice bash -c \'{SESSION}\'',
               keys=site.node.files.client_keys, home=site, env=(f"JOB={JOB}",))
    print(f"munge session {time.monotonic() - t0:.1f}s")
    check_session(p, "alice")


def test_jwt_mode_user_container(images, site):
    """JWT mode: alice's own uid from the start, no munge key, no munged; SLURM_JWT for alice."""
    t0 = time.monotonic()
    p = client(images, site.node, site.config, "bash", "-c", SESSION, user=USERS["alice"], home=site,
               env=(f"JOB={JOB}", f"SLURM_JWT={site.node.token('alice')}"))
    print(f"JWT session {time.monotonic() - t0:.1f}s")
    check_session(p, "alice")


def test_munge_check_mismatch(images, site):
    other = write_key_dir(os.urandom(1024))
    try:
        p = client(images, site.node, site.config, "slurm-munge-check", keys=other)
    finally:
        shutil.rmtree(other, ignore_errors=True)
    assert p.returncode == 3, p.stdout + p.stderr
    assert MISMATCH in p.stderr and f"{site.node.ip}:{port(site.node.files)}" in p.stderr, p.stderr


def test_slurmrestd(images, version, site):
    """The image's default command, slurmrestd: ping and a job with a token (sackd holds the configuration);
    on 22.05 (no sackd) the entrypoint refuses with a message naming the way out."""
    p = client(images, site.node, site.config, keys=site.node.files.client_keys, detach=True)
    assert p.returncode == 0, p.stderr
    try:
        if version == "22.05":
            podman("wait", p.stdout.strip(), timeout=60)
            logs = podman("logs", p.stdout.strip()).stderr
            assert "slurmrestd on a configless site needs sackd" in logs, logs
            return
        ip = podman("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    p.stdout.strip()).stdout.strip()
        rest = SlurmRest(f"http://{ip}:{SLURMRESTD_PORT}", version_facts(version).rest_api_version,
                         user="root", token=site.node.token("root"))
        deadline = time.monotonic() + 30
        while True:
            try:
                if rest.ping():
                    break
            except Exception:
                pass
            assert time.monotonic() < deadline, podman("logs", p.stdout.strip()).stderr
            time.sleep(0.2)
        job = rest.submit("#!/bin/bash\nhostname\n")
        assert rest.wait_job(job).startswith("COMPLETED")
    finally:
        podman("rm", "-f", "-t", "5", p.stdout.strip(), check=False)


def test_not_enabled(images, version, network):
    """A controller without enable_configless: the commands say so and name the fix (both modes)."""
    files = make_files(version, f"nc-{os.urandom(3).hex()}", nodes=1)
    node = SingleNode(f"sci-{files.controller_host}", images["slurm-single-node"], files, network,
                      f"sci-state-{files.controller_host}")
    config = client_dir(files)
    try:
        node.start().wait_ready()
        munge = client(images, node, config, "sinfo", keys=files.client_keys)
        jwt = client(images, node, config, "sinfo", user=1000, env=(f"SLURM_JWT={node.token('root')}",))
    finally:
        node.remove()
        podman("volume", "rm", "-f", node.volume, check=False)
        files.cleanup()
        shutil.rmtree(config, ignore_errors=True)
    for p in (munge, jwt):
        assert p.returncode != 0 and NOT_ENABLED in p.stderr, p.stdout + p.stderr


# --- the Jupyter images: jupyter-entrypoint's two modes, jupyterlab-slurm's commands ------------------------
LAB_TOKEN = os.urandom(16).hex()


@pytest.mark.parametrize("mode", ["munge", "jwt"])
def test_jupyterlab_slurm(jupyter_images, start_jupyter, site, mode):
    """slurm-jupyter as alice: started as root with munge (NB_USER=alice), or as alice's uid with her token;
    jupyterlab-slurm submits a script saved in her home, lists it (squeue) and finds it in sacct."""
    node = site.node
    args = ["--network", node.network, "--add-host", f"{node.files.controller_host}:{node.ip}",
            "-e", f"SLURM_CONF_SERVER={node.ip}:{port(node.files)}", "-v", f"{site.config}:/etc/slurm-config:ro",
            "-v", f"{site.directory}:/var/lib/extrausers:ro", "-v", f"{site.home}:/home",
            "-e", f"JUPYTER_TOKEN={LAB_TOKEN}"]
    if mode == "munge":
        args += ["-e", "NB_USER=alice", "-v", f"{node.files.client_keys}:/etc/slurm-keys:ro"]
    else:
        args += ["--passwd=false", "--user", f"{USERS['alice']}:{USERS['alice']}",
                 "-e", f"SLURM_JWT={node.token('alice')}"]
    lab = start_jupyter(jupyter_images["slurm-jupyter"], *args)

    def api(method, path, **kw):
        return requests.request(method, lab.url + path, headers={"Authorization": f"token {LAB_TOKEN}"},
                                timeout=30, **kw)
    name = f"lab-{mode}"
    r = api("PUT", f"/api/contents/{name}.sh", json={"type": "file", "format": "text", "content": JOB})
    assert r.status_code in (200, 201), r.text
    r = api("POST", "/jupyterlab_slurm/sbatch", json={"inputPath": f"/home/alice/{name}.sh", "outputPath": "/home/alice"})
    assert r.status_code == 200 and r.json()["success"], r.text
    job_id = r.json()["data"]["jobId"]
    r = api("GET", "/jupyterlab_slurm/squeue")
    assert r.status_code == 200 and r.json()["success"], r.text
    node.wait_job(job_id)

    def in_history():
        r = api("GET", "/jupyterlab_slurm/sacct", params={"user": "alice"})
        assert r.status_code == 200 and r.json()["success"], r.text
        data = r.json()["data"]
        rows = [dict(zip(data["columns"], v, strict=True)) for v in data["rows"]]
        return any(row["JobID"] == job_id and row["State"].startswith("COMPLETED") for row in rows)
    wait_until(in_history, 30, f"job {job_id} COMPLETED in sacct (jupyterlab_slurm)", lab.logs)
    out = lab.exec("cat", f"/home/alice/slurm-{job_id}.out").stdout
    assert "uid=2001(alice)" in out, out
