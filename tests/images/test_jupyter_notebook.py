"""slurm-jupyter-notebook: a real JupyterHub spawns it, the hub authenticates every request, a job runs.

How real, and why:
- The hub is a real JupyterHub (`jupyterhub` from the notebook image itself, the version of the chart's
  hub, JUPYTERHUB_VERSION) with its real REST API, OAuth client registry, token store and spawn machinery.
- Two stand-ins, as small as possible: (1) a proxy class that only keeps the routing table, because
  configurable-http-proxy is a Node.js program not in the image; the test reaches the single-user server
  directly, as the proxy would. (2) The spawner: no Kubernetes here, so `HandOffSpawner` does what KubeSpawner
  does up to the pod: it computes the real environment (`Spawner.get_env()`: JUPYTERHUB_API_TOKEN, CLIENT_ID,
  API_URL, SERVICE_PREFIX, OAUTH scopes, ...) and the command (`singleuser.cmd` + args), hands them to the test,
  which starts the container with them (as root, like `singleuser.uid: 0`, with the Slurm files and munge key
  mounted where `singleuser.extraFiles` puts them), and returns its URL; the hub then waits for it to answer.
- The job is submitted through the single-user server (contents API + jupyterlab-slurm's sbatch endpoint), with
  a token the hub issued to the user, and seen COMPLETED through the server's sacct endpoint and on the cluster.
"""

import json
import os
import secrets
import shutil
import tempfile

import pytest
import requests

from tests.images.jupyter_fixtures import (
    JUPYTERHUB_VERSION,
    add_cluster_user,
    client_args,
    processes,
    run_entrypoint,
    submit_as,
)
from tests.images.slurm_containers import podman, wait_until

pytestmark = pytest.mark.containers

USER = "hpcuser"

HUB_CONFIG = r'''
import asyncio, json, os, socket
from jupyterhub.proxy import Proxy
from jupyterhub.spawner import Spawner

HANDOFF = "/srv/handoff"


class RoutesOnlyProxy(Proxy):
    """The hub's routing table without configurable-http-proxy (not in the image)."""
    should_start = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._routes = {}

    async def add_route(self, routespec, target, data):
        self._routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec):
        self._routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self._routes)


class HandOffSpawner(Spawner):
    """KubeSpawner up to the pod: the environment and command go to the test, which starts the container."""

    def _path(self, ext):
        return os.path.join(HANDOFF, self.user.name + ext)

    async def start(self):
        spec = {"env": self.get_env(), "cmd": self.cmd + self.get_args()}
        tmp = self._path(".json.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(spec, f)
        os.rename(tmp, self._path(".json"))
        for _ in range(int(self.start_timeout * 10)):
            if os.path.exists(self._path(".url")):
                with open(self._path(".url")) as f:
                    return f.read().strip()
            await asyncio.sleep(0.1)
        raise TimeoutError("nobody started the single-user container")

    async def poll(self):
        return None if os.path.exists(self._path(".url")) else 0

    async def stop(self, now=False):
        for ext in (".json", ".url"):
            try:
                os.remove(self._path(ext))
            except FileNotFoundError:
                pass


hub_ip = socket.gethostbyname(socket.gethostname())
c.JupyterHub.proxy_class = RoutesOnlyProxy
c.JupyterHub.spawner_class = HandOffSpawner
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["HUB_DUMMY_PASSWORD"]
c.Authenticator.allow_all = True
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.hub_connect_url = f"http://{hub_ip}:8081"
c.JupyterHub.db_url = "sqlite:////tmp/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/tmp/jupyterhub_cookie_secret"
# What the chart gives KubeSpawner: cmd jupyterhub-singleuser, port 8888 on all addresses, no hub env passed on.
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.ip = "0.0.0.0"
c.Spawner.port = 8888
c.Spawner.env_keep = []
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90
c.JupyterHub.services = [{"name": "pytest", "api_token": os.environ["HUB_SERVICE_TOKEN"]}]
c.JupyterHub.load_roles = [{"name": "pytest", "services": ["pytest"],
                            "scopes": ["admin:users", "admin:servers", "tokens", "list:users"]}]
'''

JOB_SCRIPT = """#!/bin/bash
#SBATCH --job-name={name}
#SBATCH --chdir=/tmp
#SBATCH --output=/tmp/{name}-%j.out
id
echo done-{name}
"""


class Hub:
    def __init__(self, url: str, token: str, container: str, handoff: str, ip: str):
        self.url, self.token, self.container, self.handoff, self.ip = url, token, container, handoff, ip

    def api(self, method, path, **kw):
        r = requests.request(method, f"{self.url}/hub/api{path}", headers={"Authorization": f"token {self.token}"},
                             timeout=30, **kw)
        return r

    def logs(self) -> str:
        p = podman("logs", "--tail", "40", self.container, check=False)
        return f"--- hub logs:\n{p.stdout}{p.stderr}"

    def user_token(self, user: str) -> str:
        r = self.api("POST", f"/users/{user}/tokens", json={"note": "pytest", "expires_in": 3600})
        assert r.status_code in (200, 201), r.text
        return r.json()["token"]


@pytest.fixture(scope="module")
def hub(jupyter_images, network, start_jupyter):
    """A real JupyterHub (from the notebook image) on the cluster's network; the test talks to its API."""
    work = tempfile.mkdtemp(prefix="sci-jt-hub-")
    handoff = os.path.join(work, "handoff")
    os.makedirs(handoff)
    with open(os.path.join(work, "jupyterhub_config.py"), "w") as f:
        f.write(HUB_CONFIG)
    token = secrets.token_hex(32)
    name = f"sci-jt-hub-{secrets.token_hex(4)}"
    podman("run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::8081", "--workdir", "/tmp",
           "-v", f"{work}/jupyterhub_config.py:/srv/jupyterhub_config.py:ro", "-v", f"{handoff}:/srv/handoff",
           "-e", f"HUB_SERVICE_TOKEN={token}", "-e", f"HUB_DUMMY_PASSWORD={secrets.token_hex(16)}",
           "--entrypoint", "/opt/jupyter/bin/jupyterhub", jupyter_images["slurm-jupyter-notebook"],
           "-f", "/srv/jupyterhub_config.py")
    try:
        port = podman("port", name, "8081/tcp").stdout.strip().rsplit(":", 1)[-1]
        ip = podman("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                    name).stdout.strip()
        h = Hub(f"http://127.0.0.1:{port}", token, name, handoff, ip)

        def up():
            if podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() != "running":
                pytest.fail(f"JupyterHub stopped:\n{h.logs()}")
            return h.api("GET", "/").status_code == 200
        wait_until(up, 90, "JupyterHub's API to answer", h.logs)
        version = h.api("GET", "/").json()["version"]
        assert version == JUPYTERHUB_VERSION, f"the hub runs JupyterHub {version}, the lock pins {JUPYTERHUB_VERSION}"
        yield h
    finally:
        podman("rm", "-f", "-t", "3", name, check=False)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def notebook(hub, jupyter_images, slurm_cluster, start_jupyter):
    """USER's server, spawned through the hub's REST API and started from what the hub's spawner handed off."""
    assert hub.api("POST", f"/users/{USER}").status_code in (201, 409)
    r = hub.api("POST", f"/users/{USER}/server")
    assert r.status_code in (201, 202), r.text
    spec_path = os.path.join(hub.handoff, f"{USER}.json")
    wait_until(lambda: os.path.exists(spec_path), 30, "the hub's spawner to hand off the server's spec", hub.logs)
    with open(spec_path) as f:
        spec = json.load(f)
    env = spec["env"]
    assert env["JUPYTERHUB_USER"] == USER and env["JUPYTERHUB_API_TOKEN"]
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == f"/user/{USER}/"
    assert spec["cmd"][0] == "jupyterhub-singleuser"

    env_file = os.path.join(hub.handoff, f"{USER}.env")
    with open(os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in env.items())
    # Root in the container (singleuser.uid: 0); Slurm files and munge key where singleuser.extraFiles puts them.
    c = start_jupyter(jupyter_images["slurm-jupyter-notebook"], *client_args(slurm_cluster), "--user", "0",
                      "--env-file", env_file, cmd=tuple(spec["cmd"]), ready_path=None)
    os.remove(env_file)
    with open(os.path.join(hub.handoff, f"{USER}.url"), "w") as f:
        f.write(f"http://{c.ip}:8888")

    def ready():
        if c.status() != "running":
            pytest.fail(f"the single-user container stopped:\n{c.logs()}")
        return hub.api("GET", f"/users/{USER}").json()["servers"].get("", {}).get("ready")
    wait_until(ready, 120, f"the hub to see {USER}'s server ready", lambda: hub.logs() + "\n" + c.logs())
    c.prefix = f"{c.url}/user/{USER}"
    c.token = hub.user_token(USER)
    return c


def get(url, token=None, **kw):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=30, allow_redirects=False, **kw)


def test_singleuser_refuses_to_start_outside_a_hub(jupyter_images, slurm_cluster):
    p = run_entrypoint(jupyter_images["slurm-jupyter-notebook"], *client_args(slurm_cluster))
    assert p.returncode != 0 and "jupyterhub-singleuser needs JUPYTERHUB_API_TOKEN" in p.stderr, p.stderr


def test_hub_authenticates_every_request(notebook, hub):
    # No token: the UI redirects to the hub's OAuth, the API answers 403.
    r = get(f"{notebook.prefix}/lab")
    assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["Location"], (r.status_code, r.headers)
    for path in ("/api/status", "/api/contents", "/jupyterlab_slurm/squeue"):
        assert get(notebook.prefix + path).status_code == 403, path
    # A token the hub does not know, and a valid token of another user, are refused.
    assert get(f"{notebook.prefix}/api/status", token=secrets.token_hex(16)).status_code == 403
    assert hub.api("POST", "/users/someoneelse").status_code in (201, 409)
    assert get(f"{notebook.prefix}/api/status", token=hub.user_token("someoneelse")).status_code == 403
    # The user's own token, checked by the hub.
    r = get(f"{notebook.prefix}/api/status", token=notebook.token)
    assert r.status_code == 200, r.text
    r = get(f"{notebook.prefix}/api/me", token=notebook.token)
    assert r.status_code == 200 and r.json()["identity"]["username"] == USER, r.text
    r = get(f"{notebook.prefix}/lab", token=notebook.token)
    assert r.status_code == 200 and "JupyterLab" in r.text


def test_server_runs_as_jovyan_with_hub_version(notebook):
    out = notebook.exec("python3", "-c", "import jupyterhub; print(jupyterhub.__version__)").stdout.strip()
    assert out == JUPYTERHUB_VERSION, out
    procs = processes(notebook)
    assert {u for u, a in procs if "jupyterhub-singleuser" in a and not a.startswith("tini")} == {"jovyan"}, procs
    assert {u for u, a in procs if a.split(" ")[0].endswith("munged")} == {"munge"}, procs
    assert notebook.exec("cat", "/etc/munge/munge.key", user="jovyan", check=False).returncode != 0


def test_job_submitted_through_the_singleuser_server_completes(notebook, slurm_cluster):
    name = f"nb-{secrets.token_hex(3)}"
    auth = {"Authorization": f"token {notebook.token}"}
    r = requests.put(f"{notebook.prefix}/api/contents/{name}.sh", headers=auth, timeout=30,
                     json={"type": "file", "format": "text", "content": JOB_SCRIPT.format(name=name)})
    assert r.status_code in (200, 201), r.text
    r = requests.post(f"{notebook.prefix}/jupyterlab_slurm/sbatch", headers=auth, timeout=60,
                      json={"inputPath": f"/home/jovyan/{name}.sh", "outputPath": "/home/jovyan"})
    body = r.json()
    assert r.status_code == 200 and body["success"], body
    job_id = body["data"]["jobId"]

    def completed_in_history():
        r = get(f"{notebook.prefix}/jupyterlab_slurm/sacct", token=notebook.token)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        rows = [dict(zip(data["columns"], row, strict=True)) for row in data["rows"]]
        job = next((row for row in rows if row["JobID"] == job_id), None)
        if job and job["State"] not in ("COMPLETED",):
            pytest.fail(f"job {job_id} ended {job['State']}: {job}")
        return job
    job = wait_until(completed_in_history, 60, f"job {job_id} COMPLETED in the server's sacct endpoint",
                     slurm_cluster.logs)
    assert job["User"] == "jovyan" and job["JobName"] == name, job
    assert slurm_cluster.sacct(job_id) == "COMPLETED"
    out = slurm_cluster.exec("cat", f"/tmp/{name}-{job_id}.out").stdout
    assert "uid=1000(jovyan)" in out and f"done-{name}" in out, out


def test_queue_through_the_singleuser_server_shows_the_real_owner(notebook, slurm_cluster):
    """This image loads jupyterlab_slurm_squeue too (jupyter_server_config.d): mallory's job named like another user's
    is mallory's, with its exact name, in the squeue endpoint the Slurm panel polls (tests/images/test_jupyter.py has
    the whole case and its control)."""
    add_cluster_user(slurm_cluster, "mallory", 2102)
    job_id = submit_as(slurm_cluster, "mallory", "x alice R")
    try:
        def listed():
            r = get(f"{notebook.prefix}/jupyterlab_slurm/squeue", token=notebook.token)
            assert r.status_code == 200 and r.json()["success"], r.text
            data = r.json()["data"]
            return next((dict(zip(data["columns"], v, strict=True)) for v in data["rows"] if v[0] == job_id), None)
        row = wait_until(listed, 30, f"squeue (jupyterlab_slurm) to list job {job_id}", notebook.logs)
        # squeue names a job's user where it runs: this server has no user directory mounted, so mallory is her uid.
        assert (row["USER"], row["NAME"]) == ("2102", "x alice R"), row
    finally:
        slurm_cluster.exec("scancel", job_id, check=False)
