"""Metrics: where each part of the stack serves its Prometheus figures, and how a scraper finds them.

Ports (TCP, each admitted to the metrics scraper only, components/network.py):
- `EXPORTER_PORT`: slurm-exporter, a container beside the Slurm daemons (slurm-single-node), GET /metrics.
- `TOKEN_METRICS_PORT`: the token service's prometheus_client figures, GET /metrics (not its /token port, which
  every hub user reaches).
The hub serves its own at /hub/metrics on the chart's hub Service (JupyterHub's `read:metrics` scope).
"""

from __future__ import annotations

EXPORTER_PORT = 9341
TOKEN_METRICS_PORT = 8091


def scrape_annotations(port: int, path: str = "/metrics") -> dict[str, str]:
    """The `prometheus.io/*` pod annotations that Prometheus' Kubernetes pod discovery examples relabel on (the
    convention of prometheus/documentation/examples/prometheus-kubernetes.yml): scrape `path` on TCP `port`."""
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": path}
