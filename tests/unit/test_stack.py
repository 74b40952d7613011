"""The whole program under Pulumi mocks, for the committed dev, prod (existing cluster) and local stacks.

What is checked: which resources exist under which component; where every key, password and token goes
(only into Secrets and secret outputs, never a ConfigMap, an env literal or a plain output); how pods mount
the keys and the Slurm files; images by digest; probes and labels on every workload; the outputs a user needs.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
from collections import Counter

import pytest

from components.slurm_files import CONFIG_FILES, SECRET_FILES
from tests.project_env import ROOT
from tests.unit.harness import is_secret, run_stack
from tests.unit.stacks import run, stack_values
from tests.unit.test_config import MUNGE
from tests.workload_rules import APP_LABELS, KEY_MODE, check_workload

T = "slurm-cloud-integration:index:"
STACK = "pulumi:pulumi:Stack"
BYTES = "random:index/randomBytes:RandomBytes"
PASSWORD = "random:index/randomPassword:RandomPassword"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
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
SINGLE_NODE = {
    (BYTES, "slurm-keys-munge", T + "SlurmKeys"),  # an existing cluster's key is adopted, not generated
    (BYTES, "slurm-keys-jwt", T + "SlurmKeys"),
    (SECRET, "slurm-keys-jwt", T + "SlurmKeys"),
    (IMAGE, "slurm-single-node", T + "SlurmImages"),
    (PASSWORD, "slurm-config-db-password", T + "SlurmConfig"),
    (SECRET, "slurm-config-secret", T + "SlurmConfig"),
    (T + "SlurmSingleNode", "single-node", STACK),
    (STATEFULSET, "single-node-statefulset", T + "SlurmSingleNode"),
    (SERVICE, "single-node-service", T + "SlurmSingleNode"),
    (NETPOL, "single-node-clients", T + "SlurmSingleNode"),
}
HUB = {
    (IMAGE, "slurm-jupyter-notebook", T + "SlurmImages"),
    (T + "JupyterHub", "jupyterhub", STACK),
    (PASSWORD, "jupyterhub-password", T + "JupyterHub"),
    (RELEASE, "jupyterhub-release", T + "JupyterHub"),
}
EXPECTED = {"dev": COMMON | SINGLE_NODE | HUB, "prod": COMMON | HUB, "local": COMMON | SINGLE_NODE,
            "cluster": COMMON | SINGLE_NODE}
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
        values += [MUNGE, base64.b64encode(base64.b64decode(MUNGE)[:24]).decode()]
    return values


def munge_key(result, stack_name: str) -> str:
    return MUNGE if stack_name == "prod" else result.one(BYTES, "slurm-keys-munge").plain["base64"]


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


def test_key_secrets_hold_exactly_the_slurm_keys(stack):
    name, result = stack
    expected = {"munge.key": munge_key(result, name)}
    if name != "prod":
        expected["jwt_hs256.key"] = result.one(BYTES, "slurm-keys-jwt").plain["base64"]
    found = {}
    for secret in result.of_type(SECRET):
        data = secret.plain.get("data") or {}
        for file in set(data) & {"munge.key", "jwt_hs256.key"}:
            assert secret.parent == T + "SlurmKeys", f"{file} in Secret {secret.name} outside SlurmKeys"
            assert is_secret(secret.inputs["data"]), f"Secret {secret.name} data is not a Pulumi secret"
            found[file] = data[file]
    assert found == expected, "the key Secrets must hold the SlurmKeys values (generated or adopted)"
    if has_hub(result):
        files = hub_values(result)["singleuser"]["extraFiles"]
        assert files["munge-key"]["binaryData"] == expected["munge.key"], "notebooks must get the cluster's munge key"


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
    assert set(result.one(CONFIG_MAP).plain["data"]) == set(CONFIG_FILES)


def test_secret_outputs_and_plain_hints(stack):
    name, result = stack
    token, secret = result.outputs["jupyterToken"]
    assert secret and token == result.one(PASSWORD, "jupyter-token").plain["result"]
    hint, hint_secret = result.outputs["jupyterTokenHint"]
    assert not hint_secret and hint == "pulumi stack output jupyterToken --show-secrets"
    assert result.outputs["jupyterLabUrl"][0].endswith(":8888/lab")
    assert result.outputs["slurmrestdUrl"][0].endswith(":6820")
    for out in ("jupyterLabUrl", "slurmrestdUrl", "jupyterLabAccess", "namespace"):
        assert not result.outputs[out][1], f"{out} should be plain text"
    if not has_hub(result):
        assert "jupyterhubUrl" not in result.outputs
    else:
        assert result.outputs["jupyterhubPassword"][1], "the hub password must be a secret output"
        assert "jupyterhubPassword --show-secrets" in result.outputs["jupyterhubAccess"][0]
    assert ("slurmController" in result.outputs) == (name != "prod")


def test_jupyter_token_reaches_the_pod_only_by_secret_key_ref(stack):
    _, result = stack
    token_secret = result.one(SECRET, "jupyter-token")
    assert is_secret(token_secret.inputs["stringData"])
    assert token_secret.plain["stringData"] == {"token": result.one(PASSWORD, "jupyter-token").plain["result"]}
    (container,) = pod_spec(result.one(DEPLOYMENT, "jupyter-deployment"))["containers"]
    (env,) = [e for e in container["env"] if e["name"] == "JUPYTER_TOKEN"]
    assert "value" not in env
    assert env["valueFrom"]["secretKeyRef"] == {"name": token_secret.plain["metadata"]["name"], "key": "token"}


def test_pods_mount_the_munge_key_read_only_0400(stack):
    name, result = stack
    munge_secret = result.outputs["mungeSecret"][0]
    jwt = None if name == "prod" else result.one(SECRET, "slurm-keys-jwt").plain["metadata"]["name"]
    checked = 0
    for w in workloads(result):
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
        (container,) = spec["containers"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["slurm-keys"] == {"name": "slurm-keys", "mountPath": "/etc/slurm-keys", "readOnly": True}
        assert "fsGroup" not in spec.get("securityContext", {}), f"{w.name}: fsGroup would make keys group-readable"
        checked += 1
    assert checked == (2 if name == "prod" else 3)
    if has_hub(result):
        files = hub_values(result)["singleuser"]["extraFiles"]
        assert files["munge-key"]["mountPath"] == "/etc/slurm-keys/munge.key"
        assert files["munge-key"]["mode"] == KEY_MODE


def test_every_consumer_mounts_the_same_slurm_files(stack):
    name, result = stack
    config_map = result.one(CONFIG_MAP)
    cm_name = config_map.plain["metadata"]["name"]
    for w in workloads(result):
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
        (container,) = spec["containers"]
        assert {"name": "slurm-config", "mountPath": "/etc/slurm-config", "readOnly": True} in container["volumeMounts"]
    if has_hub(result):
        files = hub_values(result)["singleuser"]["extraFiles"]
        given = {f["mountPath"]: f["stringData"] for f in files.values() if "stringData" in f}
        assert given == {f"/etc/slurm-config/{k}": v for k, v in config_map.plain["data"].items()}


def test_single_node_hostname_and_address_match_slurm_conf(single_node_stack):
    _, result = single_node_stack
    slurm_conf = result.one(CONFIG_MAP).plain["data"]["slurm.conf"]
    host, addr = re.search(r"^SlurmctldHost=([^(\s]+)\(([^)]+)\)$", slurm_conf, re.M).groups()
    sts, svc = result.one(STATEFULSET).plain, result.one(SERVICE, "single-node-service").plain
    ns = result.outputs["namespace"][0]
    assert host == sts["metadata"]["name"] + "-0", "SlurmctldHost must be the pod's hostname"
    assert addr == f"{svc['metadata']['name']}.{ns}.svc.cluster.local" == result.outputs["slurmController"][0]
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"] and sts["spec"]["replicas"] == 1
    assert sts["spec"]["podManagementPolicy"] == "Parallel", "a broken pod must not block the next rollout"
    assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
    ports = {p["name"]: p["port"] for p in svc["spec"]["ports"]}
    assert {"slurmctld": 6817, "slurmdbd": 6819, "slurmrestd": 6820}.items() <= ports.items()
    node_ports = sorted(int(p) for p in re.findall(r"^NodeName=\S+ .*Port=(\d+)", slurm_conf, re.M))
    assert sorted(v for k, v in ports.items() if k.startswith("slurmd-")) == node_ports


def test_single_node_state_volume_and_probes(single_node_stack):
    _, result = single_node_stack
    spec = result.one(STATEFULSET).plain["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    (container,) = spec["template"]["spec"]["containers"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/slurm-state"} in container["volumeMounts"]
    assert container["readinessProbe"]["exec"]["command"] == ["/usr/local/bin/slurm-healthcheck"]
    assert container["livenessProbe"]["tcpSocket"]["port"] == 6817


def test_storage_size_and_class_come_from_config():
    result = run("dev", storage={"size": "50Gi", "className": "fast"})
    (claim,) = result.one(STATEFULSET).plain["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"


def test_single_node_resources_follow_the_nodes():
    def resources(**changes):
        (container,) = run("dev", **changes).one(STATEFULSET).plain["spec"]["template"]["spec"]["containers"]
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
    container["image"] = container["image"].split("@")[0]
    with pytest.raises(AssertionError, match="not pinned by digest"):
        check_workload(workload)


def test_services_select_their_workloads(stack):
    _, result = stack
    pods = [w.plain["spec"]["template"]["metadata"]["labels"] for w in workloads(result)]
    for svc in result.of_type(SERVICE):
        sel = svc.plain["spec"]["selector"]
        assert sum(sel.items() <= p.items() for p in pods) == 1, f"Service {svc.name} selects {sel}"
        assert all(k in svc.plain["metadata"]["labels"] for k in APP_LABELS)


def test_restd_admits_only_allowed_clients(stack):
    _, result = stack
    policy = result.one(NETPOL, "slurmrestd-clients").plain["spec"]
    restd_pods = pod_labels(result, "slurmrestd-deployment")
    assert policy["podSelector"]["matchLabels"].items() <= restd_pods.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": 6820, "protocol": "TCP"}]
    (peer,) = rule["from"]
    assert peer == {"podSelector": {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "In", "values": ["slurm-jupyter", "jupyterhub"]}]}}
    assert pod_labels(result, "jupyter-deployment")["app.kubernetes.io/name"] in peer["podSelector"]["matchExpressions"][0]["values"]


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


def test_single_node_admits_every_slurm_client_and_the_rest_clients(single_node_stack):
    _, result = single_node_stack
    (slurm, rest) = result.one(NETPOL, "single-node-clients").plain["spec"]["ingress"]
    apps = lambda rule: rule["from"][0]["podSelector"]["matchExpressions"][0]["values"]  # noqa: E731
    assert apps(slurm) == ["slurmrestd", "slurm-jupyter", "jupyterhub"]
    assert {p["port"] for p in slurm["ports"]} >= {6817, 6818, 6819, 6820}
    assert apps(rest) == ["slurm-jupyter", "jupyterhub"] and rest["ports"] == [{"port": 6820, "protocol": "TCP"}]
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
    else:  # an existing cluster: its addresses are not known here, its ports are
        assert egress[0]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]


def test_existing_cluster_uses_its_slurm_conf_and_deploys_no_slurm():
    result = run("prod")
    conf = (ROOT / "configs" / "existing" / "slurm.conf").read_text()
    data = result.one(CONFIG_MAP).plain["data"]
    assert data["slurm.conf"] == conf
    assert "SLURM_CLUSTER_NAME=prod" in data.get("slurm-image.env", ""), "the images need the version facts"
    assert not result.of_type(STATEFULSET) and not [s for s in result.of_type(SECRET) if s.name == "slurm-keys-jwt"]
    assert hub_values(result)["singleuser"]["extraFiles"]["slurm-config-slurm-conf"]["stringData"] == conf


def test_components_can_be_switched_off():
    result = run("dev", components={"restd": False, "jupyter": False, "jupyterhub": False})
    types = {r.typ for r in result.resources}
    assert T + "SlurmRestd" not in types and T + "SlurmJupyter" not in types and T + "JupyterHub" not in types
    assert result.outputs["slurmrestdUrl"][0].startswith("http://dev-slurm."), "the single node's own slurmrestd"


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
    assert len(built_on_client) == (2 if has_hub(result) else 1)
    for image in built_on_client:
        assert image.plain["build"]["args"]["BASE_IMAGE"].startswith(client_digest), image.plain["build"]["args"]
