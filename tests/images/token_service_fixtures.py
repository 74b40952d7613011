"""What the token service's image tests share (tests/images/test_slurm_token*.py): a real JupyterHub (the end-to-end
hub image, jupyterhub 5.4.4) whose API an admin service drives, the service's uid, its key volume, container helpers.
The fixtures `containers`, `work` and `hub` are module-scoped: a test module imports them."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from dataclasses import dataclass

import pytest
import requests

from tests.e2e.hub_deployment import build_hub_image
from tests.images.slurm_containers import image_tag, podman, wait_until

SERVICE_UID = 65534  # the service's non-root uid
HUB_CONFIG = r'''
import os
from jupyterhub.proxy import Proxy


class RoutesOnlyProxy(Proxy):
    """The hub's routing table without configurable-http-proxy (the test talks to the hub's API directly)."""
    should_start = False
    routes = {}

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)


c.JupyterHub.proxy_class = RoutesOnlyProxy
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["HUB_DUMMY_PASSWORD"]
c.Authenticator.allow_all = True
c.JupyterHub.hub_bind_url = "http://0.0.0.0:8081"
c.JupyterHub.db_url = "sqlite:////tmp/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/tmp/jupyterhub_cookie_secret"
c.JupyterHub.services = [{"name": "pytest", "api_token": os.environ["HUB_ADMIN_TOKEN"]},
                         {"name": "monitor", "api_token": os.environ["HUB_MONITOR_TOKEN"]}]
c.JupyterHub.load_roles = [{"name": "pytest", "services": ["pytest"], "scopes": ["admin:users", "tokens"]}]
'''


def ip_of(name: str, network: str) -> str:
    return podman("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                  name).stdout.strip()


def logs(name: str, tail: int = 40) -> str:
    p = podman("logs", "--tail", str(tail), name, check=False)
    return f"--- podman logs {name}:\n{p.stdout}{p.stderr}"


@dataclass
class Hub:
    name: str
    url: str  # from the test (published port)
    api: str  # from the other containers
    admin_token: str
    monitor_token: str

    def call(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", timeout=30,
                                headers={"Authorization": f"token {self.admin_token}"}, **kw)

    def user_token(self, user: str) -> dict:
        """A new API token of `user` ({"token", "id", ...}), as the hub makes JUPYTERHUB_API_TOKEN for a server."""
        assert self.call("POST", f"/users/{user}").status_code in (201, 409)
        r = self.call("POST", f"/users/{user}/tokens", json={"note": "pytest", "expires_in": 3600})
        assert r.status_code in (200, 201), r.text
        return r.json()


@pytest.fixture(scope="module")
def containers():
    """podman names started by this module; all removed after it."""
    names: list[str] = []
    yield names
    for name in names:
        podman("rm", "-f", "-t", "2", name, check=False)


@pytest.fixture(scope="module")
def work():
    d = tempfile.mkdtemp(prefix="sci-tokens-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(network, containers, work) -> Hub:
    image = build_hub_image("hub", image_tag("sci-e2e-jupyterhub", "test"))
    config = os.path.join(work, "jupyterhub_config.py")
    with open(config, "w") as f:
        f.write(HUB_CONFIG)
    os.chmod(config, 0o644)
    admin, monitor = secrets.token_hex(32), secrets.token_hex(32)
    name = f"sci-tok-hub-{uuid.uuid4().hex[:6]}"
    containers.append(name)
    podman("run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::8081", "-w", "/tmp",
           "-v", f"{config}:/srv/jupyterhub_config.py:ro", "-e", f"HUB_ADMIN_TOKEN={admin}",
           "-e", f"HUB_MONITOR_TOKEN={monitor}", "-e", f"HUB_DUMMY_PASSWORD={secrets.token_hex(16)}",
           image, "jupyterhub", "-f", "/srv/jupyterhub_config.py")
    port = podman("port", name, "8081/tcp").stdout.strip().rsplit(":", 1)[-1]
    h = Hub(name, f"http://127.0.0.1:{port}", f"http://{ip_of(name, network)}:8081/hub/api", admin, monitor)
    wait_until(lambda: h.call("GET", "/").status_code == 200, 90, "JupyterHub's API", lambda: logs(name))
    assert h.call("GET", "/").json()["version"] == "5.4.4"
    return h


def key_dir(work: str, key: bytes) -> str:
    """The JWT key as the service's Kubernetes Secret volume gives it: readable by the service's uid only."""
    d = tempfile.mkdtemp(prefix="jwt-", dir=work)
    os.chmod(d, 0o755)
    path = os.path.join(d, "jwt_hs256.key")
    with open(path, "wb") as f:
        f.write(key)
    os.chown(path, SERVICE_UID, SERVICE_UID)
    os.chmod(path, 0o400)
    return d
