"""The real Kubernetes of `toolchain/kube`, driven with kubectl as its users would drive it.

Everything here goes through the API server: pods are what the StatefulSet and Deployment controllers made,
files are what the kubelet mounted, names resolve through CoreDNS, Services through kube-proxy, and NetworkPolicies
are enforced by kube-network-policies (toolchain/kube).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from tests.images.slurm_containers import WaitTimeout, wait_until

KUBE_DIR = os.path.join(os.environ.get("SCI_CACHE", "/var/cache/slurm-cloud-integration"), "kube")  # toolchain/kube's
KUBECTL = os.path.join(KUBE_DIR, "bin", "kubectl")
CRICTL = [os.path.join(KUBE_DIR, "bin", "crictl"), "--runtime-endpoint", "unix:///run/sci-containerd/containerd.sock"]


class KubectlFailed(AssertionError):
    pass


@dataclass
class Pod:
    name: str
    namespace: str
    uid: str
    labels: dict
    spec: dict
    status: dict

    @staticmethod
    def of(obj: dict) -> "Pod":
        meta = obj["metadata"]
        return Pod(meta["name"], meta["namespace"], meta["uid"], meta.get("labels") or {}, obj["spec"],
                   obj.get("status") or {})

    @property
    def ip(self) -> str:
        return self.status.get("podIP", "")

    @property
    def hostname(self) -> str:
        return self.spec.get("hostname") or self.name

    @property
    def claims(self) -> list[str]:
        return [v["persistentVolumeClaim"]["claimName"] for v in self.spec.get("volumes", [])
                if "persistentVolumeClaim" in v]


class Kube:
    """kubectl on one namespace of the cluster named by $SCI_KUBECONFIG."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.env = {**os.environ, "KUBECONFIG": os.environ["SCI_KUBECONFIG"]}

    def kubectl(self, *args: str, input: Optional[str] = None, check: bool = True, timeout: float = 60,
                namespaced: bool = True) -> subprocess.CompletedProcess:
        cmd = [KUBECTL, *(["-n", self.namespace] if namespaced else []), *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=self.env)
        except subprocess.TimeoutExpired as e:
            raise KubectlFailed(f"kubectl {' '.join(args)} did not finish within {timeout:g}s: {e.stderr}") from None
        if check and proc.returncode != 0:
            raise KubectlFailed(f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}"
                                f"{proc.stderr[-3000:]}")
        return proc

    # --- objects ---------------------------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> dict:
        return json.loads(self.kubectl("get", kind, name, "-o", "json").stdout)

    def of_kind(self, kind: str) -> list[dict]:
        return json.loads(self.kubectl("get", kind, "-o", "json").stdout)["items"]

    def secret_data(self, name: str) -> dict[str, bytes]:
        return {k: base64.b64decode(v) for k, v in (self.get("secret", name).get("data") or {}).items()}

    def create(self, obj: dict) -> None:
        self.kubectl("create", "-f", "-", input=json.dumps(obj))

    def delete(self, kind: str, name: str, timeout: float = 120) -> None:
        """Delete the object and wait until it and what it owns are gone (foreground cascade): with the default
        background cascade a Deployment's pods outlive it for a while, and a next test's Service of the same
        selector routes to them."""
        self.kubectl("delete", kind, name, "--ignore-not-found", "--cascade=foreground", "--wait=true",
                     f"--timeout={int(timeout)}s", timeout=timeout + 10)

    def delete_labelled(self, kind: str, selector: str, timeout: float = 120) -> None:
        """Delete every object of `kind` matching the label `selector` (e.g. what a spawner made)."""
        self.kubectl("delete", kind, "-l", selector, "--ignore-not-found", "--wait=true", f"--timeout={int(timeout)}s",
                     timeout=timeout + 10)

    # --- pods ------------------------------------------------------------------------------------------------
    @property
    def pods(self) -> list[Pod]:
        """The pods that are not being deleted."""
        return [Pod.of(p) for p in self.of_kind("pod") if not p["metadata"].get("deletionTimestamp")]

    def pod(self, name: str) -> Pod:
        return Pod.of(self.get("pod", name))

    def phase(self, pod: Pod) -> str:
        return self.pod(pod.name).status.get("phase", "")

    def wait_ready(self, pods: list[Pod], timeout: float = 300) -> None:
        for pod in pods:
            proc = self.kubectl("wait", "--for=condition=Ready", f"pod/{pod.name}", f"--timeout={int(timeout)}s",
                                check=False, timeout=timeout + 10)
            if proc.returncode != 0:
                raise WaitTimeout(f"pod {pod.name} not Ready within {timeout:g}s: {proc.stderr.strip()}\n"
                                  f"{self.describe(pod)}\n{self.logs(pod)}")

    def wait_exited(self, pod: Pod, timeout: float = 120) -> int:
        """The exit code of the pod's (only) container, once it has terminated."""
        def exited():
            statuses = self.pod(pod.name).status.get("containerStatuses") or [{}]
            terminated = (statuses[0].get("state") or {}).get("terminated")
            return terminated and str(terminated["exitCode"])
        return int(wait_until(exited, timeout, f"pod {pod.name} to exit", lambda: self.describe(pod)))

    def restart(self, pod: Pod, timeout: float = 180) -> Pod:
        """`kubectl delete pod`, then the controller's new pod of the same name (a StatefulSet's), Ready."""
        self.kubectl("delete", "pod", pod.name, "--wait=true", timeout=120)

        def recreated():
            new = self.pod(pod.name)
            return new.uid != pod.uid and new
        new = wait_until(recreated, 60, f"the controller to make pod {pod.name} again")
        self.wait_ready([new], timeout)
        return self.pod(pod.name)

    def exec(self, pod: Pod, *cmd: str, user: Optional[str] = None, check: bool = True, timeout: float = 60,
             input: Optional[str] = None) -> subprocess.CompletedProcess:
        """`kubectl exec` in the pod's container; as `user` through runuser (the containers start as root)."""
        if user:
            cmd = ("runuser", "-u", user, "--", *cmd)
        args = ["exec", *(["-i"] if input is not None else []), pod.name, "--", *cmd]
        return self.kubectl(*args, input=input, check=check, timeout=timeout)

    def logs(self, pod: Pod, tail: int = 60) -> str:
        return self.kubectl("logs", pod.name, f"--tail={tail}", check=False).stdout

    def describe(self, pod: Pod) -> str:
        return self.kubectl("describe", "pod", pod.name, check=False).stdout[-3000:]

    def volume_path(self, claim: str) -> str:
        """The directory on this machine that holds the volume bound to `claim` (a local or hostPath volume)."""
        pv = self.kubectl("get", "pv", self.get("pvc", claim)["spec"]["volumeName"], "-o", "json", namespaced=False)
        spec = json.loads(pv.stdout)["spec"]
        return (spec.get("local") or spec.get("hostPath"))["path"]

    @contextmanager
    def port_forward(self, target: str, port: int) -> Iterator[int]:
        """`kubectl port-forward TARGET :PORT` (e.g. service/x); yields the local port on 127.0.0.1."""
        proc = subprocess.Popen([KUBECTL, "-n", self.namespace, "port-forward", target, f":{port}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
        try:
            line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:NNNNN -> PORT"
            m = re.search(r"127\.0\.0\.1:(\d+)", line)
            if not m:
                proc.kill()
                raise KubectlFailed(f"kubectl port-forward {target} :{port}: {line}{proc.stderr.read()}")
            yield int(m.group(1))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
