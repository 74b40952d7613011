"""The end-to-end hub's image (tests/e2e/hub/hub) runs the configuration tests/e2e/hub_config.py renders from the chart
values, and its real KubeSpawner makes from it the user pods the chart's hub would make: read through KubeSpawner's
own get_pod_manifest(), no Kubernetes needed (a kubeconfig naming no reachable server is enough to construct it).
Fast feedback for what tests/e2e/test_03_jupyterhub.py checks on the cluster."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from components import directory
from components.jupyterhub import jupyterhub_values
from tests.e2e import hub_config
from tests.e2e.hub_deployment import build_hub_image
from tests.helm import chart, helm_merge
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
    def __init__(self, name):
        self.name = self.escaped_name = name
        self.id, self.url = 1, f"/user/{name}/"

async def main():  # one line of JSON {"user", "pod" or "error"} per user, for /cfg/jupyterhub_config.py
    plain = ApiClient().sanitize_for_serialization
    config = PyFileConfigLoader("jupyterhub_config.py", path="/cfg").load_config()
    for name in os.environ["USERS"].split():
        spawner = KubeSpawner(config=config, user=User(name), _mock=True)
        try:
            print(json.dumps({"user": name, "pod": plain(await spawner.get_pod_manifest())}))
        except Exception as e:
            print(json.dumps({"user": name, "error": f"{type(e).__name__}: {e}"}))

asyncio.run(main())
'''


USERS = (directory.User("alice", 2001, 2001, ("research",)), directory.User("bob", 2002, 2102))
GROUPS = {"research": 3000}
OUTSIDER = "carol"


def values() -> dict:
    v = jupyterhub_values(image_name="127.0.0.1:5000/nb", image_tag="e2e@sha256:" + "cd" * 32,
                          config_files={"slurm.conf": "ClusterName=x\n"}, users=USERS, groups=GROUPS,
                          home_claim="home-1", token_url="http://tokens:8090/token", hub_password="p" * 32, egress=[])
    return json.loads(json.dumps(v))


@pytest.fixture(scope="module")
def made(version) -> dict[str, dict]:
    """{user: pod manifest, or {"error": ...}} the hub image's KubeSpawner makes from the program's values (merged over
    the chart's defaults, rendered by hub_config), for the directory's users and one outsider, in one container run."""
    image = build_hub_image("hub", IMAGE)
    with tempfile.TemporaryDirectory() as d:
        Path(d, "jupyterhub_config.py").write_text(hub_config.render(helm_merge(chart()[0], values())))
        Path(d, "manifests.py").write_text(MANIFESTS)
        for p in [Path(d), *Path(d).rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)  # the image runs as uid 1000, like the chart's hub
        names = " ".join([*(u.name for u in USERS), OUTSIDER])
        out = podman("run", "--rm", "-v", f"{d}:/cfg:ro", "-w", "/tmp", "-e", "KUBECONFIG=/tmp/kubeconfig",
                     "-e", f"USERS={names}", image, "python3", "/cfg/manifests.py", timeout=120).stdout
    found = {f["user"]: f.get("pod") or {"error": f["error"]} for f in map(json.loads, out.splitlines())
             if f}
    assert set(found) == set(names.split()), out
    return found


def test_kubespawner_makes_each_users_pod_as_that_user(made):
    su = values()["singleuser"]
    for user in USERS:
        pod = made[user.name]
        container = pod["spec"]["containers"][0]
        assert pod["metadata"]["name"] == f"jupyter-{user.name}"
        assert container["image"] == f"{su['image']['name']}:{su['image']['tag']}"
        assert container["args"] == [su["cmd"]]
        assert container["securityContext"] == {"runAsUser": user.uid, "runAsGroup": user.gid,
                                                "allowPrivilegeEscalation": False}
        gids = [GROUPS[g] for g in user.groups]  # KubeSpawner leaves an empty list out
        assert pod["spec"]["securityContext"] == {"fsGroup": user.gid, **({"supplementalGroups": gids} if gids else {})}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        items = {i["key"]: i["mode"] for i in volumes["files"]["secret"]["items"]}
        assert items == {k: f["mode"] for k, f in su["extraFiles"].items()}
        assert "munge" not in json.dumps(pod) and "jwt" not in json.dumps(pod)
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        home = mounts.pop(f"/home/{user.name}")
        assert (home["name"], home["subPath"]) == ("home", user.name)
        assert volumes["home"]["persistentVolumeClaim"]["claimName"] == "home-1"
        assert {(m["name"], m.get("subPath")) for m in mounts.values()} == {("files", k) for k in su["extraFiles"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["SLURM_TOKEN_URL"] == "http://tokens:8090/token"
        assert env["HOME"] == f"/home/{user.name}"  # {username} expanded, as in the home's mount path
        labels = pod["metadata"]["labels"]
        assert labels.items() >= su["extraLabels"].items() and labels["app.kubernetes.io/managed-by"] == "kubespawner"


def test_a_user_outside_the_directory_gets_no_pod(made):
    assert made[OUTSIDER] == {"error": f"ValueError: {OUTSIDER} is not in the Slurm cluster's user directory "
                                       "(config users)"}
