"""A JupyterHub user's server on the deployed stack, built from the chart values the program computes.

The cluster stack has no JupyterHub release (the chart cannot be fetched here), so this derives what the chart
would:
- the values: `components.jupyterhub.jupyterhub_values()` with the stack's Slurm files (its ConfigMap) and
  generated munge key (its Secret), and the notebook image built as `SlurmImages` builds it
  (dockerfiles/slurm-jupyter-notebook FROM the slurm-client image the stack deployed), pushed to the local
  registry and pinned by digest through `split_image_ref()`; Helm-merged with the chart's default values
  (../shared/reference/z2jh/values.yaml), as `helm install` would;
- the objects from those values, as the chart and its hub configuration (z2jh's jupyterhub_config.py with
  KubeSpawner) make them: the `singleuser` Secret holding `singleuser.extraFiles` (stringData as is, binaryData
  as data), and the user's pod: image `name:tag`, args `singleuser.cmd`, `runAsUser: singleuser.uid`,
  `fsGroup: singleuser.fsGid` (absent when null), `allowPrivilegeEscalation`, one secret volume `files` whose
  items carry each file's mode, mounted file by file with subPath at each `mountPath`, the home PVC at
  `storage.homeMountPath`, the labels `extraLabels`.
- the hub: a real JupyterHub 5.5 (from the notebook image, the chart's hub version) with the hand-off spawner of
  tests/images/test_jupyter_notebook.py, whose environment and command for the user's server (what KubeSpawner
  would put in the pod) go into that pod. Not emulated: the chart's proxy (the test reaches the server directly),
  the pre-puller, the user scheduler, the cloud-metadata init container, NetworkPolicies.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
from pathlib import Path

from components.jupyterhub import jupyterhub_values, split_image_ref
from tests.e2e.deployment import Deployment
from tests.helm import chart_reference, helm_merge
from tests.images.slurm_containers import build_image, podman

NOTEBOOK_REPO = "slurm-cloud-integration-e2e/slurm-jupyter-notebook"  # not the stack's repository: built here
HUB_PORT = 8081
SERVER_PORT = 8888


def build_notebook_image(client_image: str, slurm_version: str, tag: str = "e2e") -> str:
    """dockerfiles/slurm-jupyter-notebook FROM `client_image`, pushed to $SCI_REGISTRY; `name@sha256:...`."""
    registry = os.environ.get("SCI_REGISTRY", "127.0.0.1:5000")
    name = f"{registry}/{NOTEBOOK_REPO}:{tag}"
    build_image("slurm-jupyter-notebook", slurm_version, base_image=client_image, tag=name)
    with tempfile.TemporaryDirectory() as d:
        digest_file = os.path.join(d, "digest")
        podman("push", "--digestfile", digest_file, name, timeout=600)
        digest = Path(digest_file).read_text().strip()
    return f"{name.rsplit(':', 1)[0]}@{digest}"


def chart_values(deployment: Deployment, notebook_ref: str, tag: str = "e2e") -> dict:
    """jupyterhub_values() for the stack's Slurm files and munge key, merged with the chart defaults."""
    files = {k: v for k, v in deployment.config_files().items()}
    _, munge_key = deployment.secret_with("munge.key")
    name, image_tag = split_image_ref(notebook_ref, tag)
    values = jupyterhub_values(image_name=name, image_tag=image_tag, config_files=files,
                               munge_key_base64=base64.b64encode(munge_key).decode(),
                               hub_password=secrets.token_hex(16), egress=[])
    return helm_merge(chart_reference("values.yaml"), json.loads(json.dumps(values)))


def singleuser_secret(values: dict, namespace: str) -> dict:
    """The chart's `singleuser` Secret: singleuser.extraFiles' stringData and binaryData."""
    files = values["singleuser"]["extraFiles"]
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "singleuser", "namespace": namespace},
            "stringData": {k: f["stringData"] for k, f in files.items() if "stringData" in f},
            "data": {k: f["binaryData"] for k, f in files.items() if "binaryData" in f}}


def singleuser_pod(values: dict, namespace: str, user: str, env: dict, args: list[str]) -> tuple[dict, dict]:
    """(home PVC, pod) for `user` as KubeSpawner makes them from the chart's configuration."""
    su = values["singleuser"]
    files = su["extraFiles"]
    storage = su.get("storage") or {}
    claim = f"claim-{user}"
    volumes = [{"name": "files", "secret": {"secretName": "singleuser", "items": [
        {"key": k, "path": k, **({"mode": f["mode"]} if "mode" in f else {})} for k, f in files.items()]}}]
    mounts = [{"name": "files", "mountPath": f["mountPath"], "subPath": k} for k, f in files.items()]
    if storage.get("type", "dynamic") == "dynamic":
        volumes.append({"name": f"volume-{user}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"volume-{user}", "mountPath": storage.get("homeMountPath", "/home/jovyan")})
    security = {"allowPrivilegeEscalation": su.get("allowPrivilegeEscalation", False)}
    if su.get("uid") is not None:
        security["runAsUser"] = su["uid"]
    pod_security = {"fsGroup": su["fsGid"]} if su.get("fsGid") is not None else {}
    image = su["image"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": f"jupyter-{user}", "namespace": namespace,
                        "labels": {**(su.get("extraLabels") or {}), "component": "singleuser-server",
                                   "hub.jupyter.org/username": user}},
           "spec": {"restartPolicy": "OnFailure", "securityContext": pod_security, "volumes": volumes,
                    "containers": [{"name": "notebook", "image": f"{image['name']}:{image['tag']}",
                                    "imagePullPolicy": image.get("pullPolicy") or "IfNotPresent",
                                    "args": list(args), "env": [{"name": k, "value": v} for k, v in env.items()],
                                    "ports": [{"name": "notebook-port", "containerPort": SERVER_PORT}],
                                    "securityContext": security, "volumeMounts": mounts}]}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim, "namespace": namespace},
           "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": storage.get("capacity", "10Gi")}}}}
    return pvc, pod


def cmd_list(cmd) -> list[str]:
    return [cmd] if isinstance(cmd, str) else list(cmd)


def hub_objects(namespace: str, image: str, cmd: list[str], service_token: str) -> list[dict]:
    """A real JupyterHub (tests/images' hand-off spawner), its config, secret and Service."""
    from tests.images.test_jupyter_notebook import HUB_CONFIG  # the images' hub stand-in (one copy of it)

    config = HUB_CONFIG + f"\n# singleuser.cmd of the chart values\nc.Spawner.cmd = {json.dumps(cmd)}\n"
    labels = {"app.kubernetes.io/name": "e2e-hub", "component": "hub"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "e2e-hub", "namespace": namespace},
         "data": {"jupyterhub_config.py": config}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "e2e-hub", "namespace": namespace},
         "stringData": {"service-token": service_token, "password": secrets.token_hex(16)}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "e2e-hub", "namespace": namespace},
         "spec": {"selector": labels, "ports": [{"name": "hub", "port": HUB_PORT, "targetPort": HUB_PORT}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "e2e-hub", "namespace": namespace, "labels": labels},
         "spec": {"restartPolicy": "Always",
                  "volumes": [{"name": "config", "configMap": {"name": "e2e-hub"}},
                              {"name": "handoff", "emptyDir": {}}],
                  "containers": [{
                      "name": "hub", "image": image, "imagePullPolicy": "IfNotPresent",
                      "command": ["/opt/jupyter/bin/jupyterhub"], "args": ["-f", "/srv/jupyterhub_config.py"],
                      "workingDir": "/tmp",
                      "env": [{"name": "HUB_SERVICE_TOKEN", "valueFrom": {"secretKeyRef": {"name": "e2e-hub",
                                                                                          "key": "service-token"}}},
                              {"name": "HUB_DUMMY_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "e2e-hub",
                                                                                           "key": "password"}}}],
                      "volumeMounts": [{"name": "config", "mountPath": "/srv/jupyterhub_config.py",
                                        "subPath": "jupyterhub_config.py"},
                                       {"name": "handoff", "mountPath": "/srv/handoff"}],
                      "readinessProbe": {"httpGet": {"path": "/hub/api", "port": HUB_PORT}, "periodSeconds": 1,
                                         "timeoutSeconds": 3}}]}},
    ]


def job_script(name: str) -> str:
    return f"#!/bin/bash\n#SBATCH --job-name={name}\n#SBATCH --chdir=/tmp\n#SBATCH --output=/tmp/{name}-%j.out\n" \
           f"echo {name} on $(hostname) as $(id -un)\n"
