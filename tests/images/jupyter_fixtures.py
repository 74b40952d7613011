"""Fixtures of the Jupyter image tests: real images, a real Slurm (slurm-single-node), real containers.

Used by tests/images/test_jupyter*.py (`from tests.images.jupyter_fixtures import *`). Nothing is mocked:
the images are built from dockerfiles/ with podman, the Slurm files are rendered by components/slurm_files.py,
and every wait is on a condition with a timeout and a message.

SLURM_VERSION (default 24.11) selects the Slurm version, so the Debian suite of every image.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
import requests

from components.slurm_files import render_slurm_files, version_facts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILES = os.path.join(ROOT, "dockerfiles")
SLURM_VERSION = os.environ.get("SLURM_VERSION", "24.11")
NB_UID, NB_GID = 1000, 100  # jovyan:users in the Jupyter images
TAG_PREFIX = "localhost/sci-test"

__all__ = ["podman", "wait_for", "Cluster", "JupyterContainer", "jupyter_images", "slurm_cluster",
           "start_jupyter", "client_files", "run_entrypoint", "build_image", "SLURM_VERSION", "NB_UID"]


# --- podman ---------------------------------------------------------------------------------------------
def _podman_env() -> dict:
    env = dict(os.environ)
    cache = env.get("SCI_CACHE", "/var/cache/slurm-cloud-integration")
    conf = os.path.join(cache, "containers.conf")
    if "CONTAINERS_CONF" not in env and os.path.exists(conf):
        env["CONTAINERS_CONF"] = conf  # scripts/env.sh sets it; also when pytest is run by hand
    return env


def podman(*args: str, check: bool = True, timeout: float = 120, input: Optional[str] = None):
    """Run `podman ARGS`; returns the CompletedProcess (text). On failure with check, says what failed."""
    proc = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          env=_podman_env(), input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(what: str, probe: Callable[[], object], timeout: float, on_timeout: Callable[[], str] = lambda: ""):
    """Poll `probe` until it returns something truthy (returned); fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except Exception as e:  # the condition is not reached yet (connection refused, ...)
            last_error = e
        if time.monotonic() > deadline:
            detail = on_timeout()
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}"
                        + (f" (last error: {last_error!r})" if last_error else "") + (f"\n{detail}" if detail else ""))
        time.sleep(0.2)


def _extra_ca_certs() -> str:
    """The machine's extra CA certificates (a TLS-inspecting proxy in front of PyPI), for EXTRA_CA_CERTS."""
    pems = []
    for path in sorted(glob.glob("/usr/local/share/ca-certificates/**/*.crt", recursive=True)):
        with open(path) as f:
            pems.append(f.read().strip())
    return "\n".join(pems)


_BUILD_SECONDS: dict[str, float] = {}


def build_image(name: str, tag: str, build_args: dict[str, str]) -> str:
    t0 = time.monotonic()
    args = ["build", "--pull=never", "-q", "-t", tag]
    for k, v in build_args.items():
        args += ["--build-arg", f"{k}={v}"]
    podman(*args, os.path.join(DOCKERFILES, name), timeout=1200)
    _BUILD_SECONDS[name] = time.monotonic() - t0
    return tag


@pytest.fixture(scope="session")
def jupyter_images() -> dict[str, str]:
    """Builds slurm-client, slurm-single-node, slurm-jupyter, slurm-jupyter-notebook for SLURM_VERSION."""
    suite = version_facts(SLURM_VERSION).debian_suite
    tags = {n: f"{TAG_PREFIX}/{n}:{SLURM_VERSION}" for n in
            ("slurm-client", "slurm-single-node", "slurm-jupyter", "slurm-jupyter-notebook")}
    build_image("slurm-client", tags["slurm-client"], {"DEBIAN_SUITE": suite})
    build_image("slurm-single-node", tags["slurm-single-node"], {"DEBIAN_SUITE": suite})
    ca = _extra_ca_certs()
    for name in ("slurm-jupyter", "slurm-jupyter-notebook"):
        args = {"BASE_IMAGE": tags["slurm-client"], "DEBIAN_SUITE": suite}
        if ca:
            args["EXTRA_CA_CERTS"] = ca
        build_image(name, tags[name], args)
    for name, tag in tags.items():
        size = podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip()
        print(f"image {name}: {int(size) / 1e6:.0f} MB, build {_BUILD_SECONDS.get(name, 0):.1f} s")
    return tags


# --- the Slurm cluster ----------------------------------------------------------------------------------
@dataclass
class Cluster:
    network: str
    container: str
    controller_host: str
    controller_ip: str
    client_config: str  # dir with slurm.conf, cgroup.conf, slurm-image.env (no slurmdbd.conf)
    keys: str  # dir with munge.key (root, 0400)
    workdir: str

    def exec(self, *cmd: str, check: bool = True, timeout: float = 30):
        return podman("exec", self.container, *cmd, check=check, timeout=timeout)

    def sacct_state(self, job_id: str) -> str:
        out = self.exec("sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State", check=False).stdout.strip()
        return out.splitlines()[0].strip() if out else ""

    def logs(self) -> str:
        p = podman("logs", "--tail", "40", self.container, check=False)
        return p.stdout + p.stderr


def client_files(cluster: Cluster) -> list[str]:
    """podman arguments that give a client container the cluster's files as the contract mounts them."""
    return ["--network", cluster.network, "--add-host", f"{cluster.controller_host}:{cluster.controller_ip}",
            "-v", f"{cluster.client_config}:/etc/slurm-config:ro", "-v", f"{cluster.keys}:/etc/slurm-keys:ro"]


@pytest.fixture(scope="session")
def slurm_cluster(jupyter_images) -> Cluster:
    """A real slurm-single-node (1 node) on its own podman network, with the Jupyter user known to it."""
    suffix = uuid.uuid4().hex[:8]
    workdir = tempfile.mkdtemp(prefix="sci-jupyter-")
    host = f"slurmctl-{suffix}"
    files = render_slurm_files("jtest", SLURM_VERSION, nodes=1, controller_host=host,
                               db_password=secrets.token_hex(12))
    server_cfg, client_cfg, keys = (os.path.join(workdir, d) for d in ("server", "client", "keys"))
    for d in (server_cfg, client_cfg, keys):
        os.makedirs(d)
    for name, text in files.items():
        with open(os.path.join(server_cfg, name), "w") as f:
            f.write(text)
        if name != "slurmdbd.conf":
            with open(os.path.join(client_cfg, name), "w") as f:
                f.write(text)
    os.chmod(os.path.join(server_cfg, "slurmdbd.conf"), 0o600)
    key = os.path.join(keys, "munge.key")
    with open(key, "wb") as f:
        f.write(os.urandom(1024))
    os.chmod(key, 0o400)

    network, container = f"sci-jt-{suffix}", f"sci-jt-slurm-{suffix}"
    podman("network", "create", network)
    podman("run", "-d", "--name", container, "--hostname", host, "--network", network,
           "-v", f"{server_cfg}:/etc/slurm-config:ro", "-v", f"{keys}:/etc/slurm-keys:ro",
           jupyter_images["slurm-single-node"])
    ip = podman("inspect", "--format", f"{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}",
                container).stdout.strip()
    cluster = Cluster(network, container, host, ip, client_cfg, keys, workdir)
    try:
        def ready():
            state = podman("inspect", "--format", "{{.State.Status}}", container).stdout.strip()
            if state != "running":
                pytest.fail(f"slurm-single-node exited ({state}):\n{cluster.logs()}")
            return cluster.exec("test", "-e", "/run/slurm/ready", check=False).returncode == 0
        wait_for("slurm-single-node to be ready (/run/slurm/ready)", ready, 120, cluster.logs)
        # Slurm runs a job as its submitter's uid and needs that user on the controller and the nodes (a site
        # has LDAP/SSSD for this): the notebook user of the Jupyter images, jovyan (uid 1000, gid 100).
        cluster.exec("sh", "-c", f"getent passwd {NB_UID} >/dev/null || "
                                 f"useradd --uid {NB_UID} --gid {NB_GID} --no-create-home jovyan")
        yield cluster
    finally:
        podman("rm", "-f", "-t", "5", container, check=False)
        podman("network", "rm", "-f", network, check=False)
        shutil.rmtree(workdir, ignore_errors=True)


# --- Jupyter containers -----------------------------------------------------------------------------------
@dataclass
class JupyterContainer:
    name: str
    url: str  # http://127.0.0.1:PORT
    ip: str = ""
    extra: dict = field(default_factory=dict)

    def logs(self) -> str:
        p = podman("logs", "--tail", "60", self.name, check=False)
        return p.stdout + p.stderr

    def exec(self, *cmd: str, user: Optional[str] = None, check: bool = True, timeout: float = 30):
        args = ["exec"] + (["--user", user] if user else []) + [self.name, *cmd]
        return podman(*args, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def start_jupyter():
    """start_jupyter(image, *podman_run_args, cmd=(), ready_path=...) -> JupyterContainer; removed after the module."""
    started: list[str] = []

    def start(image: str, *run_args: str, cmd: tuple[str, ...] = (), ready_path: Optional[str] = "/api/status",
              name: Optional[str] = None) -> JupyterContainer:
        name = name or f"sci-jt-{uuid.uuid4().hex[:8]}"
        podman("run", "-d", "--name", name, "-p", "127.0.0.1::8888", *run_args, image, *cmd)
        started.append(name)
        port = podman("port", name, "8888/tcp").stdout.strip().rsplit(":", 1)[-1]
        networks = json.loads(podman("inspect", "--format", "{{json .NetworkSettings.Networks}}", name).stdout or "{}")
        ip = next((n.get("IPAddress", "") for n in (networks or {}).values()), "")
        c = JupyterContainer(name, f"http://127.0.0.1:{port}", ip)
        if ready_path is not None:
            def up():
                state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
                if state != "running":
                    pytest.fail(f"container {name} ({image}) exited:\n{c.logs()}")
                # Any HTTP answer (403 without a token) means the server listens.
                return requests.get(c.url + ready_path, timeout=5).status_code
            wait_for(f"{image} to answer {ready_path}", up, 90, c.logs)
        return c

    yield start
    for name in started:
        podman("rm", "-f", "-t", "3", name, check=False)


def run_entrypoint(image: str, *run_args: str, timeout: float = 60):
    """Run a container to completion (for the entrypoint's refusals); returns the CompletedProcess.
    Fails (and removes the container) if it is still running after `timeout` s."""
    name = f"sci-jt-run-{uuid.uuid4().hex[:8]}"
    try:
        return podman("run", "--rm", "--name", name, *run_args, image, check=False, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{image} was still running after {timeout}s (expected it to refuse to start):\n"
                    f"{(e.stderr or b'').decode(errors='replace')[-2000:]}")
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)
