"""Real podman containers of slurm-single-node and slurm-client, for tests/images and scripts/bench.

No mocks: images are built from dockerfiles/ with podman, configuration comes from
components/slurm_files.render_slurm_files(), and every wait is on an actual condition with a timeout.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import pytest

from components import single_node
from components.images import CLIENT_BASED, build_context, dockerfile, extra_ca_certs
from components.keys import MUNGE_KEY_FILE, SLURM_KEY_FILE
from components.slurm_config import existing_cluster_image_env
from components.slurm_files import (
    AUTH_MUNGE,
    AUTH_SLURM,
    DEFAULT_SLURM_VERSION,
    SLURMRESTD_PORT,
    auth_slurm_supported,
    render_slurm_files,
    version_facts,
)
from tests.project_env import ROOT

EXAMPLES = os.path.join(ROOT, "examples")


def memory_hog(mb: int, seconds: int) -> str:
    """A shell command that touches `mb` MB at once, then holds them `seconds` (a job over its --mem)."""
    return f"python3 -c 'import time; b = b\"x\" * ({mb} << 20); time.sleep({seconds})'"


def slurm_version() -> str:
    """The Slurm version under test: $SLURM_VERSION, else the project default."""
    version = os.environ.get("SLURM_VERSION", DEFAULT_SLURM_VERSION)
    version_facts(version)  # ValueError naming the supported versions
    return version


def auth_slurm_only():
    """pytest's mark for a module that runs auth/slurm: skipped on a Slurm version this project does not run it on
    (components/slurm_files.py AUTH_SLURM_SINCE; of its versions, 26.05)."""
    version = slurm_version()
    return pytest.mark.skipif(not auth_slurm_supported(version),
                              reason=f"Slurm {version}: this project runs auth/slurm from Slurm 25.05 on "
                                     "(components/slurm_files.py AUTH_SLURM_SINCE; of its versions, 26.05)")


def image_tag(image: str, version: str) -> str:
    """localhost/IMAGE:VERSION, plus $SCI_IMAGE_TAG_SUFFIX (so concurrent checkouts do not overwrite each other's)."""
    return f"localhost/{image}:{version}{os.environ.get('SCI_IMAGE_TAG_SUFFIX', '')}"


# --- podman -------------------------------------------------------------------------------------------------
def _env() -> dict:
    env = dict(os.environ)
    conf = os.path.join(env.get("SCI_CACHE", "/var/cache/slurm-cloud-integration"), "containers.conf")
    if "CONTAINERS_CONF" not in env and os.path.exists(conf):
        env["CONTAINERS_CONF"] = conf  # what scripts/env.sh sets (runc, cgroupfs, low ulimits)
    return env


class CommandFailed(AssertionError):
    pass


def run(*args: str, check: bool = True, timeout: float = 60, input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run a command (text). With check, a non-zero exit raises CommandFailed showing its output."""
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=_env(), input=input)
    except subprocess.TimeoutExpired as e:
        raise CommandFailed(f"{' '.join(args)} did not finish within {timeout}s:\n{e.stdout}\n{e.stderr}") from None
    if check and proc.returncode != 0:
        raise CommandFailed(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def podman(*args: str, **kw) -> subprocess.CompletedProcess:
    return run("podman", *args, **kw)


class WaitTimeout(AssertionError):
    pass


def wait_until(condition: Callable[[], object], timeout: float, what: str,
               detail: Callable[[], str] = lambda: "", interval: float = 0.1):
    """Poll `condition` until it returns something truthy (returned). After `timeout` s raise WaitTimeout
    naming `what`, the last exception the condition raised, and `detail()` (e.g. container logs)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except (WaitTimeout, KeyboardInterrupt):
            raise
        except Exception as e:  # not there yet (connection refused, command failed, ...)
            last = e
        if time.monotonic() >= deadline:
            extra = detail()
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}"
                              + (f"; last error: {last}" if last else "") + (f"\n{extra}" if extra else ""))
        time.sleep(interval)


def build_image(image: str, version: str, no_cache: bool = False, base_image: Optional[str] = None,
                tag: Optional[str] = None) -> tuple[str, float]:
    """podman build dockerfiles/IMAGE for a Slurm version, with the build args SlurmImages gives it (the Jupyter
    images: BASE_IMAGE, the slurm-client image, and the machine's EXTRA_CA_CERTS); returns (tag, seconds)."""
    tag = tag or image_tag(image, version)
    args = ["-f", dockerfile(image), "--build-arg", f"DEBIAN_SUITE={version_facts(version).debian_suite}"]
    if base_image:
        args += ["--build-arg", f"BASE_IMAGE={base_image}"]
    if image in CLIENT_BASED:
        args += ["--target", image]
    if no_cache:
        args.append("--no-cache")
    t0 = time.monotonic()
    podman_build(build_context(image), tag, *args, ca_certs=bool(base_image))
    return tag, time.monotonic() - t0


def podman_build(context: str, tag: str, *args: str, ca_certs: bool) -> None:
    """podman build CONTEXT as TAG with ARGS; `ca_certs`: pass the machine's EXTRA_CA_CERTS (for Dockerfiles whose
    pip or npm stage declares that build arg)."""
    if ca_certs and extra_ca_certs():
        args = (*args, "--build-arg", f"EXTRA_CA_CERTS={extra_ca_certs()}")
    podman("build", "--pull=never", "--format", "docker", "-q", "-t", tag, *args, context, timeout=1800)


def image_size(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


# --- configuration and keys ---------------------------------------------------------------------------------
@dataclass
class SlurmFiles:
    """Rendered files and keys in a temp dir, laid out as the contract mounts them."""

    dir: str
    version: str
    controller_host: str
    nodes: list[str]
    server_config: str = ""  # slurm.conf, cgroup.conf, slurmdbd.conf, slurm-image.env
    client_config: str = ""  # the same without slurmdbd.conf
    keys: str = ""  # munge.key (or key_file), jwt_hs256.key (the single node's)
    client_keys: str = ""  # munge.key (or key_file) only (what a client gets)
    munge_key: bytes = b""  # the cluster's key: munge.key's, or with auth/slurm slurm.key's
    key_file: str = MUNGE_KEY_FILE
    jwt_key: bytes = b""

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def make_files(version: str, controller_host: str, nodes: int = 2, cluster_name: str = "scitest",
               keys: bool = True, throughput: bool = True, auth_type: str = AUTH_MUNGE) -> SlurmFiles:
    """`throughput`, `auth_type`: render_slurm_files' (throughput False: Slurm's default scheduling settings, for
    scripts/bench; auth_type AUTH_SLURM: a slurm.key instead of munge.key)."""
    files = render_slurm_files(cluster_name, version, nodes, controller_host,
                               db_password=secrets.token_urlsafe(18).replace("-", "_"), throughput=throughput,
                               auth_type=auth_type)
    d = tempfile.mkdtemp(prefix="sci-images-")
    out = SlurmFiles(d, version, controller_host, [f"c{i}" for i in range(1, nodes + 1)],
                     os.path.join(d, "server"), os.path.join(d, "client"), os.path.join(d, "keys"))
    for sub in (out.server_config, out.client_config, out.keys):
        os.makedirs(sub)
    for name, text in files.items():
        _write(os.path.join(out.server_config, name), text.encode(), 0o600 if name == "slurmdbd.conf" else 0o644)
        if name != "slurmdbd.conf":
            _write(os.path.join(out.client_config, name), text.encode(), 0o644)
    if keys:
        out.key_file = SLURM_KEY_FILE if auth_type == AUTH_SLURM else MUNGE_KEY_FILE
        out.munge_key, out.jwt_key = os.urandom(1024), os.urandom(32)
        _write(os.path.join(out.keys, out.key_file), out.munge_key, 0o400)
        _write(os.path.join(out.keys, "jwt_hs256.key"), out.jwt_key, 0o400)
        out.client_keys = os.path.join(d, "client-keys")
        os.makedirs(out.client_keys)
        _write(os.path.join(out.client_keys, out.key_file), out.munge_key, 0o400)
    return out


def write_key_dir(key: bytes, name: str = "munge.key") -> str:
    """A directory holding the key file `name` (munge.key, or an auth/slurm site's slurm.key) as Kubernetes mounts a
    Secret's file: root's, 0400."""
    d = tempfile.mkdtemp(prefix="sci-keys-")
    _write(os.path.join(d, name), key, 0o400)
    return d


def write_client_config(site, version: str, parent: str) -> str:
    """A client's /etc/slurm-config for the outside `site` (tests/site_cluster.py): its slurm.conf and the
    slurm-image.env derived from it, in `parent`/config; returns that directory."""
    conf = os.path.join(parent, "config")
    os.makedirs(conf)
    shutil.copy(site.slurm_conf_path, conf)
    for name, text in existing_cluster_image_env(site.slurm_conf, "site", version).items():
        with open(os.path.join(conf, name), "w") as f:
            f.write(text)
    return conf


def _write(path: str, data: bytes, mode: int):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


# --- containers -----------------------------------------------------------------------------------------------
def new_network() -> str:
    name = f"sci-img-{uuid.uuid4().hex[:8]}"
    podman("network", "create", name)
    return name


@dataclass
class SingleNode:
    """A running slurm-single-node container."""

    name: str
    image: str
    files: SlurmFiles
    network: str
    volume: str
    mount_keys: bool = True
    run_args: tuple[str, ...] = ()  # more podman run arguments (--memory, -v)
    # SLURMRESTD_LISTEN: the tests reach its slurmrestd from outside; None keeps the image's 127.0.0.1 (the pod's).
    rest_listen: Optional[str] = "0.0.0.0:6820"
    # What root keeps in the pod (every other capability dropped, no new privileges), as the stack deploys it.
    capabilities: tuple[str, ...] = single_node.CAPABILITIES
    started_at: float = 0.0
    ip: str = ""
    timings: dict = field(default_factory=dict)

    def start(self) -> "SingleNode":
        args = ["run", "-d", "--no-healthcheck", "--name", self.name, "--hostname", self.files.controller_host,
                "--network", self.network, "-v", f"{self.files.server_config}:/etc/slurm-config:ro",
                "-v", f"{self.volume}:/var/lib/slurm-state"]
        if self.mount_keys:
            args += ["-v", f"{self.files.keys}:/etc/slurm-keys:ro"]
        if self.rest_listen:
            args += ["-e", f"SLURMRESTD_LISTEN={self.rest_listen}"]
        args += ["--cap-drop=ALL", f"--cap-add={','.join(self.capabilities)}", "--security-opt=no-new-privileges"]
        args += self.run_args
        self.started_at = time.monotonic()
        podman(*args, self.image)
        self.ip = podman("inspect", "--format",
                         f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}', self.name).stdout.strip()
        return self

    def status(self) -> str:
        return podman("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()

    def exit_code(self) -> int:
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())

    def logs(self, tail: int = 60) -> str:
        p = podman("logs", "--tail", str(tail), self.name, check=False)
        return f"--- podman logs {self.name}:\n{p.stdout}{p.stderr}"

    def exec(self, *cmd: str, check: bool = True, timeout: float = 30, input: Optional[str] = None):
        return podman("exec", "-i", self.name, *cmd, check=check, timeout=timeout, input=input)

    def _running(self):
        if self.status() != "running":
            raise WaitTimeout(f"{self.name} is no longer running (exit code {self.exit_code()})\n{self.logs()}")

    def wait_for(self, condition: Callable[[], object], what: str, timeout: float = 60):
        """wait_until, but fail at once (with the logs) if the container stops."""
        def probe():
            self._running()
            return condition()
        return wait_until(probe, timeout, what, self.logs)

    def node_states(self) -> dict[str, str]:
        out = self.exec("timeout", "5", "sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout
        return dict(line.split() for line in out.splitlines() if line.strip())

    def nodes_idle(self) -> bool:
        states = self.node_states()
        return sorted(states) == sorted(self.files.nodes) and all(s == "idle" for s in states.values())

    def rest_ready(self) -> bool:
        return self.exec("slurm-healthcheck", "--rest", check=False).returncode == 0

    def wait_ready(self, timeout: float = 90) -> "SingleNode":
        self.wait_for(self.nodes_idle, f"all nodes {self.files.nodes} idle in sinfo", timeout)
        self.timings["nodes_idle"] = time.monotonic() - self.started_at
        self.wait_for(self.rest_ready, "slurmrestd to answer ping (slurm-healthcheck --rest)", timeout)
        self.timings["rest_ready"] = time.monotonic() - self.started_at
        return self

    def token(self, user: str = "root", lifespan: int = 600) -> str:
        out = self.exec("scontrol", "token", f"username={user}", f"lifespan={lifespan}").stdout
        return out.strip().split("=", 1)[1]

    def sbatch(self, *args: str, script: Optional[str] = None) -> str:
        """sbatch --parsable ARGS (script on stdin if given); returns the job id."""
        out = self.exec("sbatch", "--parsable", *args, input=script).stdout.strip()
        return out.split(";")[0]

    def sacct(self, job_id: str, fields: str = "State") -> str:
        out = self.exec("timeout", "10", "sacct", "-n", "-X", "-P", "-j", job_id, "-o", fields, check=False).stdout
        return out.strip().splitlines()[0] if out.strip() else ""

    def wait_job(self, job_id: str, state: str = "COMPLETED", timeout: float = 60) -> str:
        final = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")

        def done():
            s = self.sacct(job_id)
            if s.split(" ")[0] in final and not s.startswith(state):
                raise WaitTimeout(f"job {job_id} ended {s}, expected {state}\n{self.logs()}")
            return s.startswith(state) and s
        return self.wait_for(done, f"job {job_id} to be {state} in sacct", timeout)

    def stop(self, timeout: int = 20):
        podman("stop", "-t", str(timeout), self.name, check=False, timeout=timeout + 30)

    def remove(self):
        podman("rm", "-f", "-t", "5", self.name, check=False)


def run_client(image: str, files: SlurmFiles, node: SingleNode, *cmd: str, keys_dir: Optional[str] = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """podman run --rm slurm-client CMD, with the client files, a munge key and the controller's name."""
    return podman("run", "--rm", "--no-healthcheck", "--network", node.network,
                  "--add-host", f"{files.controller_host}:{node.ip}",
                  "-v", f"{files.client_config}:/etc/slurm-config:ro",
                  "-v", f"{keys_dir or files.client_keys}:/etc/slurm-keys:ro", image, *cmd, check=False, timeout=timeout)


@contextmanager
def client_restd(image: str, node: SingleNode, name: str) -> Iterator[str]:
    """slurm-client's slurmrestd (behind its REST gate) as container `name` against `node`; yields its base URL
    http://IP:6820, and removes the container after."""
    files = node.files
    podman("run", "-d", "--no-healthcheck", "--name", name, "--network", node.network,
           "--add-host", f"{files.controller_host}:{node.ip}",
           "-v", f"{files.client_config}:/etc/slurm-config:ro", "-v", f"{files.client_keys}:/etc/slurm-keys:ro", image)
    try:
        ip = podman("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{node.network}").IPAddress}}}}',
                    name).stdout.strip()
        yield f"http://{ip}:{SLURMRESTD_PORT}"
    finally:
        podman("rm", "-f", "-t", "3", name, check=False)
