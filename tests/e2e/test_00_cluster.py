"""Scenario 0, the local Kubernetes itself behaves like a real one (it needs the cluster alone, no stack): a pod made
before a `podman build` with a `RUN` step can still be deleted, and claims get volumes from local-path-provisioner: a
ReadWriteOnce claim is given to the pod's fsGroup and written by a non-root user, a ReadWriteMany claim is shared by two
pods, and a deleted claim takes its directory with it."""

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

import pytest

from tests.e2e.deployment import TIMINGS
from tests.e2e.kube import CRICTL, Kube
from tests.images.slurm_containers import podman, wait_until

pytestmark = pytest.mark.e2e

NAMESPACE = "sci-e2e-cluster"


@pytest.fixture(scope="module")
def kube(cluster):
    k = Kube(NAMESPACE)
    k.delete("namespace", NAMESPACE)  # what an interrupted run left
    k.kubectl("create", "namespace", NAMESPACE, namespaced=False)
    yield k
    k.delete("namespace", NAMESPACE)


@pytest.fixture(scope="module")
def shell_image(cluster) -> str:
    """The cluster's busybox image (local-path-provisioner's helper, toolchain/kube.d/local-path.yaml): a shell in the
    registry already."""
    config = Kube("local-path-storage").get("configmap", "local-path-config")
    return re.search(r"image: (\S+)", config["data"]["helperPod.yaml"]).group(1)


def shell_pod(kube: Kube, name: str, image: str, claims: tuple[str, ...] = (), security: Optional[dict] = None):
    """A pod that sleeps (for `kubectl exec`), each claim mounted at /CLAIM; Ready."""
    kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 1, "securityContext": security or {},
        "containers": [{"name": "sh", "image": image, "command": ["/bin/sh", "-c", "sleep 3600"],
                        "volumeMounts": [{"name": c, "mountPath": f"/{c}"} for c in claims]}],
        "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]}})
    pod = kube.pod(name)
    kube.wait_ready([pod], timeout=120)
    return pod


def claim(kube: Kube, name: str, mode: str, storage_class: Optional[str] = None) -> None:
    kube.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": {
        "accessModes": [mode], "resources": {"requests": {"storage": "1Gi"}},
        **({"storageClassName": storage_class} if storage_class else {})}})


def sh(kube: Kube, pod, script: str, check: bool = True) -> subprocess.CompletedProcess:
    return kube.exec(pod, "/bin/sh", "-c", script, check=check)


def delete_claim(kube: Kube, name: str) -> None:
    """Delete the claim; its volume and the volume's directory on this machine must go with it."""
    volume, path = kube.get("pvc", name)["spec"]["volumeName"], kube.volume_path(name)
    assert Path(path).is_dir(), f"the volume of {name} is not at {path}"
    kube.delete("pvc", name)
    wait_until(lambda: kube.kubectl("get", "pv", volume, check=False, namespaced=False).returncode != 0
               and not Path(path).exists(), 60, f"volume {volume} and its directory {path} to be deleted")


def test_a_pod_made_before_a_podman_build_with_a_run_step_can_still_be_deleted(kube, shell_image):
    pod = shell_pod(kube, "e2e-netns", shell_image)
    sandbox = subprocess.run([*CRICTL, "pods", "-q", "--namespace", NAMESPACE, "--name", pod.name],
                             capture_output=True, text=True, check=True, timeout=30).stdout.split()
    info = json.loads(subprocess.run([*CRICTL, "inspectp", *sandbox], capture_output=True, text=True, check=True,
                                     timeout=30).stdout)["info"]
    netns = next(n["path"] for n in info["runtimeSpec"]["linux"]["namespaces"] if n["type"] == "network")
    assert not re.match(r"(/var)?/run/netns/", netns), f"the pod's network namespace is where podman mounts: {netns}"

    with tempfile.TemporaryDirectory() as context:
        t0 = time.monotonic()
        image = podman("build", "-q", "--pull=never", "--no-cache", "-f", "-", context, timeout=300,
                       input="FROM debian:bookworm-slim\nRUN echo a RUN step in its own network namespace\n").stdout
        TIMINGS["podman build with a RUN step"] = time.monotonic() - t0
    podman("rmi", image.strip().splitlines()[-1])
    # Control: the build left /run/netns a mount point of its own, the mount that used to hide the pod's namespace.
    assert " /run/netns " in Path("/proc/self/mountinfo").read_text(), "podman did not mount /run/netns"

    t0 = time.monotonic()
    kube.delete("pod", pod.name, timeout=60)
    TIMINGS["kubectl delete pod after the build"] = time.monotonic() - t0
    assert kube.kubectl("get", "pod", pod.name, check=False).returncode != 0, "the pod is still there"


def test_a_read_write_once_claim_is_given_to_the_pods_fsgroup_and_written_by_a_non_root_user(kube, shell_image):
    claim(kube, "e2e-rwo", "ReadWriteOnce")  # the default StorageClass
    pod = shell_pod(kube, "e2e-fsgroup", shell_image, ("e2e-rwo",),
                    {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000})
    assert kube.get("pvc", "e2e-rwo")["spec"]["storageClassName"] == "local-path"
    # Control: the user is not root, so cannot write where the fsGroup does not reach.
    denied = sh(kube, pod, "echo x > /not-a-volume", check=False)
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied

    out = sh(kube, pod, "id -u; id -G; echo written > /e2e-rwo/file; stat -c '%g %A' /e2e-rwo /e2e-rwo/file").stdout
    uid, groups, volume, file = out.splitlines()
    assert (uid, "2000" in groups.split()) == ("1000", True), out
    # As on a cloud disk, the kubelet gives the volume to the fsGroup (setgid), so new files are the group's.
    (volume_gid, volume_mode), file_gid = volume.split(), file.split()[0]
    assert (volume_gid, volume_mode[6]) == ("2000", "s"), f"the volume is not the fsGroup's: {volume}"
    assert file_gid == "2000", f"a new file is not the fsGroup's: {file}"
    kube.delete("pod", pod.name)
    delete_claim(kube, "e2e-rwo")


def test_a_read_write_many_claim_is_shared_by_two_pods(kube, shell_image):
    claim(kube, "e2e-rwx", "ReadWriteMany", "local-path-shared")
    a = shell_pod(kube, "e2e-shared-a", shell_image, ("e2e-rwx",), {"runAsUser": 1000, "runAsGroup": 1000})
    b = shell_pod(kube, "e2e-shared-b", shell_image, ("e2e-rwx",), {"runAsUser": 1001, "runAsGroup": 1001})
    sh(kube, a, "echo from a > /e2e-rwx/a")
    assert sh(kube, b, "cat /e2e-rwx/a; echo from b > /e2e-rwx/b").stdout == "from a\n"
    assert sh(kube, a, "cat /e2e-rwx/b; ls /e2e-rwx").stdout == "from b\na\nb\n"
    for pod in (a, b):
        kube.delete("pod", pod.name)
    delete_claim(kube, "e2e-rwx")
