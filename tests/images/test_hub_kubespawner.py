"""The end-to-end hub's image (tests/e2e/hub/hub) runs the configuration tests/e2e/hub_config.py renders from the chart
values, and its real KubeSpawner makes from it the user pods the chart's hub would make: read through KubeSpawner's
own get_pod_manifest(), no Kubernetes needed (a kubeconfig naming no reachable server is enough to construct it).
Fast feedback for what tests/e2e/test_03_jupyterhub.py checks on the cluster."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
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


# --- config `ldap` (issue 23): logins and each user's ids from a real slapd (tests/ldap_directory.py) -----------------
LDAP_SCRIPT = r'''
import asyncio, json, os, time
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from ldapauthenticator import LDAPAuthenticator
from traitlets.config import PyFileConfigLoader

with open(os.environ["KUBECONFIG"], "w") as f:  # names no reachable server: nothing is contacted
    f.write("apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: 'https://127.0.0.1:1'}}]\n"
            "users: [{name: x, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\n"
            "current-context: x\n")

class User:
    def __init__(self, name):
        self.name = self.escaped_name = name
        self.id, self.url = 1, f"/user/{name}/"

async def main():  # one line of JSON per login ({"login", "user"}) and per spawn ({"spawn", "pod" or "error", "s"})
    plain = ApiClient().sanitize_for_serialization
    config = PyFileConfigLoader("jupyterhub_config.py", path="/cfg").load_config()
    auth = config.JupyterHub.authenticator_class(config=config)  # the class hub.extraConfig.slurmUsers made
    assert isinstance(auth, LDAPAuthenticator), type(auth)
    for login in json.loads(os.environ["LOGINS"]):
        try:
            user = await auth.get_authenticated_user(None, {"username": login[0], "password": login[1]})
            print(json.dumps({"login": login, "user": user and user["name"]}))
        except Exception as e:
            print(json.dumps({"login": login, "user": f"{type(e).__name__}: {e}"}))
    for name in os.environ["USERS"].split():
        spawner = KubeSpawner(config=config, user=User(name), _mock=True)
        start = time.monotonic()
        try:
            await spawner.run_pre_spawn_hook()
            out = {"pod": plain(await spawner.get_pod_manifest())}
        except Exception as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps({"spawn": name, "s": time.monotonic() - start, **out}))

asyncio.run(main())
'''
SPAWN_DOWN_WITHIN_S = 10.0  # a directory that is down fails a spawn within nslcd's timeouts (connect 3 s per server)


@pytest.fixture(scope="module")
def directory_hub(version, network):
    """run(logins, users) -> ({(name, password): name logged in or None}, {user: pod or {"error"}, seconds}): the tests'
    hub image running the configuration rendered from the program's values with config `ldap` (ldaps://, the test CA,
    the bind DN, loginGroup), against a real slapd on the podman network; the LdapDirectory too."""
    from components import ldap as ldap_files
    from components.jupyterhub import HubLdap
    from tests.ldap_directory import LOGIN_GROUP, LdapDirectory

    image = build_hub_image("hub", IMAGE)
    with LdapDirectory(network, tls=True, version=version) as server, tempfile.TemporaryDirectory() as d:
        settings = ldap_files.Settings(uri=server.ldaps_uri, base_dn=server.base, bind_dn=server.bind_dn,
                                       ca=Path(server.ca_cert).read_text())
        v = jupyterhub_values(image_name="127.0.0.1:5000/nb", image_tag="e2e@sha256:" + "cd" * 32,
                              config_files={"slurm.conf": "ClusterName=x\n"}, users=(), groups={},
                              home_claim="home-1", token_url="http://tokens:8090/token", hub_password="", egress=[],
                              hub_ldap=HubLdap(settings=settings, bind_password=server.bind_password,
                                               login_group=LOGIN_GROUP))
        Path(d, "jupyterhub_config.py").write_text(hub_config.render(helm_merge(chart()[0], json.loads(json.dumps(v)))))
        Path(d, "ldap.py").write_text(LDAP_SCRIPT)
        for p in [Path(d), *Path(d).rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)

        def run(logins, users):
            out = podman("run", "--rm", "--network", network, *server.add_host, "-v", f"{d}:/cfg:ro", "-w", "/tmp",
                         "-e", "KUBECONFIG=/tmp/kubeconfig", "-e", f"LOGINS={json.dumps(logins)}",
                         "-e", f"USERS={' '.join(users)}", image, "python3", "/cfg/ldap.py", timeout=180).stdout
            lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            return ({tuple(x["login"]): x["user"] for x in lines if "login" in x},
                    {x["spawn"]: ({"error": x["error"]} if "error" in x else x["pod"], x["s"]) for x in lines
                     if "spawn" in x})
        yield run, server


def dir_user(server, name):
    return next(u for u in server.users if u.name == name)


def test_directory_users_of_the_login_group_log_in_with_their_directory_password(directory_hub):
    run, server = directory_hub
    alice, chris, eve = (dir_user(server, n) for n in ("alice", "christopher", "eve"))
    logins, _ = run([["alice", alice.login_password], ["christopher", chris.login_password],
                     ["alice", "wrong-password"], ["eve", eve.login_password], ["carol", "x-pw"]], [])
    assert logins == {("alice", alice.login_password): "alice", ("christopher", chris.login_password): "christopher",
                      ("alice", "wrong-password"): None,  # the directory checks the password
                      ("eve", eve.login_password): None,  # in the directory, not in the login group
                      ("carol", "x-pw"): None}  # not in the directory


def test_each_users_pod_runs_as_their_directory_ids_and_no_one_else_gets_one(directory_hub):
    from tests.ldap_directory import GROUPS

    run, server = directory_hub
    _, spawns = run([], ["alice", "christopher", "eve", "carol", "toor", "munge"])
    for name, groups in (("alice", ["physics", "hpcusers"]), ("christopher", ["physics", "hpcusers"]), ("eve", [])):
        pod = spawns[name][0]
        assert "error" not in pod, pod
        uid = dir_user(server, name).uid  # the private group's gid is the uid (tests/ldap_directory.py)
        assert pod["spec"]["containers"][0]["securityContext"] == {"runAsUser": uid, "runAsGroup": uid,
                                                                   "allowPrivilegeEscalation": False}, name
        gids = sorted(GROUPS[g] for g in groups)
        assert pod["spec"]["securityContext"] == {"fsGroup": uid, **({"supplementalGroups": gids} if gids else {})}
    assert spawns["carol"][0] == {"error": "SlurmDirectoryError: carol is not in the site's directory"}
    assert spawns["toor"][0]["error"].startswith("SlurmDirectoryError: toor's uid in the site's directory is 0, "
                                                 "outside 1001-60000"), spawns["toor"]
    # In the directory with uid 10666, but the images' munge has the name: refused before the directory is asked.
    assert spawns["munge"][0]["error"].startswith("SlurmDirectoryError: munge is the name of a system user of this "
                                                  "cluster's images"), spawns["munge"]


def test_a_user_added_to_the_directory_gets_a_pod_at_once_and_a_directory_down_fails_logins_and_spawns_clearly(directory_hub):
    run, server = directory_hub
    server.add_user("newcomer9", 20009, groups=("physics",))
    _, spawns = run([], ["newcomer9"])
    assert spawns["newcomer9"][0]["spec"]["securityContext"] == {"fsGroup": 20009, "supplementalGroups": [13000]}
    server.stop_slapd()
    try:
        logins, spawns = run([["bob", dir_user(server, "bob").login_password]], ["alice"])
    finally:
        server.start_slapd()
    # The login page says why (503), not a bare 500.
    assert list(logins.values()) == ["HTTPError: HTTP 503: Service Unavailable (The site's directory cannot be "
                                     "reached, so no one can log in now. Try again later, or tell the site's "
                                     "administrators.)"], logins
    error, seconds = spawns["alice"]
    assert error["error"].startswith("SlurmDirectoryError: the site's directory cannot be reached ("), error
    assert seconds < SPAWN_DOWN_WITHIN_S, seconds



def test_a_directory_that_does_not_answer_fails_logins_and_spawns_within_their_time_limits(directory_hub):
    """slapd frozen (podman pause): its kernel still accepts connections, nothing answers them, as a hung server."""
    from components.jupyterhub import LOGIN_TIMEOUT_S

    run, server = directory_hub
    podman("pause", server.name)
    try:
        start = time.monotonic()
        logins, spawns = run([["bob", dir_user(server, "bob").login_password]], ["alice"])
        took = time.monotonic() - start
    finally:
        podman("unpause", server.name)
    assert [v.split(" (")[0] for v in logins.values()] == ["HTTPError: HTTP 503: Service Unavailable"], logins
    error, seconds = spawns["alice"]
    assert error["error"].startswith("SlurmDirectoryError: the site's directory cannot be reached ("), error
    assert seconds < SPAWN_DOWN_WITHIN_S, seconds
    assert took < LOGIN_TIMEOUT_S + SPAWN_DOWN_WITHIN_S + 10, took  # the container's start included
    print(f"hung directory: login refused and spawn failed within {took:.1f} s in all, the spawn in {seconds:.1f} s")


def test_the_users_pod_knows_them_by_name_from_the_files_its_init_container_writes(directory_hub, jupyter_images):
    """The pod KubeSpawner makes, run in podman as the kubelet would: its init container (the notebook image, as the
    user) writes the user's passwd and group lines into the volume, which the server's container mounts read-only,
    and the image's entrypoint, which refuses a uid it cannot resolve, runs the command as the user, by name."""
    from components.jupyterhub import DIRECTORY_VOLUME, HOMES_MOUNT

    run, server = directory_hub
    _, spawns = run([], ["christopher"])
    pod = spawns["christopher"][0]
    [init] = [i for i in pod["spec"]["initContainers"] if i["name"] == DIRECTORY_VOLUME]
    main = pod["spec"]["containers"][0]
    [mount] = [m for m in main["volumeMounts"] if m["name"] == DIRECTORY_VOLUME]
    assert (mount["mountPath"], mount["readOnly"]) == (directory.EXTRAUSERS_DIR, True)
    assert "slurm-users-passwd" not in json.dumps(pod), "no static directory files with ldap"
    image, volume = jupyter_images["slurm-jupyter-notebook"], f"sci-hubdir-{uuid.uuid4().hex[:6]}"
    ctx, groups = init["securityContext"], pod["spec"]["securityContext"]["supplementalGroups"]
    user = f"{ctx['runAsUser']}:{ctx['runAsGroup']}"
    podman("volume", "create", volume)
    try:
        env = [a for e in init["env"] for a in ("-e", f"{e['name']}={e['value']}")]
        # With the home volume mounted whole and read-only, it waits for the user's home there, which is theirs
        # here (tests/unit/test_hub_ldap.py has the wait itself).
        assert {"name": "home", "mountPath": HOMES_MOUNT, "readOnly": True} in init["volumeMounts"]
        podman("run", "--rm", "--user", "0", "-v", f"{volume}-homes:/homes", "--entrypoint", "install", image,
               "-d", "-o", "54321", "-g", "54321", "-m", "0700", "/homes/christopher")
        podman("run", "--rm", "--user", user, "-v", f"{volume}:/directory",
               "-v", f"{volume}-homes:{HOMES_MOUNT}:ro", *env, "--entrypoint", init["command"][0],
               image, *init["command"][1:], timeout=60)
        # --passwd=false: podman would add the uid to /etc/passwd, which the kubelet does not.
        out = podman("run", "--rm", "--passwd=false", "--user", user,
                     *(a for g in groups for a in ("--group-add", str(g))),
                     "-v", f"{volume}:{directory.EXTRAUSERS_DIR}:ro",
                     "-v", f"{volume}-home:/home/christopher:U",  # the home, the user's (:U chowns it)
                     image, "sh", "-c", "id; echo x >> /var/lib/extrausers/passwd || echo read-only",
                     timeout=60).stdout
        # Control: without the files the entrypoint refuses the uid, as a pod of the static list's files would.
        bare = podman("run", "--rm", "--passwd=false", "--user", user, "-v", f"{volume}-home:/home/christopher:U",
                      image, "id", check=False, timeout=60)
    finally:
        podman("volume", "rm", "-f", volume, f"{volume}-home", f"{volume}-homes", check=False)
    assert bare.returncode != 0 and "uid 54321 is not in the user directory" in bare.stderr, bare.stderr
    assert out.splitlines() == ["uid=54321(christopher) gid=54321(christopher) "
                                "groups=54321(christopher),13000(physics),13001(hpcusers)", "read-only"], out
