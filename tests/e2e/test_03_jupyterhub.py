"""Scenario 3: JupyterHub as the official chart runs it, from the chart values `components.jupyterhub.jupyterhub_values()`
computes: a real hub with KubeSpawner and configurable-http-proxy (tests/e2e/hub_deployment.py says what is deployed
and how, tests/e2e/hub_config.py how the values become the hub's configuration). The users of the stack's directory
(Pulumi.cluster.yaml: alice and bob) log in through the proxy with the generated password; anyone else is refused.
KubeSpawner makes each user's pod from the slurm-jupyter-notebook image through the Kubernetes API, running as that
user's own uid, with their home on the shared claim and no key of the cluster: Slurm commands there use a JWT for
the user from the stack's token service. Each user writes a job in their home, submits it from the terminal and from
the Slurm panel, and reads its output back; Slurm knows them apart."""

import base64
import json
import secrets
import time

import pytest

from components.jupyterhub import LOGIN_NOTE
from components.pods import CONFIG_MOUNT, KEYS_MOUNT
from tests.e2e import hub_config
from tests.e2e.deployment import TIMINGS, stack_output
from tests.e2e.hub_deployment import (
    USER_VALUES,
    HubUser,
    chart_values,
    crash_check,
    hub_images,
    hub_logs,
    in_pod,
    job_from_home,
    password,
    running_hub,
    single_node_egress,
    start_and_time,
    user_pod,
)
from tests.slurm_rest import forged_token

pytestmark = pytest.mark.e2e

OUTSIDER = "carol"  # not in the directory


@pytest.fixture(scope="module")
def images(deployment):
    t0 = time.monotonic()
    refs = hub_images(deployment)
    TIMINGS["JupyterHub images built and pushed"] = time.monotonic() - t0
    return refs


@pytest.fixture(scope="module")
def values(deployment, images):
    """The program's chart values, with the user pods' egress it computes for this stack (components/network.py
    Graph.egress): the chart's singleuser NetworkPolicy blocks private IPs, the stack's pods included, otherwise."""
    return chart_values(deployment, images["notebook"], stack_output("slurmTokenUrl"),
                        egress=single_node_egress(deployment))


@pytest.fixture(scope="module")
def hub(deployment, images, values):
    """The hub's public URL (tests/e2e/hub_deployment.running_hub)."""
    with running_hub(deployment, images, values, TIMINGS) as url:
        yield url


@pytest.fixture(scope="module")
def directory(deployment):
    users, groups = deployment.directory()
    assert len(users) >= 2 and OUTSIDER not in {u.name for u in users}, users
    return {u.name: u for u in users}


@pytest.fixture(scope="module")
def users(deployment, hub, values, directory):
    """{name: HubUser} of the directory's users, logged in through the proxy, each with a running server (one after
    the other, so each time from login to the server answering through the proxy is its own)."""
    found = {}
    for name in directory:
        user = found[name] = HubUser(hub, name)
        TIMINGS[f"JupyterHub login to {name}'s server ready"] = start_and_time(
            user, password(values), crash_check(deployment, name), logs=hub_logs(deployment))
    yield found
    for user in found.values():
        user.hub_api("DELETE", f"/users/{user.name}/server")


def test_a_wrong_password_is_refused_at_the_proxy(hub, values, directory):
    user = HubUser(hub, next(iter(directory)))
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


def test_a_user_outside_the_directory_is_refused_at_login(hub, values, users):
    outsider = HubUser(hub, OUTSIDER)
    r = outsider.login(password(values))
    assert r.status_code == 403 and LOGIN_NOTE in r.text, (r.status_code, r.text[-500:])
    assert outsider.hub_api("GET", "/user").status_code == 403
    assert HubUser(hub, next(iter(users))).login(password(values)).status_code == 302  # control: same password


def test_the_user_pods_are_made_from_the_chart_values_as_their_users(deployment, users, values, directory):
    su = values["singleuser"]
    files = su["extraFiles"]
    for name in users:
        pod = user_pod(deployment, name)
        container = pod.spec["containers"][0]
        assert container["args"] == [su["cmd"]]
        u = directory[name]
        context = {**pod.spec.get("securityContext", {}), **container["securityContext"]}
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (u.uid, u.gid, u.gid), context
        assert context["allowPrivilegeEscalation"] is False
        assert pod.labels.items() >= su["extraLabels"].items(), pod.labels
        volumes = {v["name"]: v for v in pod.spec["volumes"]}
        items = {i["key"]: i.get("mode") for i in volumes["files"]["secret"]["items"]}
        assert items == {k: f.get("mode") for k, f in files.items()}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for key, f in files.items():
            assert (mounts[f["mountPath"]]["name"], mounts[f["mountPath"]]["subPath"]) == ("files", key)
        home = mounts[f"/home/{name}"]  # the shared claim, by subPath: the user sees only their own home
        assert home["subPath"] == name
        assert volumes[home["name"]]["persistentVolumeClaim"]["claimName"] == deployment.home_claim()
        ids = in_pod(deployment, name, "id -un; id -u; pwd; echo $HOME").stdout.split()
        assert ids[:2] == [name, str(u.uid)], ids
        # A kubectl exec shell has the user's home, as the server (extraEnv.HOME, {username} expanded by KubeSpawner).
        assert deployment.kube.exec(pod, "sh", "-c", "echo $HOME").stdout.strip() == f"/home/{name}"


def test_no_key_of_the_cluster_reaches_a_user_pod(deployment, users):
    d = deployment
    keys = {name: d.secret_with(name)[1] for name in ("munge.key", "jwt_hs256.key")}
    for name in users:
        pod = user_pod(d, name)
        spec = json.dumps(pod.spec)
        for key_name in keys:
            assert key_name not in spec and d.secret_with(key_name)[0] not in spec, f"{name}: {key_name} in the spec"
        assert KEYS_MOUNT not in spec
        # Inside: no key file anywhere it could be, no key in the environment.
        found = in_pod(d, name, "ls /etc/munge /etc/slurm-keys /run/munge 2>/dev/null; "
                                "find / -xdev \\( -name 'munge.key' -o -name 'jwt*.key' \\) 2>/dev/null; true").stdout
        assert found.strip() == "", f"{name}: {found}"
        env = in_pod(d, name, "cat /proc/1/environ | tr '\\0' '\\n'; env").stdout
        for key_name, key in keys.items():
            for form in (key.hex(), base64.b64encode(key).decode()):
                assert form not in env, f"{name}: {key_name} in the environment"
        for file, text in d.config_files().items():  # the Slurm files are there, as the chart's extraFiles
            assert in_pod(d, name, f"cat {CONFIG_MOUNT}/{file}").stdout == text


def test_each_user_works_in_slurm_as_themselves_from_their_home(deployment, users, directory):
    """A job written in the home with the file browser's API, submitted from the terminal and from the Slurm panel:
    both run as the user, in their home, and the output is read back through the file browser's API."""
    d = deployment
    jobs = {}
    for name, user in users.items():
        t0 = time.monotonic()
        partitions = in_pod(d, name, "timeout 20 sinfo -h -o '%P %a'").stdout
        assert "up" in partitions.split(), f"{name}: sinfo: {partitions}"
        for how in ("terminal", "panel"):
            jobs.setdefault(name, []).append(job_from_home(d, user, how, hosts=[d.slurm.hostname]))
            if how == "terminal":  # the user's first job: from login (the users fixture timed it) to its output read
                TIMINGS[f"JupyterHub login to {name}'s first job COMPLETED and read"] = (
                    TIMINGS[f"JupyterHub login to {name}'s server ready"] + time.monotonic() - t0)
        TIMINGS[f"{name}: sinfo, two jobs written, submitted, COMPLETED, read"] = time.monotonic() - t0
    # sacct tells them apart
    all_jobs = ",".join(j for js in jobs.values() for j in js)
    rows = d.kube.exec(d.slurm, "sacct", "-n", "-X", "-P", "-j", all_jobs, "-o", "JobID,User").stdout.split()
    assert {tuple(r.split("|")) for r in rows} == {(j, n) for n, js in jobs.items() for j in js}, rows


def test_a_user_cannot_touch_another_users_job_and_sees_only_their_own(deployment, users):
    d = deployment
    alice, bob = list(users)[:2]
    job = in_pod(d, alice, f"cd ~{alice} && sbatch --parsable --hold --job-name=e2e-mine --output=/dev/null "
                           "--wrap 'sleep 1'").stdout.strip()
    try:
        assert d.squeue(job) == "PENDING JobHeldUser"
        cancel = in_pod(d, bob, f"scancel {job}", check=False)
        assert cancel.returncode != 0 and "Access/permission denied" in cancel.stderr, (cancel.returncode,
                                                                                      cancel.stderr)
        release = in_pod(d, bob, f"scontrol release {job}", check=False)
        assert release.returncode != 0, release.stdout + release.stderr
        assert d.squeue(job) == "PENDING JobHeldUser", "bob changed alice's job"
        assert in_pod(d, bob, "squeue --me -h -o %i").stdout.split() == []
        assert job in in_pod(d, alice, "squeue --me -h -o %i").stdout.split()
    finally:
        in_pod(d, alice, f"scancel {job}")
    d.wait_job(job, "CANCELLED")


def test_slurm_tokens_are_the_users_own_and_a_forged_one_is_refused(deployment, users):
    d = deployment
    for name in users:
        token = in_pod(d, name, "slurm-token").stdout.strip()
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert claims["sun"] == name and claims["exp"] > time.time(), claims
        forged = in_pod(d, name, f"SLURM_JWT={forged_token(name)} squeue -h", check=False)
        assert forged.returncode != 0, forged.stdout
        assert in_pod(d, name, f"SLURM_JWT={token} squeue -h", check=False).returncode == 0  # control


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
    labels = user_pod(deployment, next(iter(users))).labels  # the chart's common labels, set by its hub configuration
    assert labels["app.kubernetes.io/instance"] == hub_config.RELEASE, labels
