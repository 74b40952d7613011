"""Scenario 8, run last (marked `teardown`: tests/e2e/conftest.py puts it after every other test of the session, as it
removes what they use): `scripts/pulumi destroy --stack cluster --yes` with two JupyterHub users' servers still running
removes every object the stack made, the servers first: they are KubeSpawner's, neither Helm's nor Pulumi's, and they
mount the home claim, whose kubernetes.io/pvc-protection would hold Pulumi's delete of it for 10 minutes and fail it;
the stack's UserServers (components/user_servers.py) deletes them before the claim. The control: while they run and
nothing removes them, the claim's delete does not finish. Deleting the Namespace takes the rest with it, and each
dynamically made volume goes with its claim; then `toolchain/kube down` stops the cluster. No container, volume,
process, mount or network rule of the deployment or of the cluster is left behind."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.deployment import TIMINGS, Deployment, pulumi, pulumi_destroy, stack_output
from tests.e2e.hub_deployment import (
    HubUser,
    chart_values,
    crash_check,
    hub_images,
    hub_logs,
    password,
    running_hub,
    single_node_egress,
    start_and_time,
)
from tests.e2e.kube import CRICTL, KUBE_DIR, Kube
from tests.images.slurm_containers import wait_until
from tests.project_env import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.teardown]

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


def holders(kube: Kube, claim: str) -> list[str]:
    """The pods that mount `claim` and have not finished, terminating ones included: while there is one, the claim
    keeps its kubernetes.io/pvc-protection finalizer (Kubernetes' pvc-protection controller) and cannot go."""
    return sorted(p["metadata"]["name"] for p in kube.of_kind("pod")
                  if p["status"].get("phase") not in ("Succeeded", "Failed")
                  and claim in [v["persistentVolumeClaim"]["claimName"] for v in p["spec"].get("volumes") or []
                                if "persistentVolumeClaim" in v])


def leave_to_servers(d: Deployment, claim: str, servers: list[str]) -> None:
    """Scale the stack's own workloads that mount `claim` to none, so that the servers alone hold it (the destroy
    deletes those workloads before the claim in any case)."""
    for kind in ("statefulset", "deployment"):
        for w in d.kube.of_kind(kind):
            volumes = w["spec"]["template"]["spec"].get("volumes") or []
            if claim in [(v.get("persistentVolumeClaim") or {}).get("claimName") for v in volumes]:
                d.kube.kubectl("scale", f"{kind}/{w['metadata']['name']}", "--replicas=0")
    wait_until(lambda: holders(d.kube, claim) == servers, 180, f"only {servers} to hold claim {claim}",
               lambda: str(holders(d.kube, claim)))


def bound_volumes(namespace: str, kube: Kube) -> dict[str, str]:
    """{PersistentVolume: its directory on this machine} of every volume bound to a claim of `namespace`."""
    pvs = json.loads(kube.kubectl("get", "pv", "-o", "json", namespaced=False).stdout)["items"]
    return {pv["metadata"]["name"]: (pv["spec"].get("local") or pv["spec"].get("hostPath"))["path"] for pv in pvs
            if (pv["spec"].get("claimRef") or {}).get("namespace") == namespace}


def test_destroy_with_two_user_servers_running_and_teardown_leave_nothing_behind(deployment):
    d = deployment
    ns = d.namespace
    home = d.home_claim()
    users = [u.name for u in d.directory()[0]][:2]
    images = hub_images(d)
    values = chart_values(d, images["notebook"], stack_output("slurmTokenUrl"), egress=single_node_egress(d))
    with running_hub(d, images, values) as url:  # test_03's hub, from the stack's chart values
        for name in users:
            start_and_time(HubUser(url, name), password(values), crash_check(d, name), logs=hub_logs(d))
        servers = sorted(f"jupyter-{name}" for name in users)  # KubeSpawner's pod_name_template, the chart's
        assert set(servers) <= set(holders(d.kube, home)), f"the servers {servers} do not mount the home claim {home}"
        volumes = bound_volumes(ns, d.kube)
        assert d.kube.get("pvc", home)["spec"]["volumeName"] in volumes and all(Path(p).is_dir()
                                                                               for p in volumes.values()), volumes
        sandboxes = [s for s in crictl("pods") if s["metadata"]["namespace"] == ns]
        assert sandboxes, f"no pod of namespace {ns} in containerd before the teardown"

        # Control: what Pulumi's delete of the claim meets with the servers running and nothing to remove them (it
        # deletes, then waits, 10 minutes by default): the claim stays, terminating, held by the servers.
        leave_to_servers(d, home, servers)
        proc = d.kube.kubectl("delete", "pvc", home, "--wait=true", "--timeout=30s", check=False, timeout=60)
        assert proc.returncode != 0, f"the claim went with the servers running: {proc.stdout}"
        meta = d.kube.get("pvc", home)["metadata"]
        assert meta.get("deletionTimestamp") and "kubernetes.io/pvc-protection" in meta.get("finalizers", []), meta
        assert holders(d.kube, home) == servers and all(d.kube.phase(d.kube.pod(s)) == "Running" for s in servers)

        TIMINGS["pulumi destroy (two user servers running)"] = pulumi_destroy()
    resources = json.loads(pulumi("stack", "export").stdout)["deployment"].get("resources") or []
    assert [r["type"] for r in resources if r["type"] != "pulumi:pulumi:Stack"] == [], "resources left in the state"
    assert d.kube.kubectl("get", "namespace", ns, check=False, namespaced=False).returncode != 0, f"{ns} still exists"
    wait_until(lambda: not set(bound_volumes(ns, d.kube)) & set(volumes), 60,
               "the volumes to be deleted with their claims", lambda: str(bound_volumes(ns, d.kube)))
    assert not [p for p in volumes.values() if Path(p).exists()], f"volume directories left: {volumes}"
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
