"""slurm-token-service and slurm-token: a real JupyterHub says whose API token it is, the service mints a Slurm JWT
for that user, slurmctld and slurmdbd accept it from a container that holds no Slurm key, and slurm-token renews it.

How real: the hub is the end-to-end hub image (tests/e2e/hub/hub: jupyterhub 5.4.4, the chart's hub), its users and
their API tokens made through its REST API by an admin service; the service runs in a container of the notebook
image as a non-root uid with only the JWT key of the cluster (tests/images/jupyter_fixtures.slurm_cluster, which
reads the same key); the "user pod" is a container of the notebook image without munge key, munged or JWT key,
whose processes run as alice (uid 2001), and submits with the Slurm commands of the image. No stand-ins besides
the hub's proxy (only its routing table: the test talks to the hub's API directly).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from dataclasses import dataclass

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.images.jupyter_fixtures import add_cluster_user
from tests.images.slurm_containers import podman, wait_until
from tests.images.token_service_fixtures import SERVICE_UID, ip_of, key_dir, logs

pytestmark = pytest.mark.containers

USERS = {"alice": 2001, "bob": 2002}  # the user directory; carol is a hub user outside it
SHORT_LIFETIME = 6  # seconds, the renewal test's service
METRICS_PORT = 8091  # SLURM_TOKEN_METRICS_PORT, as components/token_service.py sets it (metrics.TOKEN_METRICS_PORT)
AUTH_ERRORS = ("Protocol authentication error", "Zero Bytes were transmitted")  # Slurm 24.11+, 22.05


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims: dict, key: bytes) -> str:
    """An HS256 JWT (RFC 7519), made here without the service's code."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(key, head.encode(), hashlib.sha256).digest())


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@dataclass
class Service:
    name: str
    url: str  # from the test: http://127.0.0.1:PORT
    internal: str  # from the other containers: http://IP:8090
    metrics: str  # its figures' listener, from the test: http://127.0.0.1:PORT

    def token(self, hub_token: str | None) -> requests.Response:
        headers = {"Authorization": f"token {hub_token}"} if hub_token is not None else {}
        return requests.get(f"{self.url}/token", headers=headers, timeout=30)

    def figures(self) -> dict[tuple, float]:
        """GET /metrics on the metrics port, parsed by prometheus_client: {(sample name, labels...): value}."""
        r = requests.get(f"{self.metrics}/metrics", timeout=10)
        assert r.status_code == 200, r.text
        return {(s.name, *sorted(s.labels.items())): s.value
                for family in text_string_to_metric_families(r.text) for s in family.samples}


@pytest.fixture(scope="module")
def directory(work) -> str:
    """The user directory (passwd format) the services read, in a directory mounted as /var/lib/extrausers."""
    d = os.path.join(work, "extrausers")
    os.makedirs(d, mode=0o755)
    write_directory(d, USERS)
    return d


def write_directory(d: str, users: dict[str, int]):
    """Replace the passwd file at once, as the kubelet updates a ConfigMap volume."""
    tmp = os.path.join(d, ".passwd.tmp")
    with open(tmp, "w") as f:
        f.writelines(f"{u}:x:{uid}:{uid}::/home/{u}:/bin/bash\n" for u, uid in users.items())
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(d, "passwd"))


@pytest.fixture(scope="module")
def start_service(jupyter_images, network, containers, work, hub, directory, slurm_cluster):
    """start_service(lifetime=None, hub_api=None, key=None) -> Service: slurm-token-service with the cluster's JWT
    key (or `key`), as the contract runs it (the venv's python, command overriding the ENTRYPOINT, a non-root uid),
    once /health answers."""

    def start(lifetime: int | None = None, hub_api: str | None = None, key: bytes | None = None) -> Service:
        name = f"sci-tok-svc-{uuid.uuid4().hex[:6]}"
        containers.append(name)
        podman("run", "-d", "--name", name, "--network", network, "-p", "127.0.0.1::8090",
               "-p", f"127.0.0.1::{METRICS_PORT}", "-e", f"SLURM_TOKEN_METRICS_PORT={METRICS_PORT}",
               "--user", f"{SERVICE_UID}:{SERVICE_UID}", "--entrypoint", "/opt/jupyter/bin/python",
               "-v", f"{key_dir(work, key or slurm_cluster.files.jwt_key)}:/etc/slurm-token:ro",
               "-v", f"{directory}:/var/lib/extrausers:ro",
               "-e", "SLURM_JWT_KEY_FILE=/etc/slurm-token/jwt_hs256.key", "-e", f"JUPYTERHUB_API_URL={hub_api or hub.api}",
               *(["-e", f"SLURM_TOKEN_LIFETIME={lifetime}"] if lifetime else []),
               jupyter_images["slurm-jupyter-notebook"], "/usr/local/bin/slurm-token-service")
        port = podman("port", name, "8090/tcp").stdout.strip().rsplit(":", 1)[-1]
        metrics_port = podman("port", name, f"{METRICS_PORT}/tcp").stdout.strip().rsplit(":", 1)[-1]
        s = Service(name, f"http://127.0.0.1:{port}", f"http://{ip_of(name, network)}:8090",
                    f"http://127.0.0.1:{metrics_port}")

        def healthy():
            if podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() != "running":
                pytest.fail(f"slurm-token-service stopped:\n{logs(name)}")
            return requests.get(f"{s.url}/health", timeout=5).status_code == 200
        wait_until(healthy, 30, "slurm-token-service's /health", lambda: logs(name))
        return s

    return start


@pytest.fixture(scope="module")
def service(start_service) -> Service:
    return start_service()


@pytest.fixture(scope="module")
def cluster(slurm_cluster):
    """The private Slurm cluster, which knows the directory's users (a site's LDAP/SSSD, here useradd) and has them in
    its accounting (slurm.conf enforces associations; the single node's entrypoint would register a mounted
    directory's users at start, this one adds them later)."""
    for user, uid in USERS.items():
        add_cluster_user(slurm_cluster, user, uid)
    return slurm_cluster


@dataclass
class UserPod:
    """A container of the notebook image as alice's server: no munge key, no munged, no JWT key."""
    name: str
    env: dict

    def run(self, script: str, check: bool = False, **env: str):
        """sh -c SCRIPT as alice (uid 2001), with the server's environment (and `env` over it)."""
        flags = [f"--env={k}={v}" for k, v in {**self.env, **env}.items()]
        return podman("exec", "--user", f"{USERS['alice']}:{USERS['alice']}", *flags, self.name, "sh", "-c", script,
                      check=check, timeout=60)


@pytest.fixture(scope="module")
def start_pod(jupyter_images, network, containers, cluster, hub):
    def start(service: Service) -> UserPod:
        name = f"sci-tok-pod-{uuid.uuid4().hex[:6]}"
        containers.append(name)
        podman("run", "-d", "--name", name, "--network", network, "--no-healthcheck",
               "--add-host", f"{cluster.files.controller_host}:{cluster.ip}",
               "-v", f"{cluster.files.client_config}:/etc/slurm:ro",  # Slurm's files only; nothing from the keys
               "--entrypoint", "sleep", jupyter_images["slurm-jupyter-notebook"], "infinity")
        podman("exec", name, "sh", "-c", "groupadd -g 2001 alice && useradd -u 2001 -g 2001 -m alice")
        return UserPod(name, {"SLURM_TOKEN_URL": f"{service.internal}/token",
                              "JUPYTERHUB_API_TOKEN": hub.user_token("alice")["token"]})
    return start


@pytest.fixture(scope="module")
def pod(start_pod, service) -> UserPod:
    return start_pod(service)


# --- the service's answers --------------------------------------------------------------------------------------
def test_a_directory_user_gets_a_slurm_jwt_signed_with_the_clusters_key(service, hub, slurm_cluster):
    before = int(time.time())
    r = service.token(hub.user_token("alice")["token"])
    assert r.status_code == 200, r.text
    body = r.json()
    token = body["token"]
    c = claims(token)
    assert c.keys() == {"sun", "iat", "exp"} and c["sun"] == "alice", c
    assert before - 1 <= c["iat"] <= time.time() + 1 and c["exp"] == c["iat"] + 900 == body["expires"], (c, body)
    assert body["key"] == hashlib.sha256(slurm_cluster.files.jwt_key).hexdigest()[:16]
    signed, signature = token.rsplit(".", 1)
    expected = hmac.new(slurm_cluster.files.jwt_key, signed.encode(), hashlib.sha256).digest()
    assert json.loads(base64.urlsafe_b64decode(signed.split(".")[0] + "==="))["alg"] == "HS256"
    assert hmac.compare_digest(b64(expected), signature)


def test_a_hub_user_outside_the_directory_is_refused_with_403_naming_them(service, hub, directory):
    carol = hub.user_token("carol")["token"]
    r = service.token(carol)
    assert r.status_code == 403 and "carol" in r.json()["error"], r.text
    # The directory is read at each request: once carol is added, she gets a token without a restart.
    write_directory(directory, {**USERS, "carol": 2003})
    try:
        r = service.token(carol)
        assert r.status_code == 200 and claims(r.json()["token"])["sun"] == "carol", r.text
    finally:
        write_directory(directory, USERS)
    assert service.token(carol).status_code == 403


@pytest.mark.parametrize("scopes", [[], ["read:users:name!user=alice", "users:activity!user=alice"]],
                         ids=["no scopes", "made for another purpose"])
def test_a_hub_token_that_may_not_use_its_owners_server_is_refused_with_403(service, hub, scopes):
    assert hub.call("POST", "/users/alice").status_code in (201, 409)
    t = hub.call("POST", "/users/alice/tokens", json={"note": "pytest", "expires_in": 600, "scopes": scopes}).json()
    # Control: the hub still says whose it is (every token may identify its owner), so the attack is real.
    me = requests.get(f"{hub.url}/hub/api/user", headers={"Authorization": f"token {t['token']}"}, timeout=10)
    assert me.status_code == 200 and me.json()["name"] == "alice", me.text
    r = service.token(t["token"])
    assert r.status_code == 403 and "may not use their server" in r.json()["error"], r.text


def test_a_server_token_gets_a_slurm_token(service, hub):
    scopes = ["access:servers!server=alice/", "users:activity!user=alice"]  # what the `server` role gives a server
    assert hub.call("POST", "/users/alice").status_code in (201, 409)
    t = hub.call("POST", "/users/alice/tokens", json={"note": "pytest", "expires_in": 600, "scopes": scopes}).json()
    r = service.token(t["token"])
    assert r.status_code == 200 and claims(r.json()["token"])["sun"] == "alice", r.text


def test_a_service_token_is_refused_with_403(service, hub):
    r = service.token(hub.monitor_token)
    assert r.status_code == 403 and "monitor" in r.json()["error"] and "service" in r.json()["error"], r.text


@pytest.mark.parametrize("hub_token", [None, "", "0" * 32], ids=["no header", "empty", "unknown to the hub"])
def test_no_or_a_bad_hub_token_gets_401(service, hub_token):
    r = service.token(hub_token)
    assert r.status_code == 401 and r.json()["error"], r.text


def test_a_revoked_hub_token_gets_401(service, hub):
    t = hub.user_token("alice")
    assert service.token(t["token"]).status_code == 200
    assert hub.call("DELETE", f"/users/alice/tokens/{t['id']}").status_code == 204
    r = service.token(t["token"])
    assert r.status_code == 401 and "revoked" in r.json()["error"], r.text


def test_health_answers_and_the_log_has_one_line_per_request_without_tokens(service, hub, slurm_cluster):
    hub_token = hub.user_token("alice")["token"]
    jwt = service.token(hub_token).json()["token"]
    key_id = hashlib.sha256(slurm_cluster.files.jwt_key).hexdigest()[:16]  # names the key, reveals nothing of it
    assert requests.get(f"{service.url}/health", timeout=5).json() == {"status": "ok", "key": key_id}
    log = podman("logs", service.name).stdout
    assert "200 GET /token" in log and "user:alice" in log and "200 GET /health" in log, log
    assert hub_token not in log and jwt not in log and jwt.split(".")[2] not in log, log


# --- its figures (issue 25) --------------------------------------------------------------------------------------
REFUSED, ISSUED = "slurm_token_refused_total", "slurm_token_issued_total"
ANSWERED = "slurm_token_request_duration_seconds_count"


def refused(figures: dict, reason: str) -> float:
    return figures[(REFUSED, ("reason", reason))]


def test_a_refused_request_moves_its_reasons_counter_and_an_issued_token_the_issued_one(service, hub):
    before = service.figures()
    assert {k[1][1] for k in before if k[0] == REFUSED} == {
        "no_token", "unknown_token", "not_a_user", "no_server_access", "not_in_directory", "directory_unreadable",
        "hub_error", "hub_unreachable"}, "every reason from the start, at its count"
    assert service.token(None).status_code == 401
    assert service.token(hub.monitor_token).status_code == 403
    after = service.figures()
    assert refused(after, "no_token") == refused(before, "no_token") + 1
    assert refused(after, "not_a_user") == refused(before, "not_a_user") + 1
    assert after[(ISSUED,)] == before[(ISSUED,)], "control: nothing issued yet"
    assert after[(ANSWERED,)] == before[(ANSWERED,)] + 2
    assert service.token(hub.user_token("alice")["token"]).status_code == 200
    issued = service.figures()
    assert issued[(ISSUED,)] == before[(ISSUED,)] + 1
    assert {k: v for k, v in issued.items() if k[0] == REFUSED} == {k: v for k, v in after.items() if k[0] == REFUSED}
    assert issued[(ANSWERED,)] == before[(ANSWERED,)] + 3


def test_the_figures_are_served_apart_from_the_token_port(service):
    """Every hub user reaches /token's port; only the metrics scraper the metrics port (the NetworkPolicy)."""
    assert requests.get(f"{service.url}/metrics", timeout=10).status_code == 404
    assert requests.get(f"{service.metrics}/token", timeout=10).status_code == 404
    assert requests.get(f"{service.metrics}/metrics", timeout=10).status_code == 200  # control


def test_an_unreachable_hub_counts_as_hub_unreachable(start_service, hub):
    s = start_service(hub_api="http://127.0.0.1:9/hub/api")  # nothing listens there
    assert s.token(hub.user_token("alice")["token"]).status_code == 502
    assert refused(s.figures(), "hub_unreachable") == 1 and s.figures()[(ISSUED,)] == 0


def test_a_hub_answer_that_is_not_a_json_object_counts_as_hub_error(start_service, hub):
    """A 200 whose body is not a JSON object (a proxy's page, a wrong JUPYTERHUB_API_URL): 502 hub_error, counted,
    not a bare 500. The "hub" here is the service's own metrics listener (200, Prometheus' text), which answers
    .../metrics?x=/user as /metrics."""
    s = start_service(hub_api=f"http://127.0.0.1:{METRICS_PORT}/metrics?x=")
    r = s.token(hub.user_token("alice")["token"])
    assert r.status_code == 502 and "without a JSON object" in r.json()["error"], (r.status_code, r.text)
    figures = s.figures()
    assert refused(figures, "hub_error") == 1 and figures[(ISSUED,)] == 0
    assert figures[(ANSWERED,)] == 1, "answered and timed like any request"


# --- Slurm accepts what the service mints, in a pod without keys -------------------------------------------------
def test_the_user_pod_holds_no_slurm_key(pod):
    """The premise of what follows: no munge key, no munged, no JWT key in the pod."""
    p = pod.run("test ! -e /etc/munge/munge.key && test ! -e /etc/slurm-keys && ! ls /etc/slurm | grep -i key "
                "&& ! munge -n >/dev/null 2>&1")
    assert p.returncode == 0, p.stdout + p.stderr


def test_a_token_from_the_service_submits_a_job_as_alice_through_slurm_commands(pod, cluster):
    p = pod.run('export SLURM_JWT="$(slurm-token)" && cd /tmp && '
                'sbatch --parsable --chdir=/tmp --output=/tmp/tok-%j.out --wrap "id -un; id -u"', check=True)
    job = p.stdout.strip().split(";")[0]
    assert job.isdigit(), p.stdout + p.stderr
    cluster.wait_job(job, "COMPLETED")
    assert cluster.exec("cat", f"/tmp/tok-{job}.out").stdout.split() == ["alice", "2001"]
    # squeue (slurmctld) and sacct (slurmdbd) with the same token, from the pod.
    p = pod.run(f'SLURM_JWT="$(slurm-token)" squeue -h -o %i && SLURM_JWT="$(slurm-token)" '
                f'sacct -n -X -P -j {job} -o User,State', check=True)
    assert p.stdout.split() == ["alice|COMPLETED"], p.stdout


def test_slurm_refuses_a_token_signed_with_another_key(pod):
    now = int(time.time())
    forged = sign({"sun": "alice", "iat": now, "exp": now + 900}, os.urandom(32))
    good = pod.run("slurm-token", check=True).stdout.strip()
    assert claims(forged)["sun"] == claims(good)["sun"]  # only the key differs
    assert pod.run("timeout 30 /usr/bin/squeue -h", SLURM_JWT=good).returncode == 0
    p = pod.run("timeout 30 /usr/bin/squeue -h", SLURM_JWT=forged)
    assert p.returncode == 1 and any(m in p.stderr for m in AUTH_ERRORS), p.stdout + p.stderr


# --- slurm-token ------------------------------------------------------------------------------------------------
def test_slurm_token_caches_for_this_user_only_and_renews_before_expiry(start_service, start_pod):
    pod = start_pod(start_service(SHORT_LIFETIME))
    first = pod.run("slurm-token", check=True).stdout.strip()
    assert pod.run("slurm-token", check=True).stdout.strip() == first  # cached
    stat = pod.run("stat -c '%u %a' /tmp/slurm-token-2001", check=True).stdout.split()
    assert stat == ["2001", "600"], stat
    c1 = claims(first)
    assert c1["exp"] - c1["iat"] == SHORT_LIFETIME

    renewed = wait_until(lambda: (t := pod.run("slurm-token", check=True).stdout.strip()) != first and t,
                         SHORT_LIFETIME * 2, "slurm-token to renew its cached token", interval=0.2)
    c2 = claims(renewed)
    # Renewed once less than a third of the lifetime was left, before it expired (the service's clock is the test's).
    assert c1["iat"] + SHORT_LIFETIME * 2 // 3 <= c2["iat"] < c1["exp"], (c1, c2)
    assert pod.run("timeout 30 /usr/bin/squeue -h", SLURM_JWT=renewed).returncode == 0

    # An expired token: Slurm refuses it, and slurm-token replaces it transparently.
    wait_until(lambda: time.time() > c2["exp"] + 1, SHORT_LIFETIME + 5, "the renewed token to expire")
    p = pod.run("timeout 30 /usr/bin/squeue -h", SLURM_JWT=renewed)
    assert p.returncode == 1 and any(m in p.stderr for m in AUTH_ERRORS), p.stdout + p.stderr
    p = pod.run('SLURM_JWT="$(slurm-token)" timeout 30 squeue -h')
    assert p.returncode == 0, p.stdout + p.stderr


def test_a_token_cached_before_a_key_rotation_is_renewed_at_the_next_command(start_service, start_pod):
    # Before the rotation the service signed with the old key; after it, the Service reaches a new pod with the
    # cluster's (new) key, and the server's cache still holds the old key's token.
    old = start_service(key=os.urandom(32))
    pod = start_pod(old)
    stale = pod.run("slurm-token", check=True).stdout.strip()
    new = start_service()
    after = {"SLURM_TOKEN_URL": f"{new.internal}/token"}
    # Control: the cached token is dead (Slurm refuses it) and still within its lifetime.
    p = pod.run("timeout 30 /usr/bin/squeue -h", SLURM_JWT=stale)
    assert p.returncode == 1 and any(m in p.stderr for m in AUTH_ERRORS), p.stdout + p.stderr
    assert claims(stale)["exp"] > time.time() + 600
    p = pod.run("timeout 30 squeue -h", **after)  # the wrapper asks slurm-token, as every Slurm command does
    assert p.returncode == 0, p.stdout + p.stderr
    assert pod.run("slurm-token", check=True, **after).stdout.strip() != stale


def test_slurm_token_uses_its_cached_token_while_the_service_cannot_be_asked(start_service, start_pod):
    pod = start_pod(start_service())
    cached = pod.run("slurm-token", check=True).stdout.strip()
    p = pod.run("slurm-token", SLURM_TOKEN_URL="http://127.0.0.1:9/token")  # nothing listens there
    assert p.returncode == 0 and p.stdout.strip() == cached, p.stdout + p.stderr
    # Control: without a cache the same call fails (test_slurm_token_says_what_to_do_when_it_cannot_get_a_token).
    p = pod.run("XDG_RUNTIME_DIR=$(mktemp -d) slurm-token", SLURM_TOKEN_URL="http://127.0.0.1:9/token")
    assert p.returncode == 1 and "is unreachable" in p.stderr, p.stdout + p.stderr


def test_slurm_token_says_what_to_do_when_it_cannot_get_a_token(pod, hub, service):
    revoked = hub.user_token("alice")
    hub.call("DELETE", f"/users/alice/tokens/{revoked['id']}")
    fresh = "XDG_RUNTIME_DIR=$(mktemp -d)"  # no cache, so the service is asked
    p = pod.run(f"{fresh} slurm-token", JUPYTERHUB_API_TOKEN=revoked["token"])
    assert p.returncode == 1 and not p.stdout and "restart your server from the hub's control panel" in p.stderr, p
    p = pod.run(f"{fresh} slurm-token", SLURM_TOKEN_URL="http://127.0.0.1:9/token")
    assert p.returncode == 1 and not p.stdout and "is unreachable" in p.stderr, p
    p = pod.run(f"{fresh} slurm-token", SLURM_TOKEN_URL="")
    assert p.returncode == 1 and "SLURM_TOKEN_URL" in p.stderr, p


def test_an_unreachable_hub_gets_502_and_slurm_token_says_so(start_service, start_pod, hub):
    service = start_service(hub_api="http://127.0.0.1:9/hub/api")  # nothing listens there
    r = service.token(hub.user_token("alice")["token"])
    assert r.status_code == 502 and "unreachable" in r.json()["error"], r.text
    p = start_pod(service).run("slurm-token")
    assert p.returncode == 1 and not p.stdout and "cannot reach JupyterHub" in p.stderr, p
