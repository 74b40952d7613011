"""Fixtures of the Jupyter image tests (tests/images/test_jupyter*.py): real images, a real Slurm, no mocks.

Built on tests/images/conftest.py (`images`, `version`, `network`) and tests/images/slurm_containers.py
(SingleNode, make_files, wait_until). tests/images/conftest.py imports the fixtures, so the session-scoped
ones are made once for all modules. SLURM_VERSION (default 24.11) selects the Slurm version, so the Debian
suite of every image.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
import requests

from components.images import CLIENT_BASED as JUPYTER_IMAGES
from components.images import DOCKERFILES
from tests.images.slurm_containers import (
    SingleNode,
    build_image,
    image_size,
    make_files,
    podman,
    wait_until,
)

NB_UID, NB_GID = 1000, 100  # jovyan:users in the Jupyter images
# The JupyterHub the notebook image pins (the version of the chart's hub), from the images' one requirements.in.
JUPYTERHUB_VERSION = re.search(r"^jupyterhub==(\S+)", Path(DOCKERFILES, "slurm-jupyter", "requirements.in").read_text(),
                               re.M).group(1)

__all__ = ["jupyter_images", "slurm_cluster", "start_jupyter", "JupyterContainer", "client_args",
           "run_entrypoint", "processes", "add_cluster_user", "submit_as", "upstream_squeue", "NB_UID", "NB_GID",
           "DOCKERFILES"]


@pytest.fixture(scope="session")
def jupyter_images(images, version) -> dict[str, str]:
    """`images` plus slurm-jupyter and slurm-jupyter-notebook, built FROM that slurm-client."""
    tags = dict(images)
    for image in JUPYTER_IMAGES:
        tag, seconds = build_image(image, version, base_image=images["slurm-client"])
        print(f"built {tag} in {seconds:.1f}s, {image_size(tag) / 1e6:.0f} MB")
        tags[image] = tag
    return tags


@pytest.fixture(scope="session")
def slurm_cluster(images, version, network):
    """A private slurm-single-node (1 node) that knows the notebook user.

    Slurm runs a job as its submitter's uid and needs that user on the controller and the nodes (a site has
    LDAP/SSSD for this): the image has jovyan (uid 1000, gid 100); this adds it if an image lacks it."""
    suffix = uuid.uuid4().hex[:6]
    files = make_files(version, f"jt-{suffix}", nodes=1, cluster_name="jtest")
    node = SingleNode(f"sci-jt-sn-{suffix}", images["slurm-single-node"], files, network, f"sci-jt-state-{suffix}")
    try:
        node.start()
        node.wait_ready()
        node.exec("sh", "-c", f"getent passwd {NB_UID} >/dev/null || "
                              f"useradd --uid {NB_UID} --gid {NB_GID} --no-create-home jovyan")
        yield node
    finally:
        node.remove()
        podman("volume", "rm", "-f", node.volume, check=False)
        files.cleanup()


def add_cluster_user(node: SingleNode, name: str, uid: int) -> None:
    """`name` (uid = gid = `uid`) on the cluster as the user directory makes it there, and in Slurm's accounting as
    slurm-single-node's entrypoint adds the directory's users (account `users`), so that it may submit jobs."""
    node.exec("sh", "-c", f"getent passwd {name} >/dev/null || {{ groupadd -g {uid} {name} && "
                          f"useradd --uid {uid} --gid {uid} --no-create-home {name}; }}")
    node.exec("install", "-d", "-m", "0700", "-o", str(uid), "-g", str(uid), f"/home/{name}")  # jobs run from there
    node.exec("sacctmgr", "-i", "add", "user", f"name={name}", "account=users",
              check=False)  # refused ("Nothing new added") when it is there already
    out = node.exec("sacctmgr", "-n", "-P", "show", "assoc", f"user={name}", "format=account").stdout.split()
    assert "users" in out, f"{name} is not in the account users: {out}"


def submit_as(node: SingleNode, user: str, name: str, command: str = "sleep 300") -> str:
    """As `user`, on the cluster, from their home: sbatch -J NAME --wrap COMMAND (the job's name exactly as given);
    the job id."""
    def submitted():  # slurmctld may take a moment to learn of a user just added to accounting
        p = node.exec("runuser", "-u", user, "--", "sbatch", "--parsable", "-J", name, f"--chdir=/home/{user}",
                      "--output=/dev/null", "--wrap", command, check=False)
        return p.returncode == 0 and p.stdout.strip().split(";")[0]
    return node.wait_for(submitted, f"sbatch as {user} to accept job {name!r}", 30)


# jupyterlab-slurm's own SqueueHandler.run_command, run in a container as its user outside the server, so without
# this project's replacement (jupyterlab_slurm_squeue, loaded only as a server extension): what the panel showed.
UPSTREAM_SQUEUE = r"""
import asyncio, json, logging
from jupyterlab_slurm.handlers import SqueueHandler
handler = object.__new__(SqueueHandler)  # no request: run_command needs only initialize()'s attributes
handler.initialize(squeue="squeue", log=logging.getLogger("upstream"))
print(json.dumps(asyncio.run(handler.run_command())))
"""


def upstream_squeue(container, user: str) -> dict:
    """The response body jupyterlab-slurm itself would give for /jupyterlab_slurm/squeue (`user`: uid:gid)."""
    return json.loads(container.exec("python3", "-c", UPSTREAM_SQUEUE, user=user).stdout)


def client_args(node: SingleNode, keys_dir: Optional[str] = None) -> list[str]:
    """podman run arguments giving a client container the cluster's files the way the contract mounts them."""
    return ["--no-healthcheck", "--network", node.network, "--add-host", f"{node.files.controller_host}:{node.ip}",
            "-v", f"{node.files.client_config}:/etc/slurm-config:ro",
            "-v", f"{keys_dir or node.files.client_keys}:/etc/slurm-keys:ro"]


@dataclass
class JupyterContainer:
    name: str
    url: str  # http://127.0.0.1:PORT (published port 8888)
    ip: str  # on its podman network

    def logs(self, tail: int = 60) -> str:
        p = podman("logs", "--tail", str(tail), self.name, check=False)
        return f"--- podman logs {self.name}:\n{p.stdout}{p.stderr}"

    def status(self) -> str:
        return podman("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()

    def exec(self, *cmd: str, user: Optional[str] = None, check: bool = True, timeout: float = 30):
        return podman("exec", *(["--user", user] if user else []), self.name, *cmd, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def start_jupyter():
    """start_jupyter(image, *run_args, cmd=(), ready_path="/api/status") -> JupyterContainer, once the server
    answers ready_path (any HTTP status) or at once if ready_path is None. Removed after the module."""
    started: list[str] = []

    def start(image: str, *run_args: str, cmd: tuple[str, ...] = (), ready_path: Optional[str] = "/api/status",
              name: Optional[str] = None, timeout: float = 90) -> JupyterContainer:
        name = name or f"sci-jt-{uuid.uuid4().hex[:8]}"
        started.append(name)
        podman("run", "-d", "--name", name, "-p", "127.0.0.1::8888", *run_args, image, *cmd)
        port = podman("port", name, "8888/tcp").stdout.strip().rsplit(":", 1)[-1]
        networks = json.loads(podman("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout or "{}")
        ip = next((n.get("IPAddress", "") for n in (networks or {}).values()), "")
        c = JupyterContainer(name, f"http://127.0.0.1:{port}", ip)
        if ready_path is not None:
            def up():
                if c.status() != "running":
                    pytest.fail(f"container {name} ({image}) stopped:\n{c.logs()}")
                return requests.get(c.url + ready_path, timeout=5, allow_redirects=False).status_code
            wait_until(up, timeout, f"{image} to answer {ready_path}", c.logs)
        return c

    yield start
    for name in started:
        podman("rm", "-f", "-t", "3", name, check=False)


def run_entrypoint(image: str, *run_args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a container to completion (the entrypoint's refusals). Fails, removing the container, if it still
    runs after `timeout` s."""
    name = f"sci-jt-run-{uuid.uuid4().hex[:8]}"
    try:
        return subprocess.run(["podman", "run", "--rm", "--name", name, *run_args, image], capture_output=True,
                              text=True, timeout=timeout, env=_podman_env())
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{image} still ran after {timeout}s (it should have refused to start):\n"
                    f"{(e.stderr or b'').decode(errors='replace')[-2000:] if isinstance(e.stderr, bytes) else e.stderr}")
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)


def _podman_env() -> dict:
    from tests.images.slurm_containers import _env
    return _env()


PROCESSES = r"""
import os, pwd
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        uid = int(open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0])
        args = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode().strip()
    except OSError:
        continue
    print(pwd.getpwuid(uid).pw_name, args)
"""


def processes(container) -> list[tuple[str, str]]:
    """(user, command line) of every process in the container (the images have no ps)."""
    out = container.exec("python3", "-c", PROCESSES).stdout
    return [tuple(line.split(" ", 1)) for line in out.splitlines() if " " in line]
