"""Scenario 3: JupyterHub as the official chart runs it, from the chart values `components.jupyterhub.jupyterhub_values()`
computes: a real hub with KubeSpawner and configurable-http-proxy (tests/e2e/hub_deployment.py says what is deployed
and how, tests/e2e/hub_config.py how the values become the hub's configuration). Two users log in through the proxy
with the generated password, KubeSpawner makes their pods from the slurm-jupyter-notebook image through the
Kubernetes API, and each user's server runs Slurm commands and submits a job that completes. The user pods' specs are
read back from the API: the munge key stays readable by root only."""

import hashlib
import secrets
import time

import pytest

from components.keys import MUNGE_KEY_FILE
from components.pods import CONFIG_MOUNT, KEYS_MOUNT
from tests.e2e import hub_config
from tests.e2e.deployment import NB_USER, TIMINGS
from tests.e2e.hub_deployment import (
    USER_VALUES,
    HubUser,
    build_hub_image,
    build_notebook_image,
    chart_values,
    crash_check,
    hub_objects,
    job_script,
    password,
    public_url,
    pull_image,
    push,
    start_and_time,
    wait_rollout,
)

pytestmark = pytest.mark.e2e

USERS = ("ada", "grace")  # hub user names; every server runs as the image's jovyan


@pytest.fixture(scope="module")
def images(deployment):
    """{"notebook", "hub", "proxy"}: references by digest, built here and pushed to the local registry."""
    t0 = time.monotonic()
    client = deployment.restd.spec["containers"][0]["image"]  # the slurm-client image the stack deployed
    refs = {"notebook": build_notebook_image(client, deployment.image_env()["SLURM_VERSION"]),
            "hub": push(build_hub_image("hub")), "proxy": push(build_hub_image("proxy"))}
    TIMINGS["JupyterHub images built and pushed"] = time.monotonic() - t0
    return refs


@pytest.fixture(scope="module")
def values(deployment, images):
    return chart_values(deployment, images["notebook"])


@pytest.fixture(scope="module")
def hub(deployment, images, values):
    """The hub's public URL (port-forward of proxy-public), once hub and proxy are ready and the notebook image is
    on the node. Removes the hub's objects and what KubeSpawner made afterwards."""
    d = deployment
    objects = hub_objects(values, d.namespace, images["hub"], images["proxy"], secrets.token_hex(32))
    t0 = time.monotonic()
    try:
        for obj in objects:
            d.kube.create(obj)
        wait_rollout(d, "proxy")
        wait_rollout(d, "hub")
        TIMINGS["JupyterHub hub and proxy ready"] = time.monotonic() - t0
        pull_image(d, images["notebook"])
        with public_url(d) as url:
            yield url
    finally:
        d.kube.delete_labelled("pod", "component=singleuser-server")
        for obj in reversed(objects):
            d.kube.delete(obj["kind"], obj["metadata"]["name"])
        d.kube.delete_labelled("pvc", "component=singleuser-storage")


def hub_logs(deployment):
    return lambda: deployment.kube.kubectl("logs", "deployment/hub", "--tail=40", check=False).stdout


@pytest.fixture(scope="module")
def users(deployment, hub, values):
    """{name: HubUser} of USERS, logged in through the proxy, each with a running server (one after the other, so
    each time from login to the server answering through the proxy is its own)."""
    found = {}
    for name in USERS:
        user = found[name] = HubUser(hub, name)
        TIMINGS[f"JupyterHub login to {name}'s server ready"] = start_and_time(
            user, password(values), crash_check(deployment, name), logs=hub_logs(deployment))
    yield found
    for user in found.values():
        user.hub_api("DELETE", f"/users/{user.name}/server")


def user_pod(deployment, name):
    return deployment.kube.pod(f"jupyter-{name}")  # KubeSpawner's pod_name_template, the chart leaves it


def test_a_wrong_password_is_refused_at_the_proxy(hub, values):
    user = HubUser(hub, USERS[0])
    r = user.login(secrets.token_hex(16))
    assert r.status_code == 403 and "Invalid username or password" in r.text, (r.status_code, r.text[-300:])
    assert user.hub_api("GET", "/user").status_code == 403
    assert user.login(password(values)).status_code == 302  # the control: the generated password logs in


def test_each_user_gets_a_server_from_the_notebook_image_through_the_proxy(deployment, users, images):
    for name, user in users.items():
        pod = user_pod(deployment, name)
        assert deployment.kube.phase(pod) == "Running"
        image = pod.spec["containers"][0]["image"]
        assert image.endswith(images["notebook"].split("@", 1)[1]) and ":e2e@sha256:" in image, image
        assert pod.labels["app.kubernetes.io/managed-by"] == "kubespawner", pod.labels
        r = user.server("GET", "/api/me")
        assert r.status_code == 200 and r.json()["identity"]["username"] == name, r.text
        # The server is guarded by the hub: no token, a made-up one, another user's token are refused.
        assert user.server("GET", "/api/status", token="").status_code == 403
        assert user.server("GET", "/api/status", token=secrets.token_hex(16)).status_code == 403
        other = next(u for u in users.values() if u is not user)
        assert user.server("GET", "/api/status", token=other.token).status_code == 403
        # The browser's way: the login cookie, then the hub's OAuth redirects, all through the proxy.
        r = user.session.get(f"{user.url}/user/{name}/lab", timeout=60)
        assert r.status_code == 200 and "JupyterLab" in r.text, (r.status_code, r.url)


def test_the_user_pods_are_made_from_the_chart_values(deployment, users, values):
    su = values["singleuser"]
    files = su["extraFiles"]
    for name in users:
        pod = user_pod(deployment, name)
        container = pod.spec["containers"][0]
        assert container["args"] == [su["cmd"]]
        assert container["securityContext"]["runAsUser"] == su["uid"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        # A null or absent singleuser.fsGid leaves KubeSpawner's default (no fsGroup), as in the chart.
        assert pod.spec.get("securityContext", {}).get("fsGroup") == su.get("fsGid"), pod.spec.get("securityContext")
        assert pod.labels.items() >= su["extraLabels"].items(), pod.labels
        volumes = {v["name"]: v for v in pod.spec["volumes"]}
        items = {i["key"]: i.get("mode") for i in volumes["files"]["secret"]["items"]}
        assert volumes["files"]["secret"]["secretName"] == "singleuser"
        assert items == {k: f.get("mode") for k, f in files.items()}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for key, f in files.items():
            assert (mounts[f["mountPath"]]["name"], mounts[f["mountPath"]]["subPath"]) == ("files", key)
        home = mounts[su["storage"]["homeMountPath"]]
        assert volumes[home["name"]]["persistentVolumeClaim"]["claimName"] == f"claim-{name}"
        claim = deployment.kube.get("pvc", f"claim-{name}")
        assert claim["status"]["phase"] == "Bound"
        assert claim["spec"]["resources"]["requests"]["storage"] == su["storage"]["capacity"]


def test_the_munge_key_is_readable_by_root_only(deployment, users):
    d = deployment
    _, munge_key = d.secret_with("munge.key")
    key = f"{KEYS_MOUNT}/{MUNGE_KEY_FILE}"
    for name in users:
        pod = user_pod(d, name)
        for file, text in d.config_files().items():
            path = f"{CONFIG_MOUNT}/{file}"
            assert d.kube.exec(pod, "stat", "-L", "-c", "%a %U", path).stdout.split() == ["644", "root"], path
            assert d.kube.exec(pod, "cat", path).stdout == text, path
        mode, uid, gid = d.kube.exec(pod, "stat", "-L", "-c", "%a %u %g", key).stdout.split()
        mode = int(mode, 8)
        assert uid == "0" and mode & 0o007 == 0, f"{name}: {key} is {oct(mode)} owned by uid {uid}"
        # Who can read it through its group (the kubelet gives an fsGroup read on Secret files): nobody but root.
        passwd = [line.split(":") for line in d.kube.exec(pod, "getent", "passwd").stdout.splitlines()]
        members = (d.kube.exec(pod, "getent", "group", gid, check=False).stdout.strip().split(":") + [""] * 4)[3]
        readers = {u[0] for u in passwd if u[2] == "0" or (mode & 0o040 and (u[3] == gid or u[0] in members.split(",")))}
        assert readers == {"root"}, f"{name}: {key} ({oct(mode)}, group {gid}) is readable by {readers}"
        # The running server: jovyan, without that group, cannot read it; munged's copy is munge's alone.
        server = d.kube.exec(pod, "pgrep", "-u", NB_USER, "-f", "jupyterhub-singleuser").stdout.split()[0]
        status = d.kube.exec(pod, "cat", f"/proc/{server}/status").stdout
        groups = next(line.split()[1:] for line in status.splitlines() if line.startswith("Groups:"))
        assert not (mode & 0o040 and gid in groups), f"{name}: the server's groups {groups} can read {key}"
        assert d.kube.exec(pod, "cat", key, user=NB_USER, check=False).returncode != 0, f"{name}: jovyan reads it"
        assert d.kube.exec(pod, "stat", "-c", "%a %U", "/etc/munge/munge.key").stdout.split() == ["400", "munge"]
        assert d.kube.exec(pod, "sha256sum", "/etc/munge/munge.key").stdout.split()[0] == \
            hashlib.sha256(munge_key).hexdigest(), f"{name}: munged does not use the stack's munge key"


def test_each_user_runs_sinfo_and_a_job_submitted_through_the_proxy_completes(deployment, users):
    d = deployment
    for name, user in users.items():
        pod = user_pod(d, name)
        partitions = d.kube.exec(pod, "timeout", "20", "sinfo", "-h", "-o", "%P %a", user=NB_USER).stdout
        assert "up" in partitions.split(), f"{name}: sinfo: {partitions}"
        job_name = f"{name}-{secrets.token_hex(3)}"
        r = user.server("PUT", f"/api/contents/{job_name}.sh",
                        json={"type": "file", "format": "text", "content": job_script(job_name)})
        assert r.status_code in (200, 201), r.text
        r = user.server("POST", "/jupyterlab_slurm/sbatch",
                        json={"inputPath": f"/home/{NB_USER}/{job_name}.sh", "outputPath": f"/home/{NB_USER}"})
        body = r.json()
        assert r.status_code == 200 and body.get("success"), body
        job = str(body["data"]["jobId"])
        assert d.wait_job(job).startswith("COMPLETED")
        assert d.sacct(job, "User,JobName") == f"{NB_USER}|{job_name}"
        out = d.kube.exec(d.slurm, "cat", f"/tmp/{job_name}-{job}.out").stdout
        assert f"{job_name} on {d.slurm.hostname} as {NB_USER}" in out, out


def test_a_users_authenticator_setting_takes_effect_in_the_running_hub(hub, values, users):
    """USER_VALUES (as jupyterhub.values) blocks mallory: the right password no longer lets that name in, while
    the users logged in (control) did with the same password."""
    blocked = USER_VALUES["hub"]["config"]["Authenticator"]["blocked_users"]
    assert blocked and not set(blocked) & set(users)
    for name in blocked:
        assert HubUser(hub, name).login(password(values)).status_code == 403, name
    for name, user in users.items():
        assert user.hub_api("GET", "/user").json()["name"] == name


def test_the_slurm_panels_endpoints_answer_through_the_proxy(users):
    for name, user in users.items():
        for path in ("/jupyterlab_slurm/squeue", "/jupyterlab_slurm/sacct"):
            r = user.server("GET", path)
            assert r.status_code == 200 and r.json()["success"] is True and "rows" in r.json()["data"], \
                (name, path, r.status_code, r.text[:300])
            assert user.server("GET", path, token="").status_code == 403, (name, path)


def test_the_hub_runs_the_charts_versions_and_configuration(deployment, users):
    hub = deployment.kube.kubectl("exec", "deployment/hub", "--", "python3", "-c",
                                  "import jupyterhub, kubespawner; print(jupyterhub.__version__, kubespawner.__version__)")
    assert hub.stdout.split() == ["5.4.4", "7.0.0"], hub.stdout
    chp = deployment.kube.kubectl("exec", "deployment/proxy", "--", "configurable-http-proxy", "--version")
    assert chp.stdout.strip() == "5.2.0", chp.stdout
    labels = user_pod(deployment, USERS[0]).labels  # the chart's common labels, set by its hub configuration
    assert labels["app.kubernetes.io/instance"] == hub_config.RELEASE, labels
