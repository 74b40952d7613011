"""Scenario 7 (last: it removes what the other tests use): `scripts/pulumi destroy --stack cluster --yes` removes every
object the stack made, deleting the Namespace takes the pods and the claims with it, and the dynamically made volume
goes with its claim; then `toolchain/kube down` stops the cluster. No container, volume, process, mount or network rule
of the deployment or of the cluster is left behind."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.deployment import TIMINGS, pulumi, pulumi_destroy
from tests.e2e.kube import CRICTL, KUBE_DIR
from tests.images.slurm_containers import wait_until
from tests.project_env import ROOT

pytestmark = pytest.mark.e2e

KUBE = Path(KUBE_DIR)
DAEMONS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
           "kube-network-policies", "containerd", "containerd-shim-runc-v2")


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            continue
        found[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmd)
    return found


def descendants(pid: int) -> list[str]:
    """Processes below `pid` (this test run): pulumi plugins, browsers, port-forwards, ... that outlived their use."""
    procs = processes()
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(p)
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append(f"{p}: {procs[p][1]}")
        todo += children.get(p, [])
    return found


def crictl(what: str) -> list[dict]:
    """`crictl pods` or `crictl ps -a` on the cluster's containerd: what the kubelet left in the runtime."""
    args, key = {"pods": (["pods"], "items"), "containers": (["ps", "-a"], "containers")}[what]
    out = subprocess.run([*CRICTL, *args, "-o", "json"], capture_output=True, text=True, check=True, timeout=30).stdout
    return json.loads(out).get(key) or []


def test_destroy_and_teardown_leave_nothing_behind(deployment):
    d = deployment
    ns = d.namespace
    claims = d.slurm.claims
    volumes = [d.kube.get("pvc", c)["spec"]["volumeName"] for c in claims]
    paths = [d.kube.volume_path(c) for c in claims]
    assert volumes and all(Path(p).is_dir() for p in paths), f"the single node's volume should exist: {paths}"
    sandboxes = [s for s in crictl("pods") if s["metadata"]["namespace"] == ns]
    assert sandboxes, f"no pod of namespace {ns} in containerd before the teardown"

    TIMINGS["pulumi destroy"] = pulumi_destroy()
    resources = json.loads(pulumi("stack", "export").stdout)["deployment"].get("resources") or []
    assert [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"] == [], "resources left in the state"
    assert d.kube.kubectl("get", "namespace", ns, check=False, namespaced=False).returncode != 0, f"{ns} still exists"
    wait_until(lambda: not any(d.kube.kubectl("get", "pv", v, check=False, namespaced=False).returncode == 0
                               for v in volumes), 60, "the single node's volume to be deleted with its claim")
    assert not [p for p in paths if Path(p).exists()], f"volume directories left: {paths}"
    # Stopped sandboxes and containers stay in containerd until the kubelet's garbage collection: none may run.
    running = [s["metadata"]["name"] for s in crictl("pods")
               if s["metadata"]["namespace"] == ns and s["state"] != "SANDBOX_NOTREADY"]
    running += [c["metadata"]["name"] for c in crictl("containers")
                if c["labels"].get("io.kubernetes.pod.namespace") == ns and c["state"] != "CONTAINER_EXITED"]
    assert not running, f"pods or containers of {ns} still running in containerd: {running}"

    proc = subprocess.run([str(ROOT / "toolchain" / "kube"), "down"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cluster = [f"{p}: {cmd}" for p, (_, cmd) in processes().items()
               if cmd.split(" ")[0].rsplit("/", 1)[-1] in DAEMONS and (str(KUBE) in cmd or "sci-containerd" in cmd)]
    assert not cluster, f"cluster processes left: {cluster}"
    pods = Path("/sys/fs/cgroup/pids/kubepods")  # the kubelet's cgroups (cgroupfs driver, cgroup v1)
    containers = [f"{p.parent}: {p.read_text().split()}" for p in pods.rglob("cgroup.procs") if p.read_text().strip()]
    assert not containers, f"processes of pods left: {containers}"
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines()
              if str(KUBE) in line or "/run/sci-containerd" in line or "/run/netns/cni-" in line]
    assert not mounts, f"mounts left: {mounts}"
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert not [r for r in rules.splitlines() if "KUBE-" in r or "sci-kube" in r], "iptables rules of the cluster left"
    assert not Path("/sys/class/net/cni0").exists(), "the cluster's bridge cni0 is left"
    table = subprocess.run(["nft", "list", "table", "inet", "kube-network-policies"], capture_output=True, text=True)
    assert table.returncode != 0, f"the NetworkPolicy engine's nftables table is left:\n{table.stdout}"
    assert descendants(os.getpid()) == [], "processes started by the tests are still running"
