"""Scenario 9: an operator's Prometheus scrapes the stack (issue 25).

A real Prometheus (Debian's, tests/e2e/monitoring.py) in the namespace `monitoring` with the scraper's default
labels, configured with the README's scrape job (its targets given as Kubernetes discovery would find them: Debian's
build has none), the hub's scraper token and the stack's alert rules, as an operator would. The hub is the tests' chart hub (as test_03's) with the program's metrics values (hub_metrics_values()).
- every target is up: slurm-exporter, the token service's metrics port, the hub's /hub/metrics;
- only the scraper reaches them: a pod without its labels in its namespace, and JupyterLab, are refused by the
  NetworkPolicies (probes as test_03b's), the scraper itself admitted (the control);
- a job moves Slurm's completed count by one; a hub user's first Slurm command the tokens issued by one; a request
  with a token the hub does not know the refusals for `unknown_token` by one, and not the issued count;
- a slurmd that stops answering (SIGSTOP) fires SlurmNodesDown within SlurmdTimeout plus the alert's `for:`; resumed
  (SIGCONT, then `scontrol update state=resume`, as the alert says), the node returns.
"""

from __future__ import annotations

import time

import pytest
import yaml

from components import jupyter, token_service
from components.jupyterhub import HUB_PORT, hub_metrics_values
from components.metrics import EXPORTER_PORT, TOKEN_METRICS_PORT
from components.monitoring import RULES_KEY
from tests.e2e.deployment import TIMINGS, stack_output
from tests.e2e.hub_deployment import (
    HubUser,
    chart_values,
    crash_check,
    hub_images,
    hub_logs,
    password,
    running_hub,
    single_node_egress,
    start_and_time,
    user_pod,
)
from tests.e2e.monitoring import Prometheus, running_prometheus
from tests.hub_egress import hub_scraper_ingress
from tests.images.slurm_containers import wait_until

pytestmark = pytest.mark.e2e

PROBE_S = 3


@pytest.fixture(scope="module")
def prometheus(deployment, hub):
    """Prometheus, started once the hub runs (it scrapes the pods there are: tests/e2e/monitoring.py)."""
    t0 = time.monotonic()
    with running_prometheus(deployment) as prom:
        TIMINGS["Prometheus built, deployed and ready"] = time.monotonic() - t0
        yield prom


@pytest.fixture(scope="module")
def hub(deployment):
    """The tests' chart hub with the program's metrics values: the stack's scraper token as the hub service's."""
    d = deployment
    images = hub_images(d)
    token = d.kube.secret_data(stack_output("metricsTokenSecret"))[stack_output("metricsTokenKey")].decode()
    values = chart_values(d, images["notebook"], stack_output("slurmTokenUrl"), egress=single_node_egress(d),
                          metrics=hub_metrics_values(token, hub_scraper_ingress(), annotate=True))
    with running_hub(d, images, values) as url:
        yield url, values


@pytest.fixture(scope="module")
def user(deployment, hub):
    """The directory's first user, logged in with a running server."""
    url, values = hub
    name = deployment.directory()[0][0].name
    u = HubUser(url, name)
    start_and_time(u, password(values), crash_check(deployment, name), logs=hub_logs(deployment))
    yield u
    u.hub_api("DELETE", f"/users/{name}/server")


def probe(kube, pod, host: str, port: int) -> str:
    """TCP connect from `pod` (as test_03b: exit 0 admitted, 124 no answer: refused)."""
    proc = kube.exec(pod, "timeout", str(PROBE_S), "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}", check=False,
                     timeout=PROBE_S + 20)
    return {0: "admitted", 124: "refused"}.get(proc.returncode, f"exit {proc.returncode}: {proc.stderr[-200:]}")


def test_every_target_is_up(deployment, prometheus: Prometheus, hub):
    prometheus.wait_scraped(timeout=60)
    targets = sorted((t["scrapeUrl"], t["health"]) for t in prometheus.targets())
    print("\n".join(f"{url} {health}" for url, health in targets))
    assert [health for _, health in targets] == ["up"] * 3, targets
    for suffix in (f":{EXPORTER_PORT}/metrics", f":{TOKEN_METRICS_PORT}/metrics", f":{HUB_PORT}/hub/metrics"):
        assert sum(url.endswith(suffix) for url, _ in targets) == 1, (suffix, targets)
    # each serves what it should: Slurm's, the token service's and the hub's own figures
    assert prometheus.value("slurm_slurmctld_up") == 1 and prometheus.value("slurm_slurmdbd_up") == 1
    assert prometheus.value("slurm_token_issued_total") is not None
    assert prometheus.value("jupyterhub_running_servers") is not None
    # the rules Prometheus loaded are the stack's (the rules ConfigMap), every group of them
    stack_rules = yaml.safe_load(deployment.kube.get("configmap", stack_output("metricsRules"))["data"][RULES_KEY])
    loaded = {g["name"]: sorted(r["name"] for r in g["rules"]) for g in prometheus.get("/api/v1/rules")["groups"]}
    assert loaded == {g["name"]: sorted(r.get("alert") or r.get("record") for r in g["rules"])
                      for g in stack_rules["groups"]}


def test_only_the_scraper_reaches_the_metrics_ports(deployment, prometheus: Prometheus, hub):
    d = deployment
    stranger = prometheus.kube.pod("stranger")
    (scraper,) = [p for p in prometheus.kube.pods if p.name.startswith("prometheus-")]
    prometheus.kube.wait_ready([stranger], timeout=120)
    hub_ip = d.kube.get("service", "hub")["spec"]["clusterIP"]
    tokens = d.app(token_service.APP)
    ports = {"slurm-exporter": (d.slurm.ip, EXPORTER_PORT), "token metrics": (tokens.ip, TOKEN_METRICS_PORT),
             "hub": (hub_ip, HUB_PORT)}
    seen = {(who, what): probe(kube, pod, *ports[what])
            for who, kube, pod in (("scraper", prometheus.kube, scraper), ("stranger", prometheus.kube, stranger),
                                   ("jupyterlab", d.kube, d.app(jupyter.APP)))
            for what in ports}
    print("\n".join(f"{who:10} -> {what:14} {result}" for (who, what), result in seen.items()))
    assert {k: v for k, v in seen.items() if k[0] == "scraper"} == {("scraper", w): "admitted" for w in ports}
    assert {v for k, v in seen.items() if k[0] != "scraper"} == {"refused"}, seen


def test_a_job_and_a_users_first_command_move_the_figures(deployment, prometheus: Prometheus, user: HubUser):
    d = deployment
    prometheus.wait_scraped()
    completed = prometheus.value("slurm_sdiag_jobs_completed")
    issued = prometheus.value("slurm_token_issued_total")
    job = d.sbatch(d.jupyter, "#!/bin/bash\ntrue\n")
    d.wait_job(job)
    pod = user_pod(d, user.name)
    # the user's first Slurm command (no cached token: slurm-token's cache file gone) asks the token service
    d.kube.exec(pod, "bash", "-c", 'rm -f "${XDG_RUNTIME_DIR:-/tmp}/slurm-token-$(id -u)" && squeue -h')
    prometheus.wait_scraped()
    wait_until(lambda: prometheus.value("slurm_sdiag_jobs_completed") == completed + 1, 30,
               "slurm_sdiag_jobs_completed to move by one", lambda: str(prometheus.value("slurm_sdiag_jobs_completed")))
    assert prometheus.value("slurm_token_issued_total") == issued + 1


def test_a_refused_token_shows_in_its_reason(deployment, prometheus: Prometheus, user: HubUser):
    d = deployment
    prometheus.wait_scraped()
    refused = 'slurm_token_refused_total{reason="unknown_token"}'
    before, issued = prometheus.value(refused), prometheus.value("slurm_token_issued_total")
    url = stack_output("slurmTokenUrl")
    proc = d.kube.exec(user_pod(d, user.name), "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                       "-H", "Authorization: token not-a-hub-token", url, check=False)
    assert proc.stdout.strip() == "401", proc.stdout + proc.stderr
    prometheus.wait_scraped()
    assert prometheus.value(refused) == before + 1
    assert prometheus.value("slurm_token_issued_total") == issued


def test_a_slurmd_that_stops_answering_fires_the_node_down_alert(deployment, prometheus: Prometheus):
    d = deployment
    node = d.node_names()[-1]
    assert not prometheus.firing("SlurmNodesDown")  # the control: all nodes up, no alert
    pattern = f"^/usr/sbin/slurmd -D -N {node}$"
    d.kube.exec(d.slurm, "pkill", "-STOP", "-f", pattern)
    t0 = time.monotonic()
    try:
        wait_until(lambda: prometheus.value("slurm_nodes_down") == 1, 120, f"{node} DOWN in Slurm's figures")
        TIMINGS["a stopped slurmd to slurm_nodes_down 1"] = time.monotonic() - t0
        wait_until(lambda: prometheus.firing("SlurmNodesDown"), 60 + 30, "SlurmNodesDown firing",
                   lambda: str(prometheus.alerts()))
        TIMINGS["a stopped slurmd to SlurmNodesDown firing"] = time.monotonic() - t0
    finally:
        d.kube.exec(d.slurm, "pkill", "-CONT", "-f", pattern)
    # What the alert tells the operator to do once the node is back: slurmctld pings no DOWN node and asks it to
    # register only every 20th ping cycle (ping_nodes.c MAX_REG_FREQUENCY), up to 400 s with SlurmdTimeout 60. (If
    # it registered already, Slurm refuses to resume a node that is not down: "Invalid node state specified".)
    d.kube.exec(d.slurm, "scontrol", "update", f"nodename={node}", "state=resume", check=False)
    wait_until(lambda: d.kube.exec(d.slurm, "sinfo", "-h", "-n", node, "-o", "%t").stdout.strip() == "idle", 90,
               f"{node} back to idle")
    wait_until(lambda: prometheus.value("slurm_nodes_down") == 0, 30, "slurm_nodes_down back to 0")
    print_costs(prometheus)


def print_costs(prometheus: Prometheus) -> None:
    """Each target's scrape (duration, samples) and its process' CPU (over the last 2 minutes) and memory, as the
    processes' own prometheus_client figures give them (the hub's and the exporters')."""
    def by_pod(query: str) -> dict[str, float]:
        return {r["metric"].get("pod", "?"): float(r["value"][1])
                for r in prometheus.get("/api/v1/query", query=query)["result"]}
    columns = {"scrape s": "scrape_duration_seconds", "samples": "scrape_samples_scraped",
               "CPU %": "100 * rate(process_cpu_seconds_total[2m])",
               "RSS MiB": "process_resident_memory_bytes / 2^20"}
    values = {name: by_pod(query) for name, query in columns.items()}
    print(f"\n{'pod':45}" + "".join(f"{name:>10}" for name in columns))
    for pod in sorted(values["samples"]):
        print(f"{pod:45}" + "".join(f"{values[name].get(pod, float('nan')):10.3g}" for name in columns))
