"""Monitoring: how a Prometheus finds the stack's metrics, may read the hub's, and gets the stack's alert rules.

Where each part serves its figures is components/metrics.py (ports, scrape_annotations()); who may reach them is
the network graph (components/network.py, config metrics.scraper). Here (config `metrics`):
- the scraper's JupyterHub token (`scraper_token()`): the hub serves /hub/metrics only to a token with the
  `read:metrics` scope (JupyterHub's authenticate_prometheus, on: the proxy routes /hub/* to everyone), so the
  stack makes one, gives it to the hub as the API token of its service `metrics-scraper`
  (jupyterhub.hub_metrics_values()) and keeps it in a Secret of its own (stack output metricsTokenSecret) for Prometheus' bearer token;
- discovery: with the Prometheus Operator (metrics.prometheusOperator), a PodMonitor per part (pod_monitors());
  else the parts' pods carry `prometheus.io/*` annotations (their components add them);
- the alert rules of configs/prometheus/alerts.yaml (render_rules()), as a PrometheusRule or a ConfigMap to mount.

`render_rules()` and `pod_monitors()` are pure and tested directly.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components import distributed, jupyterhub, single_node, token_service
from components.config import Components
from components.labels import labels

RULES_FILE = Path(__file__).resolve().parents[1] / "configs" / "prometheus" / "alerts.yaml"
RULES_KEY = "slurm-cloud-integration.rules.yaml"  # the rules ConfigMap's file
PENDING_ALERT = "SlurmJobsPendingOnResources"  # its threshold, `> MINUTES * 60`, is config metrics.pendingAlertMinutes
_MINUTES = re.compile(r">\s*[0-9]+ \* 60$")
# Which group of the rules file needs which part: a stack without it gets none of that group's alerts (an
# existing cluster has no slurm-exporter of the stack's, so its Slurm alerts would only say the figures are absent).
GROUP_PARTS = {"slurm-cloud-integration.slurm": "slurm", "slurm-cloud-integration.tokens": "token_service",
               "slurm-cloud-integration.jupyterhub": "jupyterhub"}
TOKEN_KEY = "token"  # the key of the scraper token's Secret
EXPORTER_PORT_NAME = "metrics"  # slurm-exporter's container port (EXPORTER_PORT) in the slurm-single-node pod
OPERATOR_API = "monitoring.coreos.com/v1"


def render_rules(pending_minutes: int, parts: Optional[Components] = None) -> dict[str, Any]:
    """The rules file with SlurmJobsPendingOnResources' threshold at `pending_minutes`, and only the groups of
    `parts` (None: every group)."""
    rules = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    groups = [g for g in rules["groups"] if parts is None or getattr(parts, GROUP_PARTS[g["name"]])]
    for group in groups:
        for rule in group["rules"]:
            if rule.get("alert") == PENDING_ALERT:
                assert _MINUTES.search(rule["expr"]), f"{RULES_FILE}: {PENDING_ALERT} lost its '> MINUTES * 60'"
                rule["expr"] = _MINUTES.sub(f"> {int(pending_minutes)} * 60", rule["expr"])
    return {"groups": groups}


def rules_yaml(rules: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(rules), sort_keys=False, width=120)


def pod_monitors(parts: Components, token_secret: pulumi.Input[str]) -> dict[str, dict[str, Any]]:
    """The PodMonitor specs of the parts the stack deploys, by part: each selects the part's pods by their
    app.kubernetes.io labels and scrapes its metrics port by name; the hub's with the scraper token's Secret
    `token_secret` as bearer token."""
    def monitor(app: str, port: str, path: str = "/metrics", component: Optional[str] = None,
                **endpoint: Any) -> dict[str, Any]:
        match = {"app.kubernetes.io/name": app, **({"app.kubernetes.io/component": component} if component else {})}
        return {"selector": {"matchLabels": match},
                "podMetricsEndpoints": [{"port": port, "path": path, **endpoint}]}
    monitors = {}
    if parts.single_node:
        monitors["slurm"] = monitor(single_node.APP, EXPORTER_PORT_NAME)
    if parts.distributed:  # slurm-exporter beside slurmctld
        monitors["slurm"] = monitor(distributed.CONTROLLER_APP, EXPORTER_PORT_NAME)
    if parts.token_service:
        monitors["slurm-token"] = monitor(token_service.APP, token_service.METRICS_PORT_NAME)
    if parts.jupyterhub:
        monitors["jupyterhub"] = monitor(
            jupyterhub.APP, "http", jupyterhub.HUB_METRICS_PATH, jupyterhub.HUB_COMPONENT,
            authorization={"type": "Bearer", "credentials": {"name": token_secret, "key": TOKEN_KEY}})
    return monitors


def scraper_token(name: str, rotation: str, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """A new random hub API token (secret), renewed with config keyRotation."""
    token = random.RandomPassword(name, length=48, special=False, keepers={"rotation": rotation}, opts=opts)
    return pulumi.Output.secret(token.result)


@dataclass
class MonitoringArgs:
    namespace: pulumi.Input[str]
    name: str  # prefix of the Kubernetes names
    parts: Components
    operator: bool  # config metrics.prometheusOperator
    monitor_labels: Mapping[str, str]  # config metrics.monitorLabels
    pending_minutes: int  # config metrics.pendingAlertMinutes
    rotation: str


class Monitoring(pulumi.ComponentResource):
    """Outputs: `token` (secret: the scraper's hub token), `token_secret` (the Secret that holds it under TOKEN_KEY),
    `rules` (the rules' ConfigMap or PrometheusRule name)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.token = scraper_token(f"{name}-token", args.rotation, child)

        def meta(suffix: str, extra: Mapping[str, str] = {}) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=f"{args.name}-{suffix}", namespace=args.namespace,
                                              labels={**labels("metrics", "monitoring"), **extra})
        secret = k8s.core.v1.Secret(f"{name}-token", metadata=meta("metrics-scraper"),
                                    string_data={TOKEN_KEY: self.token}, opts=child)
        self.token_secret = secret.metadata.name
        rules = render_rules(args.pending_minutes, args.parts)
        if args.operator:
            for part, spec in pod_monitors(args.parts, self.token_secret).items():
                k8s.apiextensions.CustomResource(
                    f"{name}-{part}", api_version=OPERATOR_API, kind="PodMonitor",
                    metadata=meta(part, args.monitor_labels), spec=spec, opts=child)
            rule_object = k8s.apiextensions.CustomResource(
                f"{name}-rules", api_version=OPERATOR_API, kind="PrometheusRule",
                metadata=meta("alerts", args.monitor_labels), spec=copy.deepcopy(rules), opts=child)
        else:
            rule_object = k8s.core.v1.ConfigMap(f"{name}-rules", metadata=meta("prometheus-rules"),
                                                data={RULES_KEY: rules_yaml(rules)}, opts=child)
        self.rules = pulumi.Output.all(rule_object.id).apply(  # its name, once it exists
            lambda _: f"{args.name}-{'alerts' if args.operator else 'prometheus-rules'}")
        self.register_outputs({"token": self.token, "token_secret": self.token_secret, "rules": self.rules})
