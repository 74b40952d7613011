"""Metrics (issue 25): config `metrics`, the scraper's admission (and no one else's) to each metrics port, the hub's
/hub/metrics behind a read:metrics token, discovery (scrape annotations, or the Prometheus Operator's PodMonitors)
and the alert rules the stack ships. The rules' own evaluation is tests/lint's (promtool test rules)."""

from __future__ import annotations

import functools
import json

import pytest
import yaml

from components import network
from components.config import Components, ConfigError, parse
from components.jupyterhub import hub_metrics_values
from components.monitoring import GROUP_PARTS, PENDING_ALERT, RULES_KEY, render_rules
from tests.unit.config_values import with_
from tests.unit.harness import is_secret
from tests.unit.stacks import run, stack_values

T = "slurm-cloud-integration:index:"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
RELEASE = "kubernetes:helm.sh/v3:Release"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SCRAPER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
           "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
OPERATOR = {"prometheusOperator": True, "monitorLabels": {"release": "kube-prometheus-stack"}}


@functools.cache
def _run(metrics_json: str):
    metrics = json.loads(metrics_json)
    return run("dev", metrics=metrics) if metrics else run("dev")


def stack(**metrics):
    """The committed dev stack under mocks with config `metrics` (run once per value)."""
    return _run(json.dumps(metrics, sort_keys=True))


def ingress(result, policy: str) -> list[dict]:
    return result.one(NETPOL, policy).plain["spec"]["ingress"]


def token_container(result) -> dict:
    return result.one(DEPLOYMENT, "slurm-token-deployment").plain["spec"]["template"]["spec"]["containers"][0]


def token_pod_meta(result) -> dict:
    return result.one(DEPLOYMENT, "slurm-token-deployment").plain["spec"]["template"]["metadata"]


def hub(result) -> dict:
    return result.one(RELEASE).plain["values"]["hub"]


# --- config ------------------------------------------------------------------------------------------------------
def test_metrics_are_on_by_default_for_prometheus_pods_in_monitoring():
    m = parse(with_()).metrics
    assert m.enabled and not m.prometheus_operator and m.pending_alert_minutes == 30
    assert (m.scraper.namespace, m.scraper.pod_labels, m.scraper.cidr) == (
        "monitoring", {"app.kubernetes.io/name": "prometheus"}, None)


@pytest.mark.parametrize("metrics, key, words", [
    ({"scraper": {"namespace": "Monitoring!"}}, "metrics.scraper.namespace", "not a valid Kubernetes namespace"),
    ({"scraper": {"podLabels": {}}}, "metrics.scraper.podLabels", "would select every pod"),
    ({"scraper": {"podLabels": {"app": 3}}}, "metrics.scraper.podLabels", "is not a Kubernetes label"),
    ({"scraper": {"cidr": "10.0.0.5"}}, "metrics.scraper.cidr", "not an address range"),
    ({"scraper": {"port": 9090}}, "metrics.scraper.port", "unknown field"),
    ({"pendingAlertMinutes": 0}, "metrics.pendingAlertMinutes", "out of range"),
    ({"enabled": False, "prometheusOperator": True}, "metrics.prometheusOperator", "metrics.enabled is false"),
    ({"monitorLabels": {"release": "kps"}}, "metrics.monitorLabels", "prometheusOperator is false"),
    ({"monitorLabels": {"bad key!": "x"}, "prometheusOperator": True}, "metrics.monitorLabels", "not a Kubernetes"),
])
def test_bad_metrics_values_name_the_key(metrics, key, words):
    with pytest.raises(ConfigError) as err:
        parse(with_(metrics=metrics))
    assert err.value.key == key and words in str(err.value) and "Fix:" in str(err.value), str(err.value)


def test_a_user_may_not_turn_off_the_hubs_metrics_authentication_or_take_the_scrapers_service():
    for values, key in [({"hub": {"config": {"JupyterHub": {"authenticate_prometheus": False}}}},
                         "jupyterhub.values.hub.config.JupyterHub.authenticate_prometheus"),
                        ({"hub": {"services": {"metrics-scraper": {"apiToken": "x" * 32}}}},
                         "jupyterhub.values.hub.services.metrics-scraper")]:
        with pytest.raises(ConfigError) as err:
            parse(with_(jupyterhub={"chartVersion": "4.3.3", "values": values}))
        assert err.value.key == key, str(err.value)
    # Control: other services are the user's.
    parse(with_(jupyterhub={"chartVersion": "4.3.3", "values": {"hub": {"services": {"other": {"apiToken": "y" * 32}}}}}))


SITE_RULE = {"from": [{"ipBlock": {"cidr": "10.9.0.0/16"}}], "ports": [{"port": 8081, "protocol": "TCP"}]}


def test_a_sites_own_hub_ingress_rules_come_after_the_scrapers():
    """hub.networkPolicy.ingress is not the program's alone: the user's rules are added after the scraper's."""
    values = {"hub": {"networkPolicy": {"ingress": [SITE_RULE]}}}
    parse(with_(jupyterhub={"chartVersion": "4.3.3", "values": values}))  # accepted
    result = run("dev", jupyterhub={**json.loads(stack_values("dev")["jupyterhub"]), "values": values})
    assert hub(result)["networkPolicy"]["ingress"] == [
        {"from": [SCRAPER], "ports": [{"protocol": "TCP", "port": 8081}]}, SITE_RULE]
    # Control: without metrics the user's rules are all there is.
    off = run("dev", metrics={"enabled": False}, jupyterhub={**json.loads(stack_values("dev")["jupyterhub"]), "values": values})
    assert hub(off)["networkPolicy"]["ingress"] == [SITE_RULE]


# --- the network graph -------------------------------------------------------------------------------------------
def test_the_scraper_in_another_namespace_is_admitted_to_each_metrics_port_and_nothing_else():
    result = stack()
    single_node = ingress(result, "single-node-clients")
    tokens = ingress(result, "slurm-token-clients")
    scraped = [(r.get("ports"), name) for name, rules in (("single node", single_node), ("tokens", tokens))
               for r in rules if SCRAPER in r["from"]]
    assert scraped == [([{"port": 9341, "protocol": "TCP"}], "single node"),
                       ([{"port": 8091, "protocol": "TCP"}], "tokens")]
    for policy in ("slurmrestd-clients", "jupyter-ingress"):
        assert not any(SCRAPER in (r.get("from") or []) for r in ingress(result, policy)), policy
    assert hub(result)["networkPolicy"]["ingress"] == [{"from": [SCRAPER], "ports": [{"protocol": "TCP",
                                                                                      "port": 8081}]}]


def test_a_scraper_outside_the_cluster_is_admitted_by_its_addresses():
    result = stack(scraper={"cidr": "10.1.2.3/32"})
    addresses = {"ipBlock": {"cidr": "10.1.2.3/32"}}
    assert {"from": [addresses], "ports": [{"port": 9341, "protocol": "TCP"}]} in ingress(result, "single-node-clients")
    assert hub(result)["networkPolicy"]["ingress"][0]["from"] == [addresses]


def test_without_metrics_no_one_is_admitted_to_a_metrics_port():
    result = stack(enabled=False)
    ports = {p["port"] for policy in result.of_type(NETPOL) for r in policy.plain["spec"]["ingress"]
             for p in r.get("ports") or []}
    assert not ports & {9341, 8091}, ports
    assert "networkPolicy" not in hub(result) and "services" not in hub(result)
    assert not result.of_type(T + "Monitoring") and "metricsTokenSecret" not in result.outputs
    assert "SLURM_TOKEN_METRICS_PORT" not in {e["name"] for e in token_container(result)["env"]}
    # Control: the graph itself draws the edges only for a scraper.
    graph = network.graph(Components(), nodes=2, restd_clients=(), metrics_scraper=network.Peer(cidr="1.2.3.4/32"))
    assert graph.chart_ingress(network.HUB) and not network.graph(Components(), nodes=2, restd_clients=()).chart_ingress(
        network.HUB)


# --- the hub -----------------------------------------------------------------------------------------------------
def test_the_hub_serves_its_metrics_to_the_scrapers_token_alone_which_is_a_secret():
    result = stack()
    values = hub(result)
    expected = result.one("random:index/randomPassword:RandomPassword", "metrics-token").plain["result"]
    assert values["services"] == {"metrics-scraper": {"apiToken": expected}}
    assert values["loadRoles"]["metrics-scraper"]["scopes"] == ["read:metrics"]
    assert values["loadRoles"]["metrics-scraper"]["services"] == ["metrics-scraper"]
    assert values["config"]["JupyterHub"]["authenticate_prometheus"] is True
    assert values["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "8081",
                                     "prometheus.io/path": "/hub/metrics"}
    secret = result.one(SECRET, "metrics-token")
    assert is_secret(secret.inputs["stringData"]) or is_secret(secret.inputs["stringData"]["token"])
    assert secret.plain["stringData"] == {"token": expected}
    assert result.outputs["metricsTokenSecret"][0] == secret.plain["metadata"]["name"] == "dev-metrics-scraper"
    assert result.outputs["metricsTokenKey"][0] == "token"
    assert is_secret(result.one(RELEASE).inputs["values"]), "the Release's values hold the token"
    assert expected not in json.dumps({k: v[0] for k, v in result.outputs.items() if not v[1]})


def test_hub_metrics_values_pass_the_charts_schema():
    from components.chart_values import check_schema, helm_merge
    from tests.helm import chart

    defaults, schema = chart()
    check_schema(helm_merge(defaults, hub_metrics_values("t" * 48, [{"from": [SCRAPER]}], annotate=True)), schema)


# --- discovery ---------------------------------------------------------------------------------------------------
def test_without_the_operator_the_pods_carry_scrape_annotations_and_the_rules_are_a_config_map():
    result = stack()
    assert token_pod_meta(result)["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "8091",
                                                     "prometheus.io/path": "/metrics"}
    container = token_container(result)
    assert {"name": "metrics", "containerPort": 8091, "protocol": "TCP"} in container["ports"]
    assert {"name": "SLURM_TOKEN_METRICS_PORT", "value": "8091"} in container["env"]
    service_ports = [p["port"] for p in result.one("kubernetes:core/v1:Service", "slurm-token-service")
                     .plain["spec"]["ports"]]
    assert service_ports == [8090], "the metrics port is the pod's, not behind the users' Service"
    rules = yaml.safe_load(result.one(CONFIG_MAP, "metrics-rules").plain["data"][RULES_KEY])
    assert rules == render_rules(30, parse(with_()).components)
    assert not result.of_type(POD_MONITOR) and not result.of_type(PROMETHEUS_RULE)


def test_with_the_operator_podmonitors_and_a_prometheus_rule_and_no_annotations():
    result = stack(**OPERATOR, pendingAlertMinutes=12)
    monitors = {r.name: r.plain for r in result.of_type(POD_MONITOR)}
    assert set(monitors) == {"metrics-slurm", "metrics-slurm-token", "metrics-jupyterhub"}
    for m in monitors.values():
        assert m["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert m["metadata"]["namespace"] == result.outputs["namespace"][0]
    slurm, tokens, hub_monitor = (monitors[f"metrics-{n}"]["spec"] for n in ("slurm", "slurm-token", "jupyterhub"))
    assert slurm["selector"]["matchLabels"] == {"app.kubernetes.io/name": "slurm-single-node"}
    assert slurm["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics"}]
    assert tokens["selector"]["matchLabels"] == {"app.kubernetes.io/name": "slurm-token"}
    assert tokens["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics"}]
    # The token service's pods carry the label it selects, and its port name.
    assert token_pod_meta(result)["labels"]["app.kubernetes.io/name"] == "slurm-token"
    assert {"name": "metrics", "containerPort": 8091, "protocol": "TCP"} in token_container(result)["ports"]
    assert hub_monitor["selector"]["matchLabels"] == {"app.kubernetes.io/name": "jupyterhub",
                                                      "app.kubernetes.io/component": "hub"}
    assert hub_monitor["podMetricsEndpoints"] == [{"port": "http", "path": "/hub/metrics", "authorization": {
        "type": "Bearer", "credentials": {"name": "dev-metrics-scraper", "key": "token"}}}]
    rule = result.one(PROMETHEUS_RULE).plain
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == render_rules(12, parse(with_()).components)
    assert not token_pod_meta(result).get("annotations") and "annotations" not in hub(result)
    assert not [c for c in result.of_type(CONFIG_MAP) if c.name == "metrics-rules"]
    assert result.outputs["metricsRules"][0] == "dev-alerts"


def test_an_existing_cluster_gets_no_slurm_podmonitor_nor_slurm_alerts():
    result = run("prod", metrics=OPERATOR)
    assert {r.name for r in result.of_type(POD_MONITOR)} == {"metrics-slurm-token", "metrics-jupyterhub"}
    groups = [g["name"] for g in result.one(PROMETHEUS_RULE).plain["spec"]["groups"]]
    assert groups == ["slurm-cloud-integration.tokens", "slurm-cloud-integration.jupyterhub"]


# --- the rules ---------------------------------------------------------------------------------------------------
def test_the_rules_hold_every_alert_of_the_issue_and_the_pending_threshold_is_the_configs():
    alerts = {r["alert"]: r for g in render_rules(45)["groups"] for r in g["rules"]}
    assert set(alerts) == {"SlurmctldUnreachable", "SlurmMetricsAbsent", "SlurmdbdUnreachable", "SlurmNodesDown",
                           "SlurmNodesDrained", PENDING_ALERT, "SlurmTokenRefusalsSpiking", "SlurmTokenServiceFailing",
                           "JupyterHubSpawnsFailing"}
    assert alerts[PENDING_ALERT]["expr"].endswith("> 45 * 60")
    assert alerts["SlurmNodesDown"]["for"] == "1m", "short, so that a test can wait for it"
    assert (alerts["SlurmMetricsAbsent"]["expr"], alerts["SlurmMetricsAbsent"]["for"]) == (
        "absent(slurm_slurmctld_up)", "1m"), "the exporter's pod gone: no series left for `== 0` to match"
    assert {g["name"] for g in render_rules(45)["groups"]} == set(GROUP_PARTS)
    assert render_rules(45, Components(single_node=False, jupyterhub=False, token_service=False)) == {"groups": []}
