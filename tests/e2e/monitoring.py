"""A real Prometheus for the end-to-end tests, deployed as a cluster's would be: Debian's `prometheus` (tests/e2e/
prometheus/Dockerfile) in the namespace `monitoring` with the labels of config metrics.scraper's defaults, scraping
with the README's plain-Prometheus scrape job, the hub's scraper token the stack keeps (output metricsTokenSecret)
and the stack's alert rules (output metricsRules) copied into its namespace, as the README tells an operator to.
`Prometheus` queries its HTTP API.

Debian builds Prometheus without Kubernetes service discovery (2.42: "field kubernetes_sd_configs not found"), so
the job's `kubernetes_sd_configs` is replaced by `static_configs` holding what that discovery would give (role
pod): each pod of the stack's namespace at its address, with the `__meta_kubernetes_*` labels the README's
relabeling reads (its annotations, namespace and name), taken from the API when Prometheus starts. The relabeling,
the token and everything after it are the README's, unchanged.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests
import yaml

from components.config.table import Scraper
from components.monitoring import RULES_KEY, TOKEN_KEY
from tests.e2e.deployment import Deployment, stack_output
from tests.e2e.hub_deployment import push, registry_name
from tests.e2e.kube import Kube
from tests.images.slurm_containers import podman_build, wait_until

DOCKERFILE_DIR = Path(__file__).resolve().parent / "prometheus"
README = Path(__file__).resolve().parents[2] / "README.md"
NAMESPACE = Scraper().namespace  # config metrics.scraper's defaults, which the cluster stack keeps
POD_LABELS = Scraper().pod_labels
API_PORT = 9090
INTERVAL_S = 2  # scrape and rule evaluation: short, so the tests wait little


def scrape_job(pods: list[dict]) -> dict:
    """The README's scrape job for a plain Prometheus (its yaml block under "Discovery"), its Kubernetes discovery
    replaced by the targets it would find among `pods` (the stack namespace's pod objects)."""
    block = re.search(r"```yaml\n(scrape_configs:\n.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert block, "README: the plain Prometheus scrape job is gone"
    (job,) = yaml.safe_load(block.group(1))["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod", "namespaces": {"names": ["slurm"]}}], job
    job["static_configs"] = [{"targets": [pod["status"]["podIP"]], "labels": discovered_labels(pod)}
                             for pod in pods if pod["status"].get("podIP")]
    return job


def discovered_labels(pod: dict) -> dict[str, str]:
    """The meta labels of Prometheus' Kubernetes discovery (role pod) that the README's relabeling reads."""
    meta = pod["metadata"]
    return {"__meta_kubernetes_namespace": meta["namespace"], "__meta_kubernetes_pod_name": meta["name"],
            **{"__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key): value
               for key, value in (meta.get("annotations") or {}).items()}}


def prometheus_config(pods: list[dict]) -> dict:
    return {"global": {"scrape_interval": f"{INTERVAL_S}s", "evaluation_interval": f"{INTERVAL_S}s"},
            "rule_files": [f"/etc/prometheus/rules/{RULES_KEY}"], "scrape_configs": [scrape_job(pods)]}


def objects(d: Deployment, image: str, token: str, rules: str) -> list[dict]:
    """Namespace, the configuration (the stack's pods now), token and rules, the Prometheus Deployment, and a
    stranger: a pod of the same image in the same namespace without the scraper's labels."""
    def meta(name: str, **extra) -> dict:
        return {"name": name, "namespace": NAMESPACE, **extra}
    labels = {**POD_LABELS, "app.kubernetes.io/instance": "e2e"}
    mounts = [{"name": "config", "mountPath": "/etc/prometheus/config"},
              {"name": "rules", "mountPath": "/etc/prometheus/rules"},
              {"name": "token", "mountPath": "/etc/prometheus/slurm-token"},
              {"name": "data", "mountPath": "/prometheus"}]
    volumes = [{"name": "config", "configMap": {"name": "prometheus"}},
               {"name": "rules", "configMap": {"name": "slurm-rules"}},
               {"name": "token", "secret": {"secretName": "slurm-token"}},
               {"name": "data", "emptyDir": {}}]
    security = {"runAsNonRoot": True, "runAsUser": 65534, "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]}}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("prometheus"),
         "data": {"prometheus.yml": yaml.safe_dump(prometheus_config(d.kube.of_kind("pod")), sort_keys=False)}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("slurm-rules"), "data": {RULES_KEY: rules}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta("slurm-token"), "stringData": {TOKEN_KEY: token}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("prometheus"),
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "automountServiceAccountToken": False,
                      "containers": [{
                          "name": "prometheus", "image": image, "securityContext": security,
                          "args": ["--config.file=/etc/prometheus/config/prometheus.yml",
                                   "--storage.tsdb.path=/prometheus", f"--web.listen-address=:{API_PORT}"],
                          "ports": [{"name": "http", "containerPort": API_PORT}],
                          "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "http"}, "periodSeconds": 1},
                          "volumeMounts": mounts}],
                      "volumes": volumes}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta("stranger", labels={"app.kubernetes.io/name": "other"}),
         "spec": {"containers": [{"name": "stranger", "image": image, "command": ["sleep", "infinity"],
                                  "securityContext": security}]}},
    ]


class Prometheus:
    """The HTTP API of the running Prometheus (its pod's address, which this machine routes)."""

    def __init__(self, url: str, kube: Kube):
        self.url, self.kube = url, kube

    def get(self, path: str, **params) -> dict:
        r = requests.get(self.url + path, params=params, timeout=10)
        r.raise_for_status()
        body = r.json()
        assert body["status"] == "success", body
        return body["data"]

    def targets(self) -> list[dict]:
        return self.get("/api/v1/targets", state="active")["activeTargets"]

    def value(self, query: str) -> float | None:
        """The query's single sample now (None: no sample)."""
        result = self.get("/api/v1/query", query=query)["result"]
        assert len(result) <= 1, f"{query}: {len(result)} series, expected one: {result}"
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict]:
        return self.get("/api/v1/alerts")["alerts"]

    def firing(self, name: str) -> bool:
        return any(a["labels"].get("alertname") == name and a["state"] == "firing" for a in self.alerts())

    def wait_scraped(self, timeout: float = 30) -> None:
        """Until every target was scraped after now (each `up` sample newer than this call), and was up."""
        start = time.time()  # Prometheus runs on this machine: one clock
        def fresh():
            ups = self.get("/api/v1/query", query="timestamp(up) and up == 1")["result"]
            return len(ups) == len(self.targets()) > 0 and all(float(u["value"][1]) > start for u in ups)
        wait_until(fresh, timeout, "Prometheus to scrape every target again, all up", interval=0.5)


@contextmanager
def running_prometheus(d: Deployment) -> Iterator[Prometheus]:
    """Builds and pushes the image, deploys the objects, yields the API once Prometheus is ready; removes it all."""
    tag = registry_name("prometheus")
    podman_build(str(DOCKERFILE_DIR), tag, ca_certs=False)
    image = push(tag)
    token = d.kube.secret_data(stack_output("metricsTokenSecret"))[stack_output("metricsTokenKey")].decode()
    rules = d.kube.get("configmap", stack_output("metricsRules"))["data"][RULES_KEY]
    kube = Kube(NAMESPACE)
    objs = objects(d, image, token, rules)
    try:
        for obj in objs:
            kube.create(obj)
        kube.kubectl("rollout", "status", "deployment/prometheus", "--timeout=180s", timeout=200)
        (pod,) = [p for p in kube.pods if p.labels.get("app.kubernetes.io/instance") == "e2e"]
        yield Prometheus(f"http://{pod.ip}:{API_PORT}", kube)
    finally:
        kube.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=120s", check=False, timeout=150)
