"""The egress of JupyterHub's user pods as the program derives it: from its network graph (components/network.py
graph(), called as components/stack.py calls it), for the unit tests and the end-to-end tests' hub
(tests/e2e/hub_deployment.py), so that both check what the program computes."""

from __future__ import annotations

from typing import Sequence

from components import network
from components.config import Components
from components.config.table import Metrics
from components.jupyterhub import APP as HUB_APP


def hub_users_graph(*, restd: bool, site_ports: Sequence[int] = (), distributed: bool = False) -> network.Graph:
    """The network graph of a stack of the single node, of the distributed deployment (`distributed`) or of an
    existing cluster's `site_ports`, with slurmrestd (admitting the hub's user pods, if `restd`), the token service
    and JupyterHub."""
    parts = Components(single_node=not (site_ports or distributed), distributed=distributed)
    return network.graph(parts, nodes=1, restd_clients=(HUB_APP,) if restd else (), site_ports=site_ports)


def hub_users_egress(*, restd: bool, site_ports: Sequence[int] = (), distributed: bool = False) -> list[dict]:
    """singleuser.networkPolicy.egress as the program computes it for that stack (hub_users_graph())."""
    return hub_users_graph(restd=restd, site_ports=site_ports, distributed=distributed).egress(network.HUB_USERS)


def hub_scraper_ingress() -> list[dict]:
    """hub.networkPolicy.ingress as the program computes it with config metrics' defaults (the scraper's pods in
    `monitoring`), for that stack: the scraper to the hub's port."""
    graph = network.graph(Components(single_node=True), nodes=1, restd_clients=(),
                          metrics_scraper=network.scraper(Metrics()))
    return graph.chart_ingress(network.HUB)
