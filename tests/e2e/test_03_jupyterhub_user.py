"""Scenario 3: a JupyterHub user's server, configured exactly as the chart values of
`components.jupyterhub.jupyterhub_values()` configure single-user pods (see tests/e2e/jupyterhub_user.py for what is
derived and how), spawned through a real JupyterHub, submits a job that completes on the deployed Slurm."""

import hashlib
import json
import secrets

import pytest
import requests

from components.keys import MUNGE_KEY_FILE
from components.pods import CONFIG_MOUNT, KEYS_MOUNT
from tests.e2e.deployment import NB_USER
from tests.e2e.jupyterhub_user import (HUB_PORT, SERVER_PORT, build_notebook_image, chart_values, cmd_list,
                                       hub_objects, job_script, singleuser_pod, singleuser_secret)
from tests.images.slurm_containers import WaitTimeout, wait_until

pytestmark = pytest.mark.e2e

USER = "hpcuser"  # a hub user name; the server runs as the image's jovyan


@pytest.fixture(scope="module")
def notebook_ref(deployment):
    client = deployment.restd.spec["containers"][0]["image"]  # the slurm-client image the stack deployed
    return build_notebook_image(client, deployment.image_env()["SLURM_VERSION"])


@pytest.fixture(scope="module")
def values(deployment, notebook_ref):
    return chart_values(deployment, notebook_ref)


@pytest.fixture(scope="module")
def hub(deployment, notebook_ref, values):
    d = deployment
    token = secrets.token_hex(32)
    objects = hub_objects(d.namespace, notebook_ref, cmd_list(values["singleuser"]["cmd"]), token)
    for obj in objects:
        d.kube.create(obj)
    try:
        pod = d.kube.pod("e2e-hub")
        d.kube.wait_ready([pod], timeout=180)
        with d.kube.port_forward("service/e2e-hub", HUB_PORT) as local_port:
            url = f"http://127.0.0.1:{local_port}/hub/api"

            def api(method, path, **kw):
                return requests.request(method, url + path, headers={"Authorization": f"token {token}"},
                                        timeout=30, **kw)
            version = api("GET", "/").json()["version"]
            assert version.startswith("5.5."), f"the hub runs JupyterHub {version}, the chart's is 5.5"
            yield pod, api
    finally:
        for obj in reversed(objects):
            d.kube.delete(obj["kind"], obj["metadata"]["name"])


@pytest.fixture(scope="module")
def server(deployment, hub, values):
    """USER's server: spawned through the hub's API, its pod made from the chart values + what the hub handed off."""
    d = deployment
    hub_pod, api = hub
    assert api("POST", f"/users/{USER}").status_code in (201, 409)
    r = api("POST", f"/users/{USER}/server")
    assert r.status_code in (201, 202), r.text
    spec = json.loads(wait_until(
        lambda: d.kube.exec(hub_pod, "cat", f"/srv/handoff/{USER}.json", check=False).stdout, 60,
        "the hub's spawner to hand off the server's environment and command", lambda: d.kube.logs(hub_pod)))
    assert spec["cmd"][:len(cmd_list(values["singleuser"]["cmd"]))] == cmd_list(values["singleuser"]["cmd"])

    pvc, pod = singleuser_pod(values, d.namespace, USER, spec["env"], spec["cmd"])
    objects = [singleuser_secret(values, d.namespace), pvc, pod]
    for obj in objects:
        d.kube.create(obj)
    try:
        nb = d.kube.pod(pod["metadata"]["name"])
        d.kube.wait_ready([nb], timeout=180)
        nb = d.kube.pod(nb.name)  # with its address
        d.kube.exec(hub_pod, "sh", "-c", f"echo http://{nb.ip}:{SERVER_PORT} > /srv/handoff/{USER}.url")

        def ready():
            if d.kube.phase(nb) != "Running":
                raise WaitTimeout(f"the single-user pod is {d.kube.phase(nb)}\n{d.kube.logs(nb)}")
            return api("GET", f"/users/{USER}").json()["servers"].get("", {}).get("ready")
        wait_until(ready, 120, f"the hub to see {USER}'s server ready",
                   lambda: d.kube.logs(hub_pod) + "\n" + d.kube.logs(nb))
        r = api("POST", f"/users/{USER}/tokens", json={"note": "e2e", "expires_in": 3600})
        assert r.status_code in (200, 201), r.text
        yield nb, f"http://{nb.ip}:{SERVER_PORT}/user/{USER}", r.json()["token"]
    finally:
        api("DELETE", f"/users/{USER}/server")
        for obj in reversed(objects):
            d.kube.delete(obj["kind"], obj["metadata"]["name"])


def test_the_users_pod_has_the_chart_values_files_modes_uid_and_image(deployment, server, values, notebook_ref):
    d = deployment
    nb, _, _ = server
    su = values["singleuser"]
    files = d.config_files()
    _, munge_key = d.secret_with("munge.key")
    for name, text in files.items():
        path = f"{CONFIG_MOUNT}/{name}"
        assert d.kube.exec(nb, "stat", "-L", "-c", "%a %U", path).stdout.split() == ["644", "root"], path
        assert d.kube.exec(nb, "cat", path).stdout == text, path
    key = f"{KEYS_MOUNT}/{MUNGE_KEY_FILE}"
    # fsGroup 0 (singleuser.fsGid): the kubelet adds group read for group root only.
    assert d.kube.exec(nb, "stat", "-L", "-c", "%a %U %G", key).stdout.split() == ["440", "root", "root"]
    assert d.kube.exec(nb, "sha256sum", "/etc/munge/munge.key").stdout.split()[0] == \
        hashlib.sha256(munge_key).hexdigest(), "the server's munged does not use the stack's munge key"
    assert d.kube.exec(nb, "cat", key, user=NB_USER, check=False).returncode != 0, "jovyan can read the munge key"
    # uid 0 starts it (singleuser.uid), the server itself runs as jovyan; the image is the one pinned by digest.
    assert su["uid"] == 0 and su["fsGid"] == 0
    procs = d.kube.exec(nb, "ps", "-eo", "user:20,args").stdout
    assert any(line.split()[0] == NB_USER and "jupyterhub-singleuser" in line for line in procs.splitlines()), procs
    image = nb.spec["containers"][0]["image"]
    assert image.endswith(notebook_ref.split("@", 1)[1]) and ":e2e@sha256:" in image, image


def test_the_hub_guards_the_users_server(server):
    _, url, token = server
    assert requests.get(f"{url}/api/status", timeout=10).status_code == 403
    assert requests.get(f"{url}/api/status", headers={"Authorization": f"token {secrets.token_hex(16)}"},
                        timeout=10).status_code == 403
    assert requests.get(f"{url}/api/status", headers={"Authorization": f"token {token}"}, timeout=10).status_code == 200


def test_a_job_submitted_through_the_users_server_completes(deployment, server):
    d = deployment
    nb, url, token = server
    auth = {"Authorization": f"token {token}"}
    name = f"hub-{secrets.token_hex(3)}"
    r = requests.put(f"{url}/api/contents/{name}.sh", headers=auth, timeout=30,
                     json={"type": "file", "format": "text", "content": job_script(name)})
    assert r.status_code in (200, 201), r.text
    r = requests.post(f"{url}/jupyterlab_slurm/sbatch", headers=auth, timeout=60,
                      json={"inputPath": f"/home/{NB_USER}/{name}.sh", "outputPath": f"/home/{NB_USER}"})
    body = r.json()
    assert r.status_code == 200 and body.get("success"), body
    job = str(body["data"]["jobId"])
    assert d.wait_job(job).startswith("COMPLETED")
    assert d.sacct(job, "User,JobName") == f"{NB_USER}|{name}"
    out = d.kube.exec(d.slurm, "cat", f"/tmp/{name}-{job}.out").stdout
    assert f"{name} on {d.slurm.hostname} as {NB_USER}" in out, out
