"""Scenario 3b: the NetworkPolicies, enforced (toolchain/kube runs the engine kube-network-policies), shown pod by pod
with real TCP connections: each admits what the stack needs and refuses the rest.

The policies: the stack's own (components/: the single node admits slurmctld and slurmdbd to the Slurm clients and
its slurmd ports to JupyterLab only; slurmrestd admits restd.allowedClients; the token service the hub's user pods
only; JupyterLab admits its port to anyone and any port to the single node, for srun) and the chart's `hub`, `proxy`
and `singleuser` (tests/e2e/hub_deployment.chart_network_policies: the hub admits pods labelled
hub.jupyter.org/network-access-hub; a user pod reaches the hub, the proxy, DNS, public addresses and the program's
singleuser.networkPolicy.egress, no other private address).

Each probe is `timeout 3 bash -c 'exec 3<>/dev/tcp/HOST/PORT'` in the source pod (kubectl exec, as the pod runs):
exit 0 is "admitted", 124 (no answer: the engine dropped the connection's first packet) "refused"; "closed" (reset:
the address was reached but nothing listens there) is neither, and fails a row. Destinations are Pod IPs, or a
Service's ClusterIP where clients use the Service (the engine judges the packet after kube-proxy's DNAT, so as the
pod behind it). The sources are the stack's pods, a directory user's server pod made by KubeSpawner (a hub run as
in test_03, whose fixtures end with its module), and a stranger: a pod of the stack's slurm-client image with no
label. The control removes the chart's singleuser policy and sees two refused rows admitted, then restores it.
A user pod to the Kubernetes API is refused too (the API server is on the node itself, whose incoming pod traffic
toolchain/kube queues to the engine); what such a pod would get there is checked as well (no credentials, an
anonymous request refused).
Run with `-rA` (or -s) to see the tables.
"""

from __future__ import annotations

import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pytest

from components import images, jupyter, token_service
from components.slurm_files import MARIADB_PORT, SLURMCTLD_PORT, SLURMDBD_PORT, SLURMRESTD_PORT, slurmd_ports
from tests.e2e.deployment import TIMINGS, pulumi, stack_output
from tests.e2e.hub_config import HUB_PORT
from tests.e2e.hub_deployment import (
    HubUser,
    chart_network_policies,
    chart_values,
    crash_check,
    hub_images,
    hub_logs,
    password,
    running_hub,
    single_node_egress,
    start_and_time,
)
from tests.e2e.kube import Pod
from tests.images.slurm_containers import wait_until

pytestmark = pytest.mark.e2e

ADMITTED, REFUSED = "admitted", "refused"
PROBE_S = 3  # a connection the engine admits opens in milliseconds here
LISTEN_PORT = 9999  # an arbitrary port, as srun's I/O connections back to the submitting pod use
NOTEBOOK_PORT = 8888  # KubeSpawner's notebook-port


@dataclass
class Edge:
    source: str
    pod: Pod
    dest: str
    host: str
    port: int
    expected: str
    why: str  # the policy (and rule) that decides


def probe(kube, pod: Pod, host: str, port: int) -> str:
    p = kube.exec(pod, "timeout", str(PROBE_S), "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}", check=False,
                  timeout=PROBE_S + 60)
    if p.returncode == 0:
        return ADMITTED
    if p.returncode == 124:
        return REFUSED
    out = (p.stderr + p.stdout).strip()
    return "closed" if "Connection refused" in out else f"error (rc {p.returncode}: {out[-160:]})"


def row(edge: Edge, outcome: str) -> str:
    mark = "ok" if outcome == edge.expected else "WRONG"
    return (f"{mark:5} {edge.source:22} -> {edge.dest:32} {edge.host + ':' + str(edge.port):21} {outcome:9} "
            f"(expected {edge.expected}: {edge.why})")


def check(kube, title: str, edges: list[Edge]) -> None:
    """Probe every edge (a few at a time), print the table, fail naming every row that is not as expected. A row
    found wrong is probed again for up to 10 s (the engine learns a new pod from its informer)."""
    def measure(batch):
        with ThreadPoolExecutor(max_workers=6) as pool:
            return list(pool.map(lambda e: probe(kube, e.pod, e.host, e.port), batch))

    outcomes = measure(edges)
    again = [i for i, e in enumerate(edges) if outcomes[i] != e.expected]
    deadline = time.monotonic() + 10
    while again and time.monotonic() < deadline:  # each probe waits up to 3 s itself: no sleep between rounds
        for i, outcome in zip(again, measure([edges[i] for i in again]), strict=True):
            outcomes[i] = outcome
        again = [i for i in again if outcomes[i] != edges[i].expected]
    table = "\n".join(row(e, o) for e, o in zip(edges, outcomes, strict=True))
    print(f"\n--- {title}\n{table}")
    wrong = [row(e, o) for e, o in zip(edges, outcomes, strict=True) if o != e.expected]
    assert not wrong, f"{title}: {len(wrong)} of {len(edges)} not as expected:\n" + "\n".join(wrong) + \
        f"\n--- all:\n{table}"


# --- fixtures ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stranger(deployment):
    """A pod no policy names: the stack's slurm-client image by digest (stack output `images`), no labels, no
    service account token, nothing of root."""
    d = deployment
    image = json.loads(pulumi("stack", "output", "images", "--json").stdout)[images.CLIENT]
    name = f"e2e-stranger-{secrets.token_hex(3)}"
    d.kube.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": d.namespace},
                   "spec": {"automountServiceAccountToken": False, "enableServiceLinks": False,
                            "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [{
                                "name": "stranger", "image": image, "imagePullPolicy": "IfNotPresent",
                                "command": ["sleep", "infinity"],
                                "securityContext": {"runAsUser": 65534, "runAsGroup": 65534, "runAsNonRoot": True,
                                                    "allowPrivilegeEscalation": False, "privileged": False,
                                                    "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]},
                                                    "seccompProfile": {"type": "RuntimeDefault"}}}]}})
    try:
        d.kube.wait_ready([d.kube.pod(name)], timeout=120)
        yield d.kube.pod(name)
    finally:
        d.kube.delete("pod", name, timeout=60)


@pytest.fixture(scope="module")
def hub(deployment):
    """{"user": the first directory user's server pod, "values": the chart values}, from a hub deployed as
    test_03's (hub_deployment.running_hub, with the program's egress for this stack), the chart's policies
    included."""
    d = deployment
    t0 = time.monotonic()
    refs = hub_images(d)
    values = chart_values(d, refs["notebook"], stack_output("slurmTokenUrl"), egress=single_node_egress(d))
    name = d.directory()[0][0].name
    with running_hub(d, refs, values) as url:
        user = HubUser(url, name)
        start_and_time(user, password(values), crash_check(d, name), logs=hub_logs(d))
        TIMINGS["policies: hub deployed, a user's server ready"] = time.monotonic() - t0
        try:
            yield {"user": d.kube.pod(f"jupyter-{name}"), "values": values}
        finally:
            user.hub_api("DELETE", f"/users/{name}/server")


@pytest.fixture(scope="module")
def lab_listener(deployment):
    """A listener on LISTEN_PORT in the JupyterLab pod, as its user (what srun's step I/O connects back to)."""
    d = deployment
    pid = d.kube.exec(d.jupyter, "bash", "-c", f"nohup python3 -m http.server --bind 0.0.0.0 {LISTEN_PORT} "
                                               "</dev/null >/dev/null 2>&1 & echo $!", user=d.lab_user).stdout.strip()
    try:
        wait_until(lambda: probe(d.kube, d.jupyter, "127.0.0.1", LISTEN_PORT) == ADMITTED, 30,
                   f"a listener on port {LISTEN_PORT} in the JupyterLab pod")
        yield LISTEN_PORT
    finally:
        d.kube.exec(d.jupyter, "kill", pid, check=False)


def cluster_ip(deployment, name: str) -> str:
    return deployment.kube.get("service", name)["spec"]["clusterIP"]


def service_ip(deployment, pod: Pod) -> str:
    return cluster_ip(deployment, deployment.service_of(pod))


def api_server(deployment) -> list[tuple[str, str, int]]:
    """(what, host, port) of the Kubernetes API: the `kubernetes` Service and the API server's own address."""
    kubectl = deployment.kube.kubectl
    svc = json.loads(kubectl("-n", "default", "get", "service", "kubernetes", "-o", "json", namespaced=False).stdout)
    slices = json.loads(kubectl("-n", "default", "get", "endpointslices", "-l",
                                "kubernetes.io/service-name=kubernetes", "-o", "json", namespaced=False).stdout)
    endpoint = slices["items"][0]
    return [("Kubernetes API Service", svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"]),
            ("Kubernetes API server", endpoint["endpoints"][0]["addresses"][0], endpoint["ports"][0]["port"])]


def slurmd(deployment) -> list[int]:
    return slurmd_ports(len(deployment.node_names()))


# --- the rows -----------------------------------------------------------------------------------------------------
NODE_CLIENTS = "single node: slurmctld, slurmdbd to Slurm clients"
NODE_SRUN = "single node: slurmd ports to JupyterLab only"
NODE_NOT = "single node: not in its policy"


def test_the_slurm_clients_reach_the_single_node_and_only_jupyterlab_its_slurmd(deployment, stranger):
    d = deployment
    node, lab, rest = d.slurm, d.jupyter, d.restd
    edges = [Edge("JupyterLab", lab, "single node slurmctld", node.ip, SLURMCTLD_PORT, ADMITTED, NODE_CLIENTS),
             Edge("JupyterLab", lab, "single node slurmdbd", node.ip, SLURMDBD_PORT, ADMITTED, NODE_CLIENTS),
             *(Edge("JupyterLab", lab, "single node slurmd", node.ip, p, ADMITTED, NODE_SRUN) for p in slurmd(d)),
             Edge("JupyterLab", lab, "single node REST (127.0.0.1)", node.ip, SLURMRESTD_PORT, REFUSED, NODE_NOT),
             Edge("JupyterLab", lab, "single node MariaDB", node.ip, MARIADB_PORT, REFUSED, NODE_NOT),
             Edge("slurmrestd", rest, "single node slurmctld", node.ip, SLURMCTLD_PORT, ADMITTED, NODE_CLIENTS),
             Edge("slurmrestd", rest, "single node slurmdbd", node.ip, SLURMDBD_PORT, ADMITTED, NODE_CLIENTS),
             Edge("slurmrestd", rest, "single node slurmd", node.ip, slurmd(d)[0], REFUSED, NODE_SRUN),
             Edge("JupyterLab", lab, "slurmrestd Service", service_ip(d, rest), SLURMRESTD_PORT, ADMITTED,
                  "slurmrestd: restd.allowedClients (slurm-jupyter)"),
             Edge("stranger", stranger, "single node slurmctld", node.ip, SLURMCTLD_PORT, REFUSED, NODE_CLIENTS),
             Edge("stranger", stranger, "single node slurmdbd", node.ip, SLURMDBD_PORT, REFUSED, NODE_CLIENTS),
             Edge("stranger", stranger, "single node slurmd", node.ip, slurmd(d)[0], REFUSED, NODE_SRUN),
             Edge("stranger", stranger, "slurmrestd Service", service_ip(d, rest), SLURMRESTD_PORT, REFUSED,
                  "slurmrestd: restd.allowedClients only")]
    check(d.kube, "Slurm clients -> the single node, slurmrestd", edges)


def test_the_singleuser_policy_carries_the_programs_egress(deployment, hub):
    """The program's singleuser.networkPolicy.egress (components/network.py Graph.egress) is in the chart's policy as
    deployed, after the chart's own rules."""
    deployed = deployment.kube.get("networkpolicy", "singleuser")["spec"]["egress"]
    program = single_node_egress(deployment)
    assert program and deployed[-len(program):] == program, json.dumps(deployed, indent=1)


def test_a_hub_user_pod_reaches_what_slurm_needs_and_nothing_else(deployment, hub):
    d = deployment
    user, node = hub["user"], d.slurm
    who = f"hub user ({user.name})"
    egress = "singleuser egress: the program's rules"
    edges = [Edge(who, user, "single node slurmctld", node.ip, SLURMCTLD_PORT, ADMITTED, egress),
             Edge(who, user, "single node slurmdbd", node.ip, SLURMDBD_PORT, ADMITTED, egress),
             *(Edge(who, user, "single node slurmd", node.ip, p, REFUSED, NODE_SRUN) for p in slurmd(d)),
             Edge(who, user, "single node REST (127.0.0.1)", node.ip, SLURMRESTD_PORT, REFUSED, NODE_NOT),
             Edge(who, user, "single node MariaDB", node.ip, MARIADB_PORT, REFUSED, NODE_NOT),
             Edge(who, user, "slurmrestd Service", service_ip(d, d.restd), SLURMRESTD_PORT, ADMITTED,
                  "slurmrestd: restd.allowedClients (jupyterhub)"),
             Edge(who, user, "token service Service", cluster_ip(d, d.service_of(d.app(token_service.APP))),
                  token_service.PORT, ADMITTED, "token service: hub user pods"),
             Edge(who, user, "hub Service", cluster_ip(d, "hub"), HUB_PORT, ADMITTED,
                  "chart: singleuser egress + hub ingress (network-access-hub)"),
             Edge(who, user, "JupyterLab Service", service_ip(d, d.jupyter), jupyter.PORT, REFUSED,
                  "chart: singleuser egress, no private IPs")]
    check(d.kube, "a hub user pod -> the stack", edges)


def test_a_hub_user_pod_does_not_reach_the_kubernetes_api(deployment, hub):
    d = deployment
    user = hub["user"]
    check(d.kube, "a hub user pod -> the Kubernetes API",
          [Edge(f"hub user ({user.name})", user, what, host, port, REFUSED, "chart: singleuser egress, no private IPs")
           for what, host, port in api_server(d)])


def test_a_hub_user_pod_holds_no_kubernetes_credentials_and_the_api_refuses_it(deployment, hub):
    """Whatever the network lets through: no service account token in the pod (KubeSpawner mounts none without
    singleuser.serviceAccountName), and the API server refuses an anonymous request for the namespace's pods."""
    d = deployment
    user = hub["user"]
    assert user.spec.get("automountServiceAccountToken") is False, user.spec.get("automountServiceAccountToken")
    found = d.kube.exec(user, "bash", "-c", "ls /var/run/secrets/kubernetes.io 2>&1; true").stdout
    assert "No such file" in found, found
    _, host, port = api_server(d)[0]
    code = d.kube.exec(user, "curl", "-sk", "-m", str(PROBE_S), "-o", "/dev/null", "-w", "%{http_code}",
                       f"https://{host}:{port}/api/v1/namespaces/{d.namespace}/pods", check=False).stdout.strip()
    assert code in ("000", "401", "403"), f"the API server answered {code} to an anonymous request from a user pod"


def test_the_token_service_admits_only_hub_user_pods_and_reaches_the_hub(deployment, hub, stranger):
    d = deployment
    tokens = d.app(token_service.APP)
    tokens_ip, hub_ip, user = cluster_ip(d, d.service_of(tokens)), cluster_ip(d, "hub"), hub["user"]
    only_users = "token service: hub user pods only"
    edges = [Edge("JupyterLab", d.jupyter, "token service Service", tokens_ip, token_service.PORT, REFUSED,
                  only_users),
             Edge("stranger", stranger, "token service Service", tokens_ip, token_service.PORT, REFUSED, only_users),
             Edge("stranger", stranger, "token service pod", tokens.ip, token_service.PORT, REFUSED, only_users),
             Edge("token service", tokens, "hub Service", hub_ip, HUB_PORT, ADMITTED,
                  "chart: hub ingress (network-access-hub)"),
             Edge("stranger", stranger, "hub Service", hub_ip, HUB_PORT, REFUSED, "chart: hub ingress"),
             Edge("JupyterLab", d.jupyter, "hub Service", hub_ip, HUB_PORT, REFUSED, "chart: hub ingress"),
             Edge("stranger", stranger, f"hub user ({user.name}) pod", user.ip, NOTEBOOK_PORT, REFUSED,
                  "chart: singleuser ingress (network-access-singleuser)")]
    check(d.kube, "the token service, the hub", edges)


def test_the_single_node_connects_back_to_jupyterlab_on_any_port(deployment, stranger, lab_listener):
    d = deployment
    lab = d.jupyter
    edges = [Edge("single node", d.slurm, "JupyterLab pod listener", lab.ip, lab_listener, ADMITTED,
                  "JupyterLab: any port from the single node"),
             Edge("stranger", stranger, "JupyterLab pod listener", lab.ip, lab_listener, REFUSED,
                  "JupyterLab: only its port to anyone"),
             Edge("stranger", stranger, "JupyterLab Service", service_ip(d, lab), jupyter.PORT, ADMITTED,
                  "JupyterLab: its port to anyone (token-protected)")]
    check(d.kube, "back to JupyterLab", edges)


def test_the_engine_is_what_refuses_without_the_singleuser_policy_both_rows_open(deployment, hub, stranger):
    """The control: the chart's singleuser policy removed, the hub user pod reaches JupyterLab (its egress no longer
    limited) and the stranger the user's server (its ingress no longer limited); restored, both are refused again."""
    d = deployment
    user = hub["user"]
    policy = next(p for p in chart_network_policies(hub["values"], d.namespace)
                  if p["metadata"]["name"] == "singleuser")
    edges = [Edge(f"hub user ({user.name})", user, "JupyterLab Service", service_ip(d, d.jupyter), jupyter.PORT,
                  REFUSED, "chart: singleuser egress"),
             Edge("stranger", stranger, f"hub user ({user.name}) pod", user.ip, NOTEBOOK_PORT, REFUSED,
                  "chart: singleuser ingress")]
    check(d.kube, "control, with the singleuser policy", edges)

    def all_are(outcome):
        return lambda: all(probe(d.kube, e.pod, e.host, e.port) == outcome for e in edges)

    d.kube.delete("networkpolicy", "singleuser")
    try:
        wait_until(all_are(ADMITTED), 60, "both rows to be admitted without the singleuser policy", interval=1)
        check(d.kube, "control, without the singleuser policy",
              [replace(e, expected=ADMITTED, why="no policy selects the user pod") for e in edges])
    finally:
        d.kube.create(policy)
    wait_until(all_are(REFUSED), 60, "both rows to be refused again with the singleuser policy back", interval=1)
    check(d.kube, "control, the singleuser policy restored", edges)
