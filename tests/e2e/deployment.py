"""The `cluster` stack, deployed for real: `scripts/pulumi up --stack cluster` onto the single-node Kubernetes of
`toolchain/kube`. Shared by the end-to-end tests (tests/e2e) and scripts/bench.

Everything a test needs is read from what the stack made, through the API server: the workloads by their
`app.kubernetes.io/name` labels (the components' APP constants), the Slurm facts (REST API version, node names)
from the ConfigMap every Slurm pod mounts, keys and the token from the Secrets.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

from components import directory, jupyter, restd, single_node
from components.labels import PART_OF
from tests import project_env
from tests.e2e.kube import Kube, Pod
from tests.images.slurm_containers import WaitTimeout, wait_until

STACK = "cluster"
TIMINGS: dict[str, float] = {}  # phase -> seconds, printed at the end of the e2e session (conftest)
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "PREEMPTED")


def kube(*args: str) -> float:
    """`toolchain/kube ARGS` (e.g. "up": starts the cluster, or finds it running; "node", "kill", "1": node 1 dies);
    returns its seconds."""
    t0 = time.monotonic()
    proc = subprocess.run([str(project_env.ROOT / "toolchain" / "kube"), *args], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"toolchain/kube {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return time.monotonic() - t0


def kube_up() -> float:
    return kube("up")


def pulumi(*args: str, check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess:
    """tests/project_env.pulumi() on the cluster stack."""
    return project_env.pulumi(*args, stack=STACK, check=check, timeout=timeout)


def pulumi_up() -> float:
    """`scripts/pulumi up --stack cluster --yes` (returns once every workload is ready); returns its seconds."""
    t0 = time.monotonic()
    pulumi("up", "--yes", "--skip-preview")
    return time.monotonic() - t0


@dataclass
class Step:
    """One resource step of an update (`op`: create, same, update, replace, ...), in seconds since `pulumi up`
    started: from the engine's resourcePreEvent to its resOutputsEvent (for a workload, that includes the Kubernetes
    provider's wait for Ready)."""
    type: str  # e.g. docker:index/image:Image, kubernetes:apps/v1:StatefulSet
    name: str
    op: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Update:
    """A `pulumi up`, timed: `seconds` wall clock from `started` (time.time()); `steps` in start order; `summary`
    when the engine reported the update done; `changes` its resourceChanges ({op: count})."""
    seconds: float
    started: float = 0.0
    steps: list[Step] = field(default_factory=list)
    summary: float = float("nan")
    changes: dict[str, int] = field(default_factory=dict)

    def of_type(self, suffix: str) -> list[Step]:
        return [s for s in self.steps if s.type.endswith(suffix)]


def update_of(stamped: list[tuple[float, dict]], seconds: float) -> Update:
    """The Update of `pulumi up --json`'s engine events (one JSON object a line: resourcePreEvent, resOutputsEvent,
    summaryEvent, ...), each stamped with the seconds since the command started when its line arrived."""
    update, open_steps = Update(seconds), {}
    for t, event in stamped:
        for kind in ("resourcePreEvent", "resOutputsEvent", "resOpFailedEvent"):
            meta = (event.get(kind) or {}).get("metadata")
            if not meta:
                continue
            key = (meta["urn"], meta["op"])
            if kind == "resourcePreEvent":
                open_steps[key] = Step(meta["type"], meta["urn"].rsplit("::", 1)[-1], meta["op"], t, float("nan"))
            elif key in open_steps:
                step = open_steps.pop(key)
                step.end = t
                update.steps.append(step)
        if "summaryEvent" in event:
            update.summary = t
            update.changes = dict(event["summaryEvent"].get("resourceChanges") or {})
    update.steps.sort(key=lambda s: s.start)
    return update


def pulumi_up_timed(timeout: float = 3600) -> Update:
    """`scripts/pulumi up --stack cluster --yes --json`, its engine events stamped as they arrive; AssertionError
    with the output's tail if it fails."""
    cmd = project_env.pulumi_command("up", "--yes", "--skip-preview", "--json", stack=STACK)
    stamped, lines = [], []
    t0, started = time.monotonic(), time.time()
    with subprocess.Popen(cmd, cwd=project_env.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        for line in proc.stdout:
            now = time.monotonic() - t0
            lines.append(line)
            if now > timeout:
                proc.kill()
                raise AssertionError(f"pulumi up did not finish within {timeout:g}s")
            try:
                stamped.append((now, json.loads(line)))
            except ValueError:
                pass  # not an event (e.g. a plain message on stderr)
        code = proc.wait()
    seconds = time.monotonic() - t0
    if code != 0:
        raise AssertionError(f"scripts/pulumi up --stack {STACK} exited {code}:\n{''.join(lines[-60:])}")
    update = update_of(stamped, seconds)
    update.started = started
    return update


def pulumi_destroy() -> float:
    t0 = time.monotonic()
    pulumi("destroy", "--yes", "--skip-preview")
    return time.monotonic() - t0


def stack_output(name: str, secret: bool = False) -> str:
    args = ["stack", "output", name] + (["--show-secrets"] if secret else [])
    return pulumi(*args).stdout.strip()


class StackCopy:
    """A stack (`name`) on a copy of its committed config (`source`) at `config`, which the tests change."""

    def __init__(self, name: str, source: str, config):
        self.name, self.config = name, config
        config.write_text((project_env.ROOT / source).read_text())

    def set(self, *args: str, secret: bool = False) -> None:
        project_env.pulumi("config", "set", *(["--secret"] if secret else []), *args, stack=self.name,
                           config_file=self.config)

    def pulumi(self, *args: str, timeout: float = 1800):
        return project_env.pulumi(*args, "--yes", "--skip-preview", stack=self.name, config_file=self.config,
                                  timeout=timeout)

    @contextmanager
    def deployed(self, what: str) -> Iterator[None]:
        """`pulumi up` from scratch (a leftover of a run that stopped before its destroy is destroyed first), timed
        as `what`; `pulumi destroy` afterwards."""
        if project_env.pulumi("stack", "output", "namespace", stack=self.name, check=False).returncode == 0:
            self.pulumi("destroy")
        t0 = time.monotonic()
        try:
            self.pulumi("up")
            TIMINGS[f"pulumi up --stack {what} (from scratch)"] = time.monotonic() - t0
            yield
        finally:
            t0 = time.monotonic()
            self.pulumi("destroy")
            TIMINGS[f"pulumi destroy --stack {what}"] = time.monotonic() - t0


class Deployment:
    """The running stack: its pods (by app), the Slurm files and keys it deployed, and Slurm operations on it."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self.namespace = kube.namespace

    # --- pods ------------------------------------------------------------------------------------------------
    def app(self, app: str) -> Pod:
        found = [p for p in self.kube.pods if p.labels.get("app.kubernetes.io/name") == app]
        assert len(found) == 1, f"expected one pod with app.kubernetes.io/name={app}: {[p.name for p in found]}"
        return found[0]

    @property
    def slurm(self) -> Pod:
        return self.app(single_node.APP)

    @property
    def jupyter(self) -> Pod:
        return self.app(jupyter.APP)

    @property
    def restd(self) -> Pod:
        return self.app(restd.APP)

    def service_of(self, pod: Pod) -> str:
        """The name of the Service that selects `pod`."""
        for svc in self.kube.of_kind("service"):
            sel = svc["spec"].get("selector") or {}
            if sel and sel.items() <= pod.labels.items():
                return svc["metadata"]["name"]
        raise AssertionError(f"no Service selects pod {pod.name}")

    # --- what the stack deployed -----------------------------------------------------------------------------
    def config_files(self) -> dict[str, str]:
        """The Slurm files of the ConfigMap every Slurm pod mounts ({name: text}; a configless site's has no
        slurm.conf, only slurm-image.env)."""
        for cm in self.kube.of_kind("configmap"):
            if "slurm-image.env" in (cm.get("data") or {}):
                return dict(cm["data"])
        raise AssertionError("no ConfigMap holds slurm-image.env")

    def slurm_env(self) -> dict[str, str]:
        """The Slurm clients' environment (SlurmConfig.client_env: SLURM_CONF_SERVER for a configless site), as
        the JupyterLab container has it."""
        env = self.jupyter.spec["containers"][0].get("env") or []
        return {e["name"]: e["value"] for e in env if e["name"].startswith("SLURM_") and "value" in e}

    def image_env(self) -> dict[str, str]:
        text = self.config_files()["slurm-image.env"]
        return dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.M))

    def node_names(self) -> list[str]:
        return re.findall(r"^NodeName=(\S+)", self.config_files()["slurm.conf"], re.M)

    def secret_with(self, key: str) -> tuple[str, bytes]:
        """(name, value) of the one Secret of the stack (not of a test) that holds `key` (e.g. munge.key)."""
        found = [s["metadata"]["name"] for s in self.kube.of_kind("secret") if key in (s.get("data") or {})
                 and (s["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") == PART_OF]
        assert len(found) == 1, f"expected one Secret with {key}, found {found}"
        return found[0], self.kube.secret_data(found[0])[key]

    @property
    def lab_user(self) -> str:
        """The directory user JupyterLab runs as: its container's NB_USER (config jupyter.user)."""
        env = self.jupyter.spec["containers"][0]["env"]
        return next(e["value"] for e in env if e["name"] == jupyter.USER_ENV)

    def directory(self) -> tuple[list[directory.User], dict[str, int]]:
        """The users ConfigMap (components/directory.py's files) read back: (users, further groups by gid)."""
        data = next((cm["data"] for cm in self.kube.of_kind("configmap") if "passwd" in (cm.get("data") or {})), None)
        assert data, "no ConfigMap holds the user directory's passwd"
        groups = [line.split(":") for line in data["group"].split()]
        users = [directory.User(f[0], int(f[2]), int(f[3]), tuple(g[0] for g in groups if f[0] in g[3].split(",")))
                 for f in (line.split(":") for line in data["passwd"].split())]
        names = {u.name for u in users}
        return users, {g[0]: int(g[2]) for g in groups if g[0] not in names}

    def home_claim(self) -> str:
        """The shared home's claim: the one the JupyterLab pod mounts at /home."""
        volumes = {v["name"]: v for v in self.jupyter.spec["volumes"]}
        mount = next(m for m in self.jupyter.spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/home")
        return volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]

    def jupyter_token(self) -> str:
        """JUPYTER_TOKEN of the JupyterLab pod, from the Secret its secretKeyRef names."""
        env = self.jupyter.spec["containers"][0]["env"]
        ref = next(e["valueFrom"]["secretKeyRef"] for e in env if e["name"] == jupyter.TOKEN_ENV)
        return self.kube.secret_data(ref["name"])[ref["key"]].decode()

    # --- Slurm -----------------------------------------------------------------------------------------------
    def token(self, user: str, lifespan: int = 600) -> str:
        """A JWT minted in the Slurm pod (the stack output slurmTokenHint's command)."""
        out = self.kube.exec(self.slurm, "scontrol", "token", f"username={user}", f"lifespan={lifespan}").stdout
        return out.strip().split("=", 1)[1]

    def sbatch(self, pod: Pod, script: str, *args: str, user: str = "", workdir: str = "e2e") -> str:
        """sbatch --parsable ARGS < script, in `pod` as `user` (default: lab_user), from ~user/WORKDIR (made if
        missing), as in the user's terminal; the job id."""
        home = f"/home/{user or self.lab_user}"
        cmd = (f"mkdir -p {home}/{workdir} && cd {home}/{workdir} && sbatch --parsable "
               + " ".join(shlex.quote(a) for a in args))
        out = self.kube.exec(pod, "sh", "-c", cmd, user=user or self.lab_user, input=script).stdout.strip()
        return out.split(";")[0]

    def sacct(self, job_id: str, fields: str = "State", pod: Optional[Pod] = None) -> str:
        out = self.kube.exec(pod or self.slurm, "timeout", "10", "sacct", "-n", "-X", "-P", "-j", job_id, "-o",
                             fields, check=False).stdout.strip()
        return out.splitlines()[0] if out else ""

    def squeue(self, job_id: str, fmt: str = "%T %r") -> str:
        return self.kube.exec(self.slurm, "timeout", "10", "squeue", "-h", "-j", job_id, "-o", fmt,
                              check=False).stdout.strip()

    def wait_job(self, job_id: str, state: str = "COMPLETED", timeout: float = 60, pod: Optional[Pod] = None) -> str:
        """Wait until sacct shows the job in `state`; fail at once if it ends in another final state."""
        def done():
            s = self.sacct(job_id, pod=pod)
            first = s.split(" ")[0]
            if first in FINAL_STATES and first != state:
                raise WaitTimeout(f"job {job_id} ended {s}, expected {state}\n{self.slurm_logs()}")
            return first == state and s
        return wait_until(done, timeout, f"job {job_id} to be {state} in sacct", self.slurm_logs)

    def slurm_logs(self) -> str:
        tail = self.kube.exec(self.slurm, "sh", "-c", "tail -n 15 /var/log/slurm/slurmctld.log", check=False)
        return self.kube.logs(self.slurm, 30) + f"\n--- slurmctld.log:\n{tail.stdout}"
