"""The end-to-end hub's image (tests/e2e/hub/hub) runs the configuration tests/e2e/hub_config.py renders from the chart
values, and its real KubeSpawner makes from it the user pod and claim the chart's hub would make: read through
KubeSpawner's own get_pod_manifest()/get_pvc_manifest(), no Kubernetes needed (a kubeconfig naming no reachable
server is enough to construct it). Fast feedback for what tests/e2e/test_03_jupyterhub.py checks on the cluster."""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

import pytest

from components import pods
from components.jupyterhub import jupyterhub_values
from tests.e2e import hub_config
from tests.e2e.hub_deployment import build_hub_image
from tests.helm import chart_reference, helm_merge
from tests.images.slurm_containers import podman

pytestmark = pytest.mark.containers

IMAGE = "localhost/sci-e2e-jupyterhub:test"
MANIFESTS = r'''
import asyncio, json, os
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from traitlets.config import PyFileConfigLoader

with open(os.environ["KUBECONFIG"], "w") as f:  # names no reachable server: nothing is contacted
    f.write("apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: 'https://127.0.0.1:1'}}]\n"
            "users: [{name: x, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n"
            "current-context: x\n")

class User:
    name = escaped_name = "ada"
    id = 1
    url = "/user/ada/"

async def main():  # one line of JSON {"pod", "pvc"} per configuration /cfg/<case>/jupyterhub_config.py
    plain = ApiClient().sanitize_for_serialization
    for case in sorted(os.listdir("/cfg/cases")):
        config = PyFileConfigLoader("jupyterhub_config.py", path=f"/cfg/cases/{case}").load_config()
        spawner = KubeSpawner(config=config, user=User(), _mock=True)
        print(json.dumps({"pod": plain(await spawner.get_pod_manifest()), "pvc": plain(spawner.get_pvc_manifest())}))

asyncio.run(main())
'''


def values(**singleuser) -> dict:
    v = jupyterhub_values(image_name="127.0.0.1:5000/nb", image_tag="e2e@sha256:" + "cd" * 32,
                          config_files={"slurm.conf": "ClusterName=x\n"},
                          munge_key_base64=base64.b64encode(b"k" * 1024).decode(), hub_password="p" * 32, egress=[])
    v["singleuser"].update(singleuser)
    return json.loads(json.dumps(v))


def without_fs_gid() -> dict:
    v = values()
    v["singleuser"].pop("fsGid", None)
    return v


CASES = {"program": values(), "fsGid 2000": values(fsGid=2000), "fsGid null": values(fsGid=None),
         "fsGid not given": without_fs_gid()}


@pytest.fixture(scope="module")
def made(version) -> dict[str, tuple[dict, dict]]:
    """{case: (pod, pvc)} the hub image's KubeSpawner makes for user ada from CASES' values (the program's values
    merged over the chart's defaults, rendered by hub_config), in one container run."""
    image = build_hub_image("hub", IMAGE)
    names = sorted(CASES)
    with tempfile.TemporaryDirectory() as d:
        for i, name in enumerate(names):
            case = Path(d, "cases", f"{i:02}")
            case.mkdir(parents=True)
            case.joinpath("jupyterhub_config.py").write_text(
                hub_config.render(helm_merge(chart_reference("values.yaml"), CASES[name])))
        Path(d, "manifests.py").write_text(MANIFESTS)
        for p in [Path(d), *Path(d).rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)  # the image runs as uid 1000, like the chart's hub
        out = podman("run", "--rm", "-v", f"{d}:/cfg:ro", "-w", "/tmp", "-e", "KUBECONFIG=/tmp/kubeconfig",
                     image, "python3", "/cfg/manifests.py", timeout=120).stdout
    found = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(found) == len(names), out
    return {name: (f["pod"], f["pvc"]) for name, f in zip(names, found, strict=True)}


def test_kubespawner_makes_the_user_pod_the_chart_values_describe(made):
    v = CASES["program"]
    pod, pvc = made["program"]
    su = v["singleuser"]
    container = pod["spec"]["containers"][0]
    assert pod["metadata"]["name"] == "jupyter-ada"
    assert container["image"] == f"{su['image']['name']}:{su['image']['tag']}"
    assert container["args"] == [su["cmd"]]
    assert container["securityContext"] == {"runAsUser": 0, "allowPrivilegeEscalation": False}
    assert pod["spec"].get("securityContext", {}).get("fsGroup") == su.get("fsGid")
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    items = {i["key"]: i["mode"] for i in volumes["files"]["secret"]["items"]}
    assert items == {k: f["mode"] for k, f in su["extraFiles"].items()} and items["munge-key"] == pods.KEY_MODE
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert {(m["name"], m.get("subPath")) for p, m in mounts.items() if p != "/home/jovyan"} == {
        ("files", k) for k in su["extraFiles"]}
    assert volumes[mounts["/home/jovyan"]["name"]]["persistentVolumeClaim"]["claimName"] == "claim-ada"
    assert pvc["metadata"]["name"] == "claim-ada" and pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    labels = pod["metadata"]["labels"]
    assert labels.items() >= su["extraLabels"].items() and labels["app.kubernetes.io/managed-by"] == "kubespawner"


@pytest.mark.parametrize("case, fs_group", [("fsGid null", None), ("fsGid 2000", 2000), ("fsGid not given", 100)])
def test_the_pods_fs_group_is_singleuser_fs_gid_with_the_charts_null_semantics(made, case, fs_group):
    """A null fsGid: no fsGroup (KubeSpawner's default). Not given at all: the chart's values.yaml default, 100."""
    pod, _ = made[case]
    assert (pod["spec"].get("securityContext") or {}).get("fsGroup") == fs_group
