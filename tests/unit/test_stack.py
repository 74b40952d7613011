"""The whole program under Pulumi mocks, for the committed dev, prod (existing cluster) and local stacks.

What is checked: which resources exist under which component; where every key, password and token goes
(only into Secrets and secret outputs, never a ConfigMap, an env literal or a plain output, never a hub user's
pod); how pods mount the keys, the Slurm files, the user directory and the shared home; images by digest; probes
and labels on every workload; the outputs a user needs.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
from collections import Counter

import pytest

from components import directory, restd
from components.jupyterhub import hub_extra_config
from components.slurm_files import CONFIG_FILES, SECRET_FILES
from tests import helm
from tests.project_env import ROOT
from tests.unit.config_values import JWT, MUNGE
from tests.unit.harness import is_secret, run_stack
from tests.unit.stacks import run, stack_values
from tests.workload_rules import APP_LABELS, KEY_MODE, check_workload

T = "slurm-cloud-integration:index:"
STACK = "pulumi:pulumi:Stack"
BYTES = "random:index/randomBytes:RandomBytes"
PASSWORD = "random:index/randomPassword:RandomPassword"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
USER_SERVERS = "pulumi-python:dynamic/jupyterhub:UserServers"  # components/user_servers.py
IMAGE = "docker:index/image:Image"
WORKLOADS = (DEPLOYMENT, STATEFULSET)

# (type, name, parent type) of every resource each stack registers.
COMMON = {
    ("pulumi:providers:kubernetes", "kubernetes", STACK),
    ("kubernetes:core/v1:Namespace", "namespace", STACK),
    (T + "SlurmKeys", "slurm-keys", STACK),
    (SECRET, "slurm-keys-munge", T + "SlurmKeys"),
    (T + "SlurmImages", "images", STACK),
    (IMAGE, "slurm-client", T + "SlurmImages"),
    (IMAGE, "slurm-jupyter", T + "SlurmImages"),
    (T + "SlurmConfig", "slurm-config", STACK),
    (CONFIG_MAP, "slurm-config-files", T + "SlurmConfig"),
    (CONFIG_MAP, "users", STACK),  # the user directory
    (T + "SlurmRestd", "slurmrestd", STACK),
    (DEPLOYMENT, "slurmrestd-deployment", T + "SlurmRestd"),
    (SERVICE, "slurmrestd-service", T + "SlurmRestd"),
    (NETPOL, "slurmrestd-clients", T + "SlurmRestd"),
    (T + "SlurmJupyter", "jupyter", STACK),
    (PASSWORD, "jupyter-token", T + "SlurmJupyter"),
    (SECRET, "jupyter-token", T + "SlurmJupyter"),
    (DEPLOYMENT, "jupyter-deployment", T + "SlurmJupyter"),
    (SERVICE, "jupyter-service", T + "SlurmJupyter"),
    (NETPOL, "jupyter-ingress", T + "SlurmJupyter"),
}
# The JWT key: the single node's slurmctld and slurmdbd check tokens with it, the token service signs them with it
# (an existing cluster's, adopted from jwtKey, in prod).
JWT_SECRET = {(SECRET, "slurm-keys-jwt", T + "SlurmKeys")}
HOME = {(CLAIM, "home", STACK)}  # the shared home claim, unless home.claim names the site's own (prod)
SINGLE_NODE = JWT_SECRET | {
    (BYTES, "slurm-keys-munge", T + "SlurmKeys"),  # an existing cluster's key is adopted, not generated
    (BYTES, "slurm-keys-jwt", T + "SlurmKeys"),
    (IMAGE, "slurm-single-node", T + "SlurmImages"),
    (PASSWORD, "slurm-config-db-password", T + "SlurmConfig"),
    (SECRET, "slurm-config-secret", T + "SlurmConfig"),
    (T + "SlurmSingleNode", "single-node", STACK),
    (STATEFULSET, "single-node-statefulset", T + "SlurmSingleNode"),
    (SERVICE, "single-node-service", T + "SlurmSingleNode"),
    (NETPOL, "single-node-clients", T + "SlurmSingleNode"),
    # The stack's own last update: preview warns when nodes changes (stack.warn_if_nodes_change).
    ("pulumi:pulumi:StackReference", "organization/slurm-cloud-integration/test", STACK),
}
# The token service (components.tokenService, on in every committed stack) runs the notebook image.
TOKENS = JWT_SECRET | {
    (IMAGE, "slurm-jupyter-notebook", T + "SlurmImages"),
    (T + "TokenService", "slurm-token", STACK),
    (DEPLOYMENT, "slurm-token-deployment", T + "TokenService"),
    (SERVICE, "slurm-token-service", T + "TokenService"),
    (NETPOL, "slurm-token-clients", T + "TokenService"),
}
HUB = TOKENS | {
    (T + "JupyterHub", "jupyterhub", STACK),
    (PASSWORD, "jupyterhub-password", T + "JupyterHub"),
    (RELEASE, "jupyterhub-release", T + "JupyterHub"),
    (USER_SERVERS, "jupyterhub-servers", STACK),  # the Release's servers
}
# A cluster with the token service and no Release: the servers of a hub run beside the stack (tests/e2e's).
OWN_HUB = {(USER_SERVERS, "own-hub-servers", STACK)}
# An existing cluster: its clients roll out once a Job has seen its slurmctld accept the munge key (prod).
SITE_CHECK = {(T + "SiteCheck", "site-check", STACK), ("kubernetes:batch/v1:Job", "site-check-job", T + "SiteCheck")}
# Metrics (config metrics.enabled, on by default): the scraper's hub token, its Secret, the alert rules' ConfigMap
# (without the Prometheus Operator; with it, PodMonitors and a PrometheusRule: tests/unit/test_metrics.py).
METRICS = {(T + "Monitoring", "metrics", STACK), (PASSWORD, "metrics-token", T + "Monitoring"),
           (SECRET, "metrics-token", T + "Monitoring"), (CONFIG_MAP, "metrics-rules", T + "Monitoring")}
EXPECTED = {"dev": COMMON | HOME | SINGLE_NODE | HUB | METRICS, "prod": COMMON | HUB | SITE_CHECK | METRICS,
            "local": COMMON | HOME | SINGLE_NODE | TOKENS | METRICS,
            "cluster": COMMON | HOME | SINGLE_NODE | TOKENS | OWN_HUB | METRICS}
STACKS = tuple(EXPECTED)
# The stacks a test about the single node or the hub applies to; test_resources_and_their_parents holds the
# others to having none.
SINGLE_NODE_STACKS = tuple(s for s in STACKS if SINGLE_NODE <= EXPECTED[s])
HUB_STACKS = tuple(s for s in STACKS if HUB <= EXPECTED[s])


@functools.cache
def committed(stack_name: str):
    """The committed stack under mocks, run once for every fixture below."""
    return run(stack_name)


@pytest.fixture(params=STACKS)
def stack(request):
    return request.param, committed(request.param)


@pytest.fixture(params=SINGLE_NODE_STACKS)
def single_node_stack(request):
    return request.param, committed(request.param)


@pytest.fixture(params=HUB_STACKS)
def hub_stack(request):
    return request.param, committed(request.param)


def pod_spec(workload) -> dict:
    return workload.plain["spec"]["template"]["spec"]


def workloads(result) -> list:
    return [r for t in WORKLOADS for r in result.of_type(t)]


def secret_values(result, stack_name: str) -> list[str]:
    """Every generated or adopted secret, in the forms it could leak in."""
    values = []
    for r in result.of_type(BYTES):
        raw = base64.b64decode(r.plain["base64"])
        values += [r.plain["base64"], raw.hex(), base64.b64encode(raw[:24]).decode()]
    values += [r.plain["result"] for r in result.of_type(PASSWORD)]
    if stack_name == "prod":
        for key in (MUNGE, JWT):
            raw = base64.b64decode(key)
            values += [key, raw.hex(), base64.b64encode(raw[:24]).decode()]
    return values


def munge_key(result, stack_name: str) -> str:
    return MUNGE if stack_name == "prod" else result.one(BYTES, "slurm-keys-munge").plain["base64"]


def jwt_key(result, stack_name: str) -> str:
    return JWT if stack_name == "prod" else result.one(BYTES, "slurm-keys-jwt").plain["base64"]


def slurm_files(result):
    return result.one(CONFIG_MAP, "slurm-config-files")


def name_of(resource) -> str:
    return resource.plain["metadata"]["name"]


def hub_values(result) -> dict:
    return result.one(RELEASE).plain["values"]


def has_hub(result) -> bool:
    return bool(result.of_type(RELEASE))


def test_resources_and_their_parents(stack):
    name, result = stack
    found = [(r.typ, r.name, r.parent) for r in result.resources if r.typ != STACK]
    duplicates = [k for k, n in Counter(found).items() if n > 1]
    assert not duplicates, f"registered twice: {duplicates}"
    assert set(found) == EXPECTED[name], (f"{name}: missing {sorted(EXPECTED[name] - set(found))}, "
                                          f"unexpected {sorted(set(found) - EXPECTED[name])}")


def test_user_servers_are_removed_after_the_hub_and_before_the_claim_they_mount(stack):
    """The engine deletes a resource before what it depends on: the Release, then UserServers (whose delete removes
    KubeSpawner's servers, components/user_servers.py), then the home claim and the namespace. A rendering stack
    (local) applies nothing, so no server can run there."""
    name, result = stack
    servers = result.of_type(USER_SERVERS)
    if name == "local":
        assert not servers
        return
    (s,) = servers
    namespace = result.one("kubernetes:core/v1:Namespace")
    assert s.plain["namespace"] == name_of(namespace) and namespace.urn in s.dependencies
    home = pod_spec(result.one(DEPLOYMENT, "jupyter-deployment"))["volumes"]
    claim = next(v["persistentVolumeClaim"]["claimName"] for v in home if v["name"] == "home")
    assert s.plain["claim"] == claim, "not the claim the servers mount"
    for made in result.of_type(CLAIM):  # the stack's own home claim (prod mounts the site's)
        assert made.urn in s.dependencies
    if has_hub(result):
        release = result.one(RELEASE)
        assert s.urn in release.dependencies, "the hub could start servers again after they went"
        assert release.urn not in s.dependencies


def test_turning_the_hub_off_deletes_the_releases_user_servers():
    """`components.jupyterhub: false` drops the Release and its UserServers from the program, so the update deletes
    both, the Release first; the UserServers left (a hub run beside the stack) has another name, not the same one
    kept."""
    on = {r.urn for r in committed("dev").of_type(USER_SERVERS)}
    off = {r.urn for r in run("dev", components={"jupyterhub": False}).of_type(USER_SERVERS)}
    assert len(on) == len(off) == 1 and not on & off, (on, off)


def test_key_secrets_hold_exactly_the_slurm_keys(stack):
    name, result = stack
    expected = {"munge.key": munge_key(result, name), "jwt_hs256.key": jwt_key(result, name)}
    found = {}
    for secret in result.of_type(SECRET):
        data = secret.plain.get("data") or {}
        for file in set(data) & {"munge.key", "jwt_hs256.key"}:
            assert secret.parent == T + "SlurmKeys", f"{file} in Secret {secret.name} outside SlurmKeys"
            assert is_secret(secret.inputs["data"]), f"Secret {secret.name} data is not a Pulumi secret"
            found[file] = data[file]
    assert found == expected, "the key Secrets must hold the SlurmKeys values (generated or adopted)"


def test_hub_user_pods_hold_no_cluster_key(hub_stack):
    """Neither the munge key nor the JWT key, in any form, reaches the chart: user pods authenticate to Slurm with
    their own short-lived tokens from the token service."""
    name, result = hub_stack
    values = hub_values(result)
    text = json.dumps(values)
    keys = [munge_key(result, name), jwt_key(result, name)]
    for key in keys:
        raw = base64.b64decode(key)
        assert not [form for form in (key, raw.hex(), base64.b64encode(raw[:24]).decode()) if form in text]
    singleuser = values["singleuser"]
    assert not [f for f in singleuser["extraFiles"].values() if "binaryData" in f or "slurm-keys" in f["mountPath"]]
    assert not singleuser["storage"].get("extraVolumes") and not singleuser.get("extraEnv", {}).keys() - {
        "SLURM_TOKEN_URL", "HOME"}
    assert keys[0] in json.dumps(result.one(SECRET, "slurm-keys-munge").plain)  # control: the forms are right


def test_no_secret_outside_secrets(stack):
    """Keys, the DB password, the tokens: only in Secrets, secret-marked inputs and secret outputs."""
    name, result = stack
    secrets = secret_values(result, name)
    assert len(secrets) >= 3
    leaks = lambda value: [s[:6] + "..." for s in secrets if s in json.dumps(value, default=str)]  # noqa: E731

    for cm in result.of_type(CONFIG_MAP):
        assert not leaks(cm.plain), f"ConfigMap {cm.name} holds a secret"
    for w in workloads(result):
        for c in pod_spec(w)["containers"]:
            literals = [e.get("value") for e in c.get("env", [])]
            assert not leaks(literals), f"{w.name}/{c['name']}: a secret in an env literal"
    for out, (value, is_secret_output) in result.outputs.items():
        assert is_secret_output or not leaks(value), f"stack output {out} shows a secret in plain text"
    # Wherever a secret does go, that input field is marked secret (so the state encrypts it).
    for r in result.resources:
        if r.typ in (BYTES, PASSWORD):
            continue
        for field, value in r.inputs.items():
            assert is_secret(value) or not leaks(value), f"{r.typ} {r.name}: input '{field}' holds a secret unmarked"


def test_db_password_only_in_the_slurmdbd_conf_secret(single_node_stack):
    _, result = single_node_stack
    password = result.one(PASSWORD, "slurm-config-db-password").plain["result"]
    secret = result.one(SECRET, "slurm-config-secret")
    assert is_secret(secret.inputs["stringData"])
    assert set(secret.plain["stringData"]) == set(SECRET_FILES)
    assert f"StoragePass={password}\n" in secret.plain["stringData"]["slurmdbd.conf"]
    assert set(slurm_files(result).plain["data"]) == set(CONFIG_FILES)


def test_secret_outputs_and_plain_hints(stack):
    name, result = stack
    token, secret = result.outputs["jupyterToken"]
    assert secret and token == result.one(PASSWORD, "jupyter-token").plain["result"]
    hint, hint_secret = result.outputs["jupyterTokenHint"]
    assert not hint_secret and hint == "pulumi stack output jupyterToken --show-secrets"
    assert result.outputs["jupyterLabUrl"][0].endswith(":8888/lab")
    assert result.outputs["slurmrestdUrl"][0].endswith(":6820")
    assert result.outputs["slurmrestdApiVersion"][0] == "v0.0.42", "24.11's newest REST API (components/slurm_files.py)"
    for out in ("jupyterLabUrl", "slurmrestdUrl", "jupyterLabAccess", "namespace"):
        assert not result.outputs[out][1], f"{out} should be plain text"
    if not has_hub(result):
        assert "jupyterhubUrl" not in result.outputs
    else:
        assert result.outputs["jupyterhubPassword"][1], "the hub password must be a secret output"
        assert "jupyterhubPassword --show-secrets" in result.outputs["jupyterhubAccess"][0]
        assert "port-forward service/proxy-public" in result.outputs["jupyterhubAccess"][0]
    assert ("slurmController" in result.outputs) == (name != "prod")
    if name != "prod":  # a token for a directory user, not for jovyan whom Slurm no longer knows
        assert "scontrol token username=alice " in result.outputs["slurmTokenHint"][0]


def test_jupyter_token_reaches_the_pod_only_by_secret_key_ref(stack):
    _, result = stack
    token_secret = result.one(SECRET, "jupyter-token")
    assert is_secret(token_secret.inputs["stringData"])
    assert token_secret.plain["stringData"] == {"token": result.one(PASSWORD, "jupyter-token").plain["result"]}
    (container,) = pod_spec(result.one(DEPLOYMENT, "jupyter-deployment"))["containers"]
    (env,) = [e for e in container["env"] if e["name"] == "JUPYTER_TOKEN"]
    assert "value" not in env
    assert env["valueFrom"]["secretKeyRef"] == {"name": token_secret.plain["metadata"]["name"], "key": "token"}


def munge_holders(result) -> list:
    """The workloads that hold the munge key: the Slurm nodes, slurmrestd and JupyterLab (not the token service)."""
    return [w for w in workloads(result) if w.name != "slurm-token-deployment"]


def test_pods_mount_the_munge_key_read_only_0400(stack):
    name, result = stack
    munge_secret = result.outputs["mungeSecret"][0]
    jwt = name_of(result.one(SECRET, "slurm-keys-jwt"))
    checked = 0
    for w in munge_holders(result):
        spec = pod_spec(w)
        volumes = {v["name"]: v for v in spec["volumes"]}
        keys = volumes["slurm-keys"]["projected"]
        assert keys["defaultMode"] == KEY_MODE, f"{w.name}: key volume defaultMode {keys['defaultMode']}"
        secrets = {s["secret"]["name"]: s["secret"]["items"] for s in keys["sources"]}
        assert secrets[munge_secret] == [{"key": "munge.key", "path": "munge.key", "mode": KEY_MODE}]
        single_node = w.typ == STATEFULSET
        assert (jwt in secrets) == single_node, f"{w.name}: only the single node gets the JWT key"
        for items in secrets.values():
            assert all(i["mode"] == KEY_MODE for i in items)
        mounts = {m["name"]: m for m in container_of(w)["volumeMounts"]}
        assert mounts["slurm-keys"] == {"name": "slurm-keys", "mountPath": "/etc/slurm-keys", "readOnly": True}
        assert "fsGroup" not in spec.get("securityContext", {}), f"{w.name}: fsGroup would make keys group-readable"
        checked += 1
    assert checked == (2 if name == "prod" else 3)


def test_every_consumer_mounts_the_same_slurm_files(stack):
    name, result = stack
    config_map = slurm_files(result)
    cm_name = config_map.plain["metadata"]["name"]
    for w in munge_holders(result):
        spec = pod_spec(w)
        (config,) = [v for v in spec["volumes"] if v["name"] == "slurm-config"]
        sources = config["projected"]["sources"]
        assert sources[0] == {"configMap": {"name": cm_name}}
        extra = [s["secret"] for s in sources[1:]]
        if w.typ == STATEFULSET:  # only the single node gets slurmdbd.conf (the DB password)
            assert extra == [{"name": result.one(SECRET, "slurm-config-secret").plain["metadata"]["name"],
                              "items": [{"key": "slurmdbd.conf", "path": "slurmdbd.conf", "mode": KEY_MODE}]}]
        else:
            assert extra == [], f"{w.name} must not get slurmdbd.conf"
        assert {"name": "slurm-config", "mountPath": "/etc/slurm-config", "readOnly": True} in \
            container_of(w)["volumeMounts"]
    if has_hub(result):
        files = hub_values(result)["singleuser"]["extraFiles"]
        given = {f["mountPath"]: f["stringData"] for f in files.values() if f["mountPath"].startswith("/etc/slurm-config/")}
        assert given == {f"/etc/slurm-config/{k}": v for k, v in config_map.plain["data"].items()}


def test_single_node_hostname_and_address_match_slurm_conf(single_node_stack):
    _, result = single_node_stack
    slurm_conf = slurm_files(result).plain["data"]["slurm.conf"]
    host, addr = re.search(r"^SlurmctldHost=([^(\s]+)\(([^)]+)\)$", slurm_conf, re.M).groups()
    sts, svc = result.one(STATEFULSET).plain, result.one(SERVICE, "single-node-service").plain
    ns = result.outputs["namespace"][0]
    assert host == sts["metadata"]["name"] + "-0", "SlurmctldHost must be the pod's hostname"
    assert addr == f"{svc['metadata']['name']}.{ns}.svc.cluster.local" == result.outputs["slurmController"][0]
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"] and sts["spec"]["replicas"] == 1
    assert sts["spec"]["podManagementPolicy"] == "Parallel", "a broken pod must not block the next rollout"
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert {"slurmctld": 6817, "slurmdbd": 6819}.items() <= ports.items()
    assert 6820 not in ports.values(), "its slurmrestd listens on a unix socket: other pods use the Deployment's"
    node_ports = sorted(int(p) for p in re.findall(r"^NodeName=\S+ .*Port=(\d+)", slurm_conf, re.M))
    assert sorted(v for k, v in ports.items() if k.startswith("slurmd-")) == node_ports


def test_single_node_state_volume_and_probes(single_node_stack):
    _, result = single_node_stack
    spec = result.one(STATEFULSET).plain["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    container = next(c for c in spec["template"]["spec"]["containers"] if c["name"] == "slurm")
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/slurm-state"} in container["volumeMounts"]
    assert container["readinessProbe"]["exec"]["command"] == ["/usr/local/bin/slurm-healthcheck"]
    assert container["livenessProbe"]["tcpSocket"]["port"] == 6817
    # Until the healthcheck first passes, it runs each second (Ready within a second of Slurm), for up to 300 s.
    startup = container["startupProbe"]
    assert startup["exec"] == container["readinessProbe"]["exec"] and startup["periodSeconds"] == 1
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300


def test_jupyterlab_is_probed_each_second_until_it_first_answers(stack):
    _, result = stack
    (container,) = result.one(DEPLOYMENT, "jupyter-deployment").plain["spec"]["template"]["spec"]["containers"]
    startup, readiness = container["startupProbe"], container["readinessProbe"]
    assert startup["httpGet"] == readiness["httpGet"] and startup["periodSeconds"] == 1
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120 and readiness["periodSeconds"] == 5


def test_storage_size_and_class_come_from_config():
    result = run("dev", storage={"size": "50Gi", "className": "fast"})
    (claim,) = result.one(STATEFULSET).plain["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"


def test_single_node_resources_follow_the_nodes():
    def resources(**changes):
        containers = run("dev", **changes).one(STATEFULSET).plain["spec"]["template"]["spec"]["containers"]
        container = next(c for c in containers if c["name"] == "slurm")
        return container["resources"]
    assert resources() == {"requests": {"cpu": "500m", "memory": "6144Mi"},
                           "limits": {"cpu": "4500m", "memory": "6144Mi"}}
    assert resources(nodes="4", node={"cpus": "1", "memoryMb": "1000"}) == {
        "requests": {"cpu": "500m", "memory": "5024Mi"}, "limits": {"cpu": "4500m", "memory": "5024Mi"}}
    assert resources(singleNode={"cpu": "8", "memory": "16Gi"}) == {
        "requests": {"cpu": "500m", "memory": "16384Mi"}, "limits": {"cpu": "8000m", "memory": "16384Mi"}}


def test_slurm_conf_nodes_come_from_config():
    result = run("dev", nodes="3", node={"cpus": "4", "memoryMb": "8000"})
    conf = next(r.plain["data"]["slurm.conf"] for r in result.resources if r.typ == CONFIG_MAP
                and "slurm.conf" in r.plain.get("data", {}))
    assert re.findall(r"^NodeName=(c\d+) .* CPUs=4 RealMemory=8000 ", conf, re.M) == ["c1", "c2", "c3"]
    assert re.search(r"^DefMemPerCPU=2000$", conf, re.M)
    assert re.search(r"^SelectTypeParameters=CR_Core_Memory$", conf, re.M)


def test_workloads_have_probes_labels_digests_and_limits(stack):
    _, result = stack
    for w in workloads(result):
        check_workload(w.plain)


def test_the_workload_rules_can_fail():
    workload = copy.deepcopy(committed("local").one(DEPLOYMENT, "jupyter-deployment").plain)
    check_workload(workload)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    image, container["image"] = container["image"], container["image"].split("@")[0]
    with pytest.raises(AssertionError, match="not pinned by digest"):
        check_workload(workload)
    container["image"] = image
    del container["terminationMessagePolicy"]  # as the single node's container was, before the pod base
    with pytest.raises(AssertionError, match="log tail"):
        check_workload(workload)


def test_services_select_their_workloads(stack):
    _, result = stack
    pods = [w.plain["spec"]["template"]["metadata"]["labels"] for w in workloads(result)]
    for svc in result.of_type(SERVICE):
        sel = svc.plain["spec"]["selector"]
        assert sum(sel.items() <= p.items() for p in pods) == 1, f"Service {svc.name} selects {sel}"
        assert all(k in svc.plain["metadata"]["labels"] for k in APP_LABELS)


def test_clusterip_services_skip_the_providers_service_await(stack):
    # A ClusterIP Service's await would hold `pulumi up` until its Endpoints are 10 s unchanged; its Deployment's
    # await covers the pods. The headless single-node Service is never awaited for pods by the provider.
    _, result = stack
    services = result.of_type(SERVICE)
    assert services
    for svc in services:
        skips = (svc.plain["metadata"].get("annotations") or {}).get("pulumi.com/skipAwait") == "true"
        assert skips == (svc.plain["spec"].get("clusterIP") != "None"), svc.name


# The chart gives all its pods (hub, proxy, user pods, image pullers) app.kubernetes.io/name jupyterhub; KubeSpawner
# gives the user pods app.kubernetes.io/component singleuser-server (kubespawner 7.0.0 spawner.py component_label).
HUB_USER_PODS = {"podSelector": {"matchExpressions": [
    {"key": "app.kubernetes.io/name", "operator": "In", "values": ["jupyterhub"]},
    {"key": "app.kubernetes.io/component", "operator": "In", "values": ["singleuser-server"]}]}}
# The metrics scraper as config metrics.scraper names it by default: Prometheus' pods in the namespace monitoring.
SCRAPER_PODS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def test_restd_admits_only_allowed_clients(stack):
    _, result = stack
    policy = result.one(NETPOL, "slurmrestd-clients").plain["spec"]
    restd_pods = pod_labels(result, "slurmrestd-deployment")
    assert policy["podSelector"]["matchLabels"].items() <= restd_pods.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 6820, "protocol": "TCP"}]
    lab, hub_users = rule["from"]
    assert lab == {"podSelector": {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": ["slurm-jupyter"]}]}}
    assert hub_users == HUB_USER_PODS, "of the chart's pods, its user pods only (not the hub, proxy or pullers)"
    assert pod_labels(result, "jupyter-deployment")["app.kubernetes.io/name"] == "slurm-jupyter"


def test_the_rest_gates_cache_of_checks_is_in_memory(stack):
    """Its files hold users' tokens (slurm-rest-gate.conf): a tmpfs, never the node's disk."""
    _, result = stack
    spec = pod_spec(result.one(DEPLOYMENT, "slurmrestd-deployment"))
    (volume,) = [v for v in spec["volumes"] if v["name"] == "rest-gate"]
    assert volume["emptyDir"]["medium"] == "Memory", volume
    mounts = spec["containers"][0]["volumeMounts"]
    assert {"name": "rest-gate", "mountPath": restd.GATE_DIR} in mounts


def test_restd_allowed_clients_come_from_config():
    result = run("dev", restd={"allowedClients": ["my-portal"]})
    (rule,) = result.one(NETPOL, "slurmrestd-clients").plain["spec"]["ingress"]
    assert rule["from"][0]["podSelector"]["matchExpressions"][0]["values"] == ["my-portal"]
    egress = hub_values(result)["singleuser"]["networkPolicy"]["egress"]
    assert not any("slurmrestd" in json.dumps(e) for e in egress), "notebooks are not a client any more"


def test_every_pod_is_behind_a_network_policy(stack):
    _, result = stack
    policies = [p.plain["spec"] for p in result.of_type(NETPOL)]
    for w in workloads(result):
        labels = w.plain["spec"]["template"]["metadata"]["labels"]
        selecting = [p for p in policies if p["podSelector"]["matchLabels"].items() <= labels.items()]
        assert len(selecting) == 1 and selecting[0]["policyTypes"] == ["Ingress"], f"{w.name}: {selecting}"


def test_single_node_admits_slurm_clients_to_the_controller_and_only_jupyterlab_to_the_nodes(single_node_stack):
    _, result = single_node_stack
    (slurm, srun, metrics) = result.one(NETPOL, "single-node-clients").plain["spec"]["ingress"]
    assert metrics == {"from": [SCRAPER_PODS], "ports": [{"port": 9341, "protocol": "TCP"}]}, "slurm-exporter's"
    apps = lambda rule: rule["from"][0]["podSelector"]["matchExpressions"][0]["values"]  # noqa: E731
    assert apps(slurm) == ["slurmrestd", "slurm-jupyter"] and slurm["from"][1:] == [HUB_USER_PODS]
    assert sorted(p["port"] for p in slurm["ports"]) == [6817, 6819]
    assert apps(srun) == ["slurm-jupyter"], "srun from JupyterLab (munge) launches tasks on the slurmd ports"
    assert {p["port"] for p in srun["ports"]} == {6817, 6818, 6819, 6821}
    for app in apps(slurm)[:2]:
        workload = "slurmrestd-deployment" if app == "slurmrestd" else "jupyter-deployment"
        assert pod_labels(result, workload)["app.kubernetes.io/name"] == app


def pod_labels(result, workload: str) -> dict:
    return result.one(DEPLOYMENT, workload).plain["spec"]["template"]["metadata"]["labels"]


def test_notebooks_may_reach_slurm_through_the_chart_network_policy(hub_stack):
    name, result = hub_stack
    singleuser = hub_values(result)["singleuser"]
    assert singleuser["extraLabels"]["app.kubernetes.io/name"] == "jupyterhub"
    egress = singleuser["networkPolicy"]["egress"]
    ports = {p["port"] for rule in egress for p in rule["ports"]}
    assert {6817, 6819} <= ports
    if name in SINGLE_NODE_STACKS:
        assert {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "slurm-single-node"}}} in egress[0]["to"]
        assert [p["port"] for p in egress[0]["ports"]] == [6817, 6819], "no slurmd: a token cannot srun anyway"
    else:  # an existing cluster: its addresses are not known here, its ports are
        assert egress[0]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]


def test_both_ends_of_each_hub_user_edge_agree(hub_stack):
    """The user pods' egress and the stack's ingress policies come from one network graph (components/network.py): a
    rule of their egress to a pod of the stack is admitted by that pod's policy, on the same ports, and a policy that
    admits them has their egress rule to it."""
    _, result = hub_stack
    ports = lambda rule: [p["port"] for p in rule["ports"]]  # noqa: E731
    egress = {rule["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]: ports(rule)
              for rule in hub_values(result)["singleuser"]["networkPolicy"]["egress"] if "podSelector" in rule["to"][0]}
    admitted = {policy.plain["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]: ports(rule)
                for policy in result.of_type(NETPOL) for rule in policy.plain["spec"]["ingress"]
                if HUB_USER_PODS in (rule.get("from") or [])}
    assert egress and egress == admitted
    assert "slurmrestd" in egress  # control: restd.allowedClients without jupyterhub drops both ends
    result = run("dev", restd={"allowedClients": ["slurm-jupyter"]})
    assert not any("slurmrestd" in json.dumps(r) for r in hub_values(result)["singleuser"]["networkPolicy"]["egress"])
    assert HUB_USER_PODS not in result.one(NETPOL, "slurmrestd-clients").plain["spec"]["ingress"][0]["from"]


def test_existing_cluster_uses_its_slurm_conf_and_deploys_no_slurm():
    result = run("prod")
    conf = (ROOT / "configs" / "existing" / "slurm.conf").read_text()
    data = slurm_files(result).plain["data"]
    assert data["slurm.conf"] == conf
    assert "SLURM_CLUSTER_NAME=prod" in data.get("slurm-image.env", ""), "the images need the version facts"
    assert not result.of_type(STATEFULSET) and not result.of_type(CLAIM)
    # The site's JWT key (jwtKey), for the token service: adopted, not generated.
    assert result.one(SECRET, "slurm-keys-jwt").plain["data"] == {"jwt_hs256.key": JWT}
    assert not result.of_type(BYTES)
    assert hub_values(result)["singleuser"]["extraFiles"]["slurm-config-slurm-conf"]["stringData"] == conf


def test_a_configless_site_gets_no_copy_of_slurm_conf_and_every_client_names_its_controller(tmp_path):
    conf = (ROOT / "configs" / "existing" / "slurm.conf").read_text() + "SlurmctldParameters=enable_configless\n"
    (tmp_path / "slurm.conf").write_text(conf)
    result = run("prod", existingCluster={"slurmConf": str(tmp_path / "slurm.conf"), "configless": True})
    assert set(slurm_files(result).plain["data"]) == {"slurm-image.env"}, "the clients fetch slurm.conf themselves"
    server = {"name": "SLURM_CONF_SERVER", "value": "slurmctl.hpc.example.com:6817"}  # SlurmctldHost's address
    for name in ("slurmrestd-deployment", "jupyter-deployment"):
        assert server in container_of(result.one(DEPLOYMENT, name))["env"], name
    (job,) = result.of_type("kubernetes:batch/v1:Job")
    assert job.plain["spec"]["template"]["spec"]["containers"][0]["env"] == [server], "the check asks the same server"
    singleuser = hub_values(result)["singleuser"]
    assert singleuser["extraEnv"]["SLURM_CONF_SERVER"] == server["value"]
    assert "slurm-config-slurm-conf" not in singleuser["extraFiles"]
    # Copied, as before: no SLURM_CONF_SERVER anywhere.
    copied = run("prod")
    assert all(e["name"] != "SLURM_CONF_SERVER" for w in workloads(copied) for e in container_of(w).get("env") or [])


def test_an_existing_clusters_clients_mount_the_key_its_check_job_was_given():
    result = run("prod")
    (job,) = result.of_type("kubernetes:batch/v1:Job")
    spec = job.plain["spec"]["template"]["spec"]
    (check,) = spec["containers"]
    assert check["args"] == ["slurm-munge-check"] and check["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert job.plain["spec"]["backoffLimit"] == 0 and spec["restartPolicy"] == "Never"
    munge = name_of(result.one(SECRET, "slurm-keys-munge"))
    def munge_secrets(pod):
        return {s["secret"]["name"] for v in pod["volumes"] for s in (v.get("projected") or {}).get("sources", [])
                if "secret" in s}
    assert munge_secrets(spec) == {munge}
    for name in ("slurmrestd-deployment", "jupyter-deployment"):
        assert munge_secrets(pod_spec(result.one(DEPLOYMENT, name))) == {munge}, name


def test_the_home_claim_can_bind_the_sites_volume():
    result = run("prod", home={"volume": "site-home-nfs", "size": "1Ti"})
    spec = result.one(CLAIM, "home").plain["spec"]
    assert (spec["volumeName"], spec["storageClassName"], spec["accessModes"]) == ("site-home-nfs", "", ["ReadWriteMany"])
    assert hub_values(result)["singleuser"]["storage"]["static"]["pvcName"] == name_of(result.one(CLAIM, "home"))


def test_components_can_be_switched_off():
    result = run("dev", components={"restd": False, "jupyter": False, "jupyterhub": False})
    types = {r.typ for r in result.resources}
    assert T + "SlurmRestd" not in types and T + "SlurmJupyter" not in types and T + "JupyterHub" not in types
    assert "slurmrestdUrl" not in result.outputs, "the single node's own slurmrestd serves its health check only"


def test_registry_credentials_become_the_pods_pull_secret():
    creds = {"registry": "ghcr.io/acme", "username": "robot", "password": "s3cret-pull-token"}
    result = run_stack(stack_values("dev", images=creds), {"images"}, str(ROOT))
    secret = result.one(SECRET, "images-pull")
    assert secret.parent == STACK and secret.plain["type"] == "kubernetes.io/dockerconfigjson"
    was = secret.urn.replace(f"::{STACK}${SECRET}::", f"::{T}SlurmImages${SECRET}::")  # its URN until 2026-11
    assert secret.aliases == [was], "stacks made when it was SlurmImages' child must keep their Secret"
    assert is_secret(secret.inputs["stringData"]), "the registry password must stay a Pulumi secret"
    auths = json.loads(secret.plain["stringData"][".dockerconfigjson"])["auths"]
    assert auths == {"ghcr.io": {"username": "robot", "password": "s3cret-pull-token",
                                 "auth": base64.b64encode(b"robot:s3cret-pull-token").decode()}}
    name = secret.plain["metadata"]["name"]
    for w in workloads(result):
        assert pod_spec(w)["imagePullSecrets"] == [{"name": name}], w.name
    assert hub_values(result)["imagePullSecrets"] == [name], "the chart's pods (users' included) need it too"
    for r in result.resources:
        if r is not secret:
            leaked = [f for f, v in r.inputs.items() if not is_secret(v) and "s3cret-pull-token" in json.dumps(v)]
            assert not leaked, f"{r.typ} {r.name}: the registry password in {leaked}"


def test_no_pull_secret_without_registry_credentials(stack):
    _, result = stack
    assert not [s for s in result.of_type(SECRET) if s.name == "images-pull"]
    assert all("imagePullSecrets" not in pod_spec(w) for w in workloads(result))


def test_jupyter_images_are_built_on_the_client_image_by_digest(stack):
    """A changed slurm-client must change the Jupyter images' inputs, so `pulumi up` rebuilds them on it."""
    name, result = stack
    client = result.one(IMAGE, "slurm-client")
    client_digest = f"{client.plain['imageName'].rsplit(':', 1)[0]}@sha256:"
    built_on_client = [i for i in result.of_type(IMAGE) if i.name in ("slurm-jupyter", "slurm-jupyter-notebook")]
    assert {i.name for i in built_on_client} == {"slurm-jupyter", "slurm-jupyter-notebook"}  # the token service's too
    for image in built_on_client:
        assert image.plain["build"]["args"]["BASE_IMAGE"].startswith(client_digest), image.plain["build"]["args"]


# The user directory, the shared home and the token service (issue 10).

DIRECTORY_USERS = (directory.User("alice", 2001, 2001, ("research",)), directory.User("bob", 2002, 2002, ("research",)))
DIRECTORY_GROUPS = {"research": 3000}  # as every committed stack has them


def workload(result, name: str):
    return next(w for w in workloads(result) if w.name == name)


def container_of(w) -> dict:
    """The workload's own container: the first (the single node's slurm-exporter comes after its daemons'; its own
    tests are tests/unit/test_single_node_exporter.py)."""
    return pod_spec(w)["containers"][0]


@pytest.mark.parametrize("previous, warned", [({"slurmNodes": 3}, True), ({"slurmNodes": 2}, False), ({}, False)],
                         ids=["nodes changed", "nodes as before", "first update"])
def test_preview_warns_that_changing_nodes_ends_the_running_jobs(monkeypatch, previous, warned):
    said = []
    monkeypatch.setattr("pulumi.log.warn", lambda message, *a, **k: said.append(message))
    result = run_stack(stack_values("dev"), set(), str(ROOT), previous_outputs=previous)
    assert result.outputs["slurmNodes"][0] == 2
    about_nodes = [m for m in said if m.startswith("nodes goes from")]
    assert about_nodes == (["nodes goes from 3 to 2: the single node's pod is replaced, and every job running in it "
                            "ends NODE_FAIL (JobRequeue=0). Before `pulumi up`, wait until `squeue -t running` shows "
                            "none, or drain the nodes (scontrol update nodename=ALL state=drain reason=resize) and let "
                            "their jobs finish"] if warned else []), said


def test_only_the_single_node_keeps_sys_ptrace_for_slurms_memory_sampler(stack):
    _, result = stack
    for w in workloads(result):
        caps = container_of(w)["securityContext"].get("capabilities", {})
        assert caps.get("drop") == ["ALL"], w.name
        assert ("SYS_PTRACE" in caps.get("add", [])) == (w.typ == STATEFULSET), f"{w.name}: {caps}"


def test_the_users_config_map_is_the_directory(stack):
    _, result = stack
    data = result.one(CONFIG_MAP, "users").plain["data"]
    assert data == directory.render_files(DIRECTORY_USERS, DIRECTORY_GROUPS)
    assert data["group"].splitlines()[-1] == "research:x:3000:alice,bob"


def test_every_pod_resolves_the_user_directory_read_only(stack):
    """The Slurm nodes, slurmrestd, JupyterLab and the token service read the same passwd and group (through the
    images' libnss-extrausers); the hub's user pods get the same two files from the chart's extraFiles."""
    _, result = stack
    users = result.one(CONFIG_MAP, "users")
    assert {"slurmrestd-deployment", "jupyter-deployment"} <= {w.name for w in workloads(result)}
    for w in workloads(result):
        (volume,) = [v for v in pod_spec(w)["volumes"] if v["name"] == "users"]
        assert volume["configMap"]["name"] == name_of(users), w.name
        assert volume["configMap"]["defaultMode"] == 0o644, w.name
        assert {"name": "users", "mountPath": "/var/lib/extrausers", "readOnly": True} in container_of(w)["volumeMounts"]
    if has_hub(result):
        files = hub_values(result)["singleuser"]["extraFiles"]
        given = {f["mountPath"]: f["stringData"] for f in files.values()
                 if f["mountPath"].startswith("/var/lib/extrausers/")}
        assert given == {f"/var/lib/extrausers/{k}": v for k, v in users.plain["data"].items()}
        assert all(f["mode"] == 0o644 for f in files.values())


def home_claim_name(result, stack_name: str) -> str:
    return "site-home" if stack_name == "prod" else name_of(result.one(CLAIM, "home"))


def test_the_home_is_one_shared_claim_at_home(stack):
    """The Slurm nodes and JupyterLab mount the whole claim at /home; the hub mounts /home/<user> of it; slurmrestd
    and the token service need no home."""
    name, result = stack
    claim = home_claim_name(result, name)
    mounting = {}
    for w in workloads(result):
        volumes = [v for v in pod_spec(w)["volumes"] if v["name"] == "home"]
        mounts = [m for m in container_of(w)["volumeMounts"] if m["name"] == "home"]
        if volumes:
            assert volumes == [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}], w.name
            assert mounts == [{"name": "home", "mountPath": "/home"}], w.name
        else:
            assert not mounts, w.name
        mounting[w.name] = bool(volumes)
    assert mounting.pop("jupyter-deployment") is True
    assert mounting.pop("single-node-statefulset", True) is True
    assert not any(mounting.values()), f"only the Slurm nodes and JupyterLab mount the home: {mounting}"
    if has_hub(result):
        storage = hub_values(result)["singleuser"]["storage"]
        assert storage == {"type": "static", "static": {"pvcName": claim, "subPath": "{username}"},
                           "homeMountPath": "/home/{username}"}


def test_the_stack_makes_a_read_write_many_home_claim(stack):
    name, result = stack
    if name == "prod":
        assert not result.of_type(CLAIM), "home.claim names the site's claim: the stack makes none"
        return
    spec = result.one(CLAIM, "home").plain["spec"]
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["resources"]["requests"]["storage"] == "10Gi"
    assert spec.get("storageClassName") == ("local-path-shared" if name == "cluster" else None)


def test_home_size_class_and_claim_come_from_config():
    spec = run("dev", home={"size": "100Gi", "className": "nfs"}).one(CLAIM, "home").plain["spec"]
    assert spec["resources"]["requests"]["storage"] == "100Gi" and spec["storageClassName"] == "nfs"
    result = run("dev", home={"claim": "lab-home"})
    assert not result.of_type(CLAIM)
    claims = {v["persistentVolumeClaim"]["claimName"] for w in workloads(result) for v in pod_spec(w)["volumes"]
              if "persistentVolumeClaim" in v}
    assert claims == {"lab-home"}
    assert hub_values(result)["singleuser"]["storage"]["static"]["pvcName"] == "lab-home"


def test_jupyterlab_runs_as_a_directory_user():
    def nb_user(result):
        (env,) = [e for e in container_of(result.one(DEPLOYMENT, "jupyter-deployment"))["env"] if e["name"] == "NB_USER"]
        return env["value"]
    assert nb_user(committed("local")) == "alice", "the first user by default"
    assert nb_user(run("local", jupyter={"user": "bob"})) == "bob"


def test_hub_users_are_the_directory_each_with_their_own_ids(hub_stack):
    _, result = hub_stack
    values = hub_values(result)
    assert values["hub"]["config"]["Authenticator"]["allowed_users"] == ["alice", "bob"]
    assert values["hub"]["extraConfig"]["slurmUsers"] == hub_extra_config(DIRECTORY_USERS, DIRECTORY_GROUPS)
    # The ids come from extraConfig only: no fixed uid or fsGid (the chart's root 0 of before, or any other).
    assert not values["singleuser"].keys() & {"uid", "fsGid", "extraPodConfig"}


def test_token_service_runs_non_root_with_only_the_jwt_key(hub_stack):
    name, result = hub_stack
    w = result.one(DEPLOYMENT, "slurm-token-deployment")
    spec = pod_spec(w)
    assert spec["securityContext"]["fsGroup"] == 65534, "its group reads the key (the kubelet makes it 0440)"
    sc = container_of(w)["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"], sc["readOnlyRootFilesystem"]) == (65534, 65534,
                                                                                                   True, True)
    assert {v["name"] for v in spec["volumes"]} == {"slurm-keys", "users"}, "no munge key, no Slurm files, no home"
    keys = next(v for v in spec["volumes"] if v["name"] == "slurm-keys")["projected"]
    jwt_secret = name_of(result.one(SECRET, "slurm-keys-jwt"))
    assert keys["sources"] == [{"secret": {"name": jwt_secret, "items": [
        {"key": "jwt_hs256.key", "path": "jwt_hs256.key", "mode": KEY_MODE}]}}]
    assert {m["mountPath"] for m in container_of(w)["volumeMounts"]} == {"/etc/slurm-keys", "/var/lib/extrausers"}
    env = {e["name"]: e.get("value") for e in container_of(w)["env"]}
    assert env["SLURM_JWT_KEY_FILE"] == "/etc/slurm-keys/jwt_hs256.key"
    assert env["SLURM_TOKEN_DIRECTORY"] == "/var/lib/extrausers/passwd"
    notebook = result.one(IMAGE, "slurm-jupyter-notebook").plain["imageName"].rsplit(":", 1)[0]
    assert container_of(w)["image"].startswith(notebook + "@sha256:")
    # The chart's hub NetworkPolicy admits pods with this label: the service asks the hub whose API token it got.
    assert w.plain["spec"]["template"]["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"


def test_token_service_admits_only_the_hub_user_pods(hub_stack):
    _, result = hub_stack
    policy = result.one(NETPOL, "slurm-token-clients").plain["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels(result, "slurm-token-deployment").items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule, metrics) = policy["ingress"]
    assert metrics == {"from": [SCRAPER_PODS], "ports": [{"port": 8091, "protocol": "TCP"}]}, "its figures"
    assert rule["ports"] == [{"port": 8090, "protocol": "TCP"}]
    assert rule["from"] == [HUB_USER_PODS]


def test_hub_user_pods_reach_the_token_service(hub_stack):
    _, result = hub_stack
    service = result.one(SERVICE, "slurm-token-service").plain
    assert service["spec"]["ports"][0]["port"] == 8090
    ns = result.outputs["namespace"][0]
    singleuser = hub_values(result)["singleuser"]
    assert singleuser["extraEnv"]["SLURM_TOKEN_URL"] == (
        f"http://{service['metadata']['name']}.{ns}.svc.cluster.local:8090/token")
    assert {"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "slurm-token"}}}],
            "ports": [{"protocol": "TCP", "port": 8090}]} in singleuser["networkPolicy"]["egress"]
    assert pod_labels(result, "slurm-token-deployment")["app.kubernetes.io/name"] == "slurm-token"


def test_a_hub_with_a_subdomain_per_server_is_reached_at_its_host():
    host = "https://hub.example.org"
    result = run("dev", jupyterhub={"chartVersion": helm.VERSION,
                                    "values": {"hub": {"config": {"JupyterHub": {"subdomain_host": host}}}}})
    access = result.outputs["jupyterhubAccess"][0]
    assert access.startswith(f"open {host} ") and "*.hub.example.org" in access and "port-forward" not in access
