"""The `local` stack, deployed for real: `scripts/pulumi up --stack local`, then its rendered objects run by
tests/e2e/kube_runner.py. Shared by the end-to-end tests (tests/e2e) and scripts/bench-e2e.

Everything a test needs is read from what the stack produced (rendered objects, stack outputs): the names of the
workloads come from their `app.kubernetes.io/name` labels (the components' APP constants), the Slurm facts
(REST API version, node names) from the rendered ConfigMap, keys and the token from the rendered Secrets.
`SCI_RENDERED_DIR=DIR` runs an already rendered directory instead, without Pulumi (the tests that need the
Pulumi CLI then skip).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Optional

from components import jupyter, restd, single_node
from tests.e2e.kube_runner import KubeRunner, NotReady, Pod, wait_until
from tests.manifests.rendered import local_render_dir

ROOT = Path(__file__).resolve().parents[2]
STACK = "local"
NB_USER = "jovyan"  # the notebook user of the Jupyter images (dockerfiles/README.md)
TIMINGS: dict[str, float] = {}  # phase -> seconds, printed at the end of the e2e session (conftest)
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "PREEMPTED")


class PulumiFailed(AssertionError):
    pass


def pulumi(*args: str, check: bool = True, timeout: float = 3600) -> subprocess.CompletedProcess:
    """scripts/pulumi ARGS --stack local --non-interactive (the project's wrapper around the real CLI)."""
    cmd = [str(ROOT / "scripts" / "pulumi"), *args, "--stack", STACK, "--non-interactive"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise PulumiFailed(f"{' '.join(['scripts/pulumi', *cmd[1:]])} exited {proc.returncode}:\n"
                           f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def pulumi_up() -> float:
    """`scripts/pulumi up --stack local --yes`; returns its seconds."""
    t0 = time.monotonic()
    pulumi("up", "--yes", "--skip-preview")
    return time.monotonic() - t0


def pulumi_destroy() -> float:
    t0 = time.monotonic()
    pulumi("destroy", "--yes", "--skip-preview")
    return time.monotonic() - t0


def stack_output(name: str, secret: bool = False) -> str:
    args = ["stack", "output", name] + (["--show-secrets"] if secret else [])
    return pulumi(*args).stdout.strip()


def stack_outputs() -> dict:
    return json.loads(pulumi("stack", "output", "--json").stdout)


def render_dir() -> Path:
    given = os.environ.get("SCI_RENDERED_DIR")
    return Path(given) if given else local_render_dir()


def uses_pulumi() -> bool:
    return not os.environ.get("SCI_RENDERED_DIR")


class Deployment:
    """The running stack: its pods (by app), the rendered facts and Slurm operations on it."""

    def __init__(self, runner: KubeRunner):
        self.runner = runner

    # --- pods ------------------------------------------------------------------------------------------------
    def app(self, app: str) -> Pod:
        for p in self.runner.pods.values():
            if p.labels.get("app.kubernetes.io/name") == app:
                return p
        raise AssertionError(f"no running pod with app.kubernetes.io/name={app}: "
                             f"{[(p.name, p.labels) for p in self.runner.pods.values()]}")

    @property
    def slurm(self) -> Pod:
        return self.app(single_node.APP)

    @property
    def jupyter(self) -> Pod:
        return self.app(jupyter.APP)

    @property
    def restd(self) -> Pod:
        return self.app(restd.APP)

    @property
    def namespace(self) -> str:
        return self.slurm.namespace

    def service_of(self, pod: Pod) -> str:
        """The name of the Service that selects `pod`."""
        for svc in self.runner.of_kind("Service"):
            sel = svc["spec"].get("selector") or {}
            if sel and sel.items() <= pod.labels.items() and svc["metadata"].get("namespace") == pod.namespace:
                return svc["metadata"]["name"]
        raise AssertionError(f"no Service selects pod {pod.name}")

    # --- rendered facts --------------------------------------------------------------------------------------
    def config_files(self) -> dict[str, str]:
        """The rendered Slurm files of the ConfigMap every Slurm pod mounts ({name: text})."""
        for cm in self.runner.of_kind("ConfigMap"):
            if "slurm.conf" in (cm.get("data") or {}):
                return dict(cm["data"])
        raise AssertionError("no rendered ConfigMap holds slurm.conf")

    def image_env(self) -> dict[str, str]:
        text = self.config_files()["slurm-image.env"]
        return dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.M))

    def node_names(self) -> list[str]:
        return re.findall(r"^NodeName=(\S+)", self.config_files()["slurm.conf"], re.M)

    def secret_with(self, key: str) -> tuple[str, bytes]:
        """(name, value) of the one rendered Secret that holds `key` (e.g. munge.key)."""
        found = [(s["metadata"]["name"], self.runner.secret_data(s["metadata"].get("namespace", "default"),
                                                                  s["metadata"]["name"])[key])
                 for s in self.runner.of_kind("Secret") if key in (s.get("data") or {}) or key in (s.get("stringData") or {})]
        assert len(found) == 1, f"expected one Secret with {key}, found {[n for n, _ in found]}"
        return found[0]

    def jupyter_token(self) -> str:
        """JUPYTER_TOKEN of the JupyterLab pod, from the Secret its secretKeyRef names."""
        env = self.jupyter.spec["containers"][0]["env"]
        ref = next(e["valueFrom"]["secretKeyRef"] for e in env if e["name"] == jupyter.TOKEN_ENV)
        return self.runner.secret_data(self.namespace, ref["name"])[ref["key"]].decode()

    # --- Slurm -----------------------------------------------------------------------------------------------
    def token(self, user: str = NB_USER, lifespan: int = 600) -> str:
        """A JWT minted in the single node (the stack output slurmTokenHint's command)."""
        out = self.runner.exec(self.slurm, "scontrol", "token", f"username={user}", f"lifespan={lifespan}").stdout
        return out.strip().split("=", 1)[1]

    def sbatch(self, pod: Pod, script: str, *args: str, user: Optional[str] = NB_USER) -> str:
        """sbatch --parsable ARGS < script, in `pod` as `user` (the notebook user's terminal); the job id."""
        cmd = "cd /tmp && sbatch --parsable " + " ".join(shlex.quote(a) for a in args)
        out = self.runner.exec(pod, "sh", "-c", cmd, user=user, input=script).stdout.strip()
        return out.split(";")[0]

    def sacct(self, job_id: str, fields: str = "State", pod: Optional[Pod] = None) -> str:
        out = self.runner.exec(pod or self.slurm, "timeout", "10", "sacct", "-n", "-X", "-P", "-j", job_id, "-o",
                               fields, check=False).stdout.strip()
        return out.splitlines()[0] if out else ""

    def squeue(self, job_id: str, fmt: str = "%T %r") -> str:
        return self.runner.exec(self.slurm, "timeout", "10", "squeue", "-h", "-j", job_id, "-o", fmt,
                                check=False).stdout.strip()

    def wait_job(self, job_id: str, state: str = "COMPLETED", timeout: float = 60, pod: Optional[Pod] = None) -> str:
        """Wait until sacct shows the job in `state`; fail at once if it ends in another final state."""
        def done():
            s = self.sacct(job_id, pod=pod)
            first = s.split(" ")[0]
            if first in FINAL_STATES and first != state:
                raise NotReady(f"job {job_id} ended {s}, expected {state}\n{self.slurm_logs()}")
            return first == state and s
        return wait_until(done, timeout, f"job {job_id} to be {state} in sacct", self.slurm_logs)

    def slurm_logs(self) -> str:
        tail = self.runner.exec(self.slurm, "sh", "-c", "tail -n 15 /var/log/slurm/slurmctld.log", check=False)
        return self.runner.logs(self.slurm, 30) + f"\n--- slurmctld.log:\n{tail.stdout}"
