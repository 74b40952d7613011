"""slurm-token-service with the site's LDAP directory (issue 23): it checks the directory at each request through
NSS (SLURM_TOKEN_DIRECTORY=nss), so a user removed there gets 403 at their next request, without a restart.

How real: the hub of tests/images/test_slurm_token.py (jupyterhub 5.4.4); a real slapd (tests/ldap_directory.py);
the service in a container of the notebook image as a non-root uid, resolving names through an nslcd beside it: a
container of slurm-client started as root (`slurm-client-entrypoint nslcd`, the directory volume with the stack's
nslcd.conf) that shares its /run/nslcd with the service's container, as a sidecar sharing an emptyDir would.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
import requests

from tests.images.slurm_containers import podman, wait_until
from tests.images.token_service_fixtures import SERVICE_UID, key_dir, logs
from tests.ldap_directory import write_ldap_directory

pytestmark = pytest.mark.containers

REMOVED_WITHIN_S = 5.0  # a user removed from the directory gets 403 at once; with slapd down, within nslcd's timeouts


@pytest.fixture(scope="module")
def service(images, jupyter_images, network, containers, work, hub, ldap):
    """(URL of the service, its nslcd container's name) once /health answers."""
    directory = os.path.join(work, "ldap-extrausers")
    os.makedirs(directory, mode=0o755)
    write_ldap_directory(directory, ldap)
    suffix = uuid.uuid4().hex[:6]
    volume, nslcd, name = f"sci-tok-nslcd-{suffix}", f"sci-tok-nslcd-{suffix}", f"sci-tok-svc-ldap-{suffix}"
    containers += [name, nslcd]
    podman("volume", "create", volume)
    try:
        podman("run", "-d", "--name", nslcd, "--network", network, *ldap.add_host, "--no-healthcheck",
               "-v", f"{directory}:/var/lib/extrausers:ro", "-v", f"{volume}:/run/nslcd",
               images["slurm-client"], "nslcd")
        podman("run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::8090",
               "--user", f"{SERVICE_UID}:{SERVICE_UID}", "--entrypoint", "/opt/jupyter/bin/python",
               "-v", f"{key_dir(work, os.urandom(32))}:/etc/slurm-token:ro", "-v", f"{volume}:/run/nslcd",
               "-e", "SLURM_JWT_KEY_FILE=/etc/slurm-token/jwt_hs256.key", "-e", f"JUPYTERHUB_API_URL={hub.api}",
               "-e", "SLURM_TOKEN_DIRECTORY=nss",
               jupyter_images["slurm-jupyter-notebook"], "/usr/local/bin/slurm-token-service")
        port = podman("port", name, "8090/tcp").stdout.strip().rsplit(":", 1)[-1]
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{url}/health", timeout=5).status_code == 200, 30,
                   "slurm-token-service's /health", lambda: logs(name) + logs(nslcd))
        yield url, name
    finally:
        for c in (name, nslcd):
            podman("rm", "-f", "-t", "2", c, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def token(url: str, hub, user: str) -> requests.Response:
    return requests.get(f"{url}/token", headers={"Authorization": f"token {hub.user_token(user)['token']}"},
                        timeout=30)


def test_directory_users_get_tokens_and_no_one_else_does(service, hub):
    url, name = service
    r = token(url, hub, "christopher")
    assert r.status_code == 200, r.text + logs(name)
    # The service's own container resolves them through the nslcd beside it, as the site's uid.
    assert podman("exec", name, "id", "-u", "christopher").stdout.strip() == "54321"
    for user in ("carol", "munge", "toor", "jovyan"):  # unknown; an image user's name; uid 0; an image user
        r = token(url, hub, user)
        assert r.status_code == 403 and "is not in the cluster's user directory" in r.json()["error"], (user, r.text)


def test_a_user_removed_from_the_directory_gets_403_at_the_next_request(service, hub, ldap):
    url, _ = service
    ldap.add_user("frank", 10006)
    try:
        assert token(url, hub, "frank").status_code == 200
    finally:
        ldap.remove_user("frank")
    t0 = time.monotonic()
    r = token(url, hub, "frank")
    print(f"\nremoved user: HTTP {r.status_code} after {time.monotonic() - t0:.2f} s")
    assert r.status_code == 403, r.text
    assert token(url, hub, "alice").status_code == 200  # control: the others still get theirs


def test_with_the_directory_down_the_service_refuses_within_seconds_and_serves_again_after(service, hub, ldap):
    url, name = service
    hub_token = hub.user_token("alice")["token"]
    ldap.stop_slapd()
    try:
        t0 = time.monotonic()
        r = requests.get(f"{url}/token", headers={"Authorization": f"token {hub_token}"}, timeout=30)
        seconds = time.monotonic() - t0
        print(f"\nslapd down: HTTP {r.status_code} in {seconds:.2f} s")
        assert r.status_code == 403 and seconds < REMOVED_WITHIN_S, (r.text, seconds)
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
    finally:
        ldap.start_slapd()
    wait_until(lambda: requests.get(f"{url}/token", headers={"Authorization": f"token {hub_token}"},
                                    timeout=30).status_code == 200, 30, "a token again with slapd back",
               lambda: logs(name))
