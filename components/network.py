"""The stack's network graph: one table of edges (who may reach whom, on which ports, and why), `graph()`, from which
every NetworkPolicy of the stack is derived, both ends of each edge: the ingress policy of each part the stack
deploys (`Graph.ingress()`) and the egress rules of JupyterHub's user pods, the one source whose egress is
restricted (`Graph.egress()`: the chart's singleuser.networkPolicy.egress, whose defaults block private addresses).
So an edge cannot be admitted on one side and forgotten on the other.

The metrics scraper (config metrics.scraper, `scraper()`) is the one peer that may live in another namespace (its pods
by namespace and labels) or outside the cluster (its addresses); it is admitted to each metrics port, the chart's hub
included (`Graph.chart_ingress()`: the chart's hub.networkPolicy.ingress), and to nothing else.

A new edge is one row of the table; a new part is a Peer here, its entry in `runs` and its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi_kubernetes as k8s

from components import distributed, jupyter, jupyterhub, restd, single_node, token_service
from components.config import Components
from components.config.table import Metrics
from components.labels import selector
from components.metrics import EXPORTER_PORT, TOKEN_METRICS_PORT
from components.slurm_files import SLURMCTLD_PORT, SLURMDBD_PORT, SLURMRESTD_PORT

NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
NAMESPACE_NAME = "kubernetes.io/metadata.name"  # the label Kubernetes (1.22+) gives every namespace: its name


@dataclass(frozen=True)
class Peer:
    """One end of an edge: the pods whose app.kubernetes.io/name is `app` (and, where an app's pods differ, whose
    app.kubernetes.io/component is `component`), or the addresses of `cidr`, or the pods with `labels` in
    `namespace` (another namespace's); none: anyone."""
    app: Optional[str] = None
    component: Optional[str] = None
    cidr: Optional[str] = None
    stack_only: bool = False  # only the stack makes these pods: no edge from them unless it deploys them
    namespace: Optional[str] = None  # with `labels`
    labels: tuple[tuple[str, str], ...] = ()  # (name, value) pairs, all of which the pods carry


ANYONE = Peer()
SINGLE_NODE = Peer(single_node.APP, stack_only=True)
RESTD = Peer(restd.APP)
# The distributed deployment's roles (components/distributed.py).
CONTROLLER = Peer(distributed.CONTROLLER_APP, stack_only=True)
ACCOUNTING = Peer(distributed.ACCOUNTING_APP, stack_only=True)
NODES = Peer(distributed.NODE_APP, stack_only=True)
LAB = Peer(jupyter.APP)
TOKENS = Peer(token_service.APP)
# The chart's hub, proxy and image pullers carry its user pods' app.kubernetes.io/name: of its pods, only the user
# pods are clients of Slurm, slurmrestd and the token service.
HUB_USERS = Peer(jupyterhub.APP, jupyterhub.USER_POD_COMPONENT)
SITE = Peer(cidr="0.0.0.0/0")  # an existing cluster's daemons: their addresses are not known here, their ports are
# The chart's hub (its pod's modern labels, z2jh 4.3.3 _helpers.tpl matchLabelsLegacyAndModern): a target whose
# policy is the chart's, so its edges become chart values (Graph.chart_ingress), not a NetworkPolicy of the stack.
HUB = Peer(jupyterhub.APP, jupyterhub.HUB_COMPONENT)


def scraper(metrics: Metrics) -> Optional[Peer]:
    """The metrics scraper of config `metrics` (None when metrics are off): its addresses, or its pods."""
    if not metrics.enabled:
        return None
    if metrics.scraper.cidr:
        return Peer(cidr=metrics.scraper.cidr)
    return Peer(namespace=metrics.scraper.namespace, labels=tuple(sorted(metrics.scraper.pod_labels.items())))


@dataclass(frozen=True)
class Edge:
    source: Peer
    target: Peer
    ports: tuple[int, ...]  # TCP; (): every port
    why: str


def graph(parts: Components, *, nodes: int, restd_clients: Sequence[str],
          site_ports: Sequence[int] = (), metrics_scraper: Optional[Peer] = None) -> Graph:
    """The edges of a stack that deploys `parts`, with `nodes` slurmd nodes in the single node, slurmrestd admitting
    the apps `restd_clients` (config restd.allowedClients), an existing cluster's slurmctld and slurmdbd ports
    `site_ports` (none: no existing cluster) and the metrics scraper `metrics_scraper` (scraper(); none: no metrics).

    An edge is drawn when its target runs (the stack deploys it, or the existing cluster exists) and its source may
    run: a client is admitted whether or not this stack deploys it (a hub run beside the stack, as tests/e2e's, or a
    portal named in restd.allowedClients), a pod only the stack makes only while it does."""
    slurm, every_node_port = (SLURMCTLD_PORT, SLURMDBD_PORT), tuple(single_node.ports(nodes).values())
    table = (
        #    from         to           ports (TCP; (): all)   why
        Edge(RESTD,       SINGLE_NODE, slurm,                 "slurmrestd's requests to slurmctld and slurmdbd"),
        Edge(LAB,         SINGLE_NODE, slurm,                 "JupyterLab's Slurm commands (munge)"),
        Edge(HUB_USERS,   SINGLE_NODE, slurm,                 "the hub users' Slurm commands (a JWT: no srun)"),
        Edge(LAB,         SINGLE_NODE, every_node_port,       "srun from JupyterLab: tasks start on the slurmds"),
        Edge(HUB_USERS,   SITE,        tuple(site_ports),     "the hub users' Slurm commands to the existing cluster"),
        # The distributed deployment: each role its own pods.
        Edge(CONTROLLER,  ACCOUNTING,  (SLURMDBD_PORT,),      "slurmctld's accounting (and slurm-exporter's sdiag)"),
        Edge(NODES,       CONTROLLER,  (SLURMCTLD_PORT,),     "slurmd registers and fetches its files (configless); "
                                                              "users' Slurm commands in jobs"),
        Edge(ACCOUNTING,  CONTROLLER,  (SLURMCTLD_PORT,),     "slurmdbd's updates (associations added or removed "
                                                              "after slurmctld started)"),
        Edge(NODES,       ACCOUNTING,  (SLURMDBD_PORT,),      "sacct and sacctmgr in users' jobs"),
        Edge(CONTROLLER,  NODES,       (),                    "slurmctld's pings and launches (slurmd), its answers to "
                                                              "srun run in a node pod (any port)"),
        Edge(NODES,       NODES,       (),                    "srun's step launch fan-out and its tasks' I/O and "
                                                              "connections back to srun (any port)"),
        *(Edge(client, CONTROLLER, (SLURMCTLD_PORT,), why) for client, why in (
            (RESTD, "slurmrestd's requests"), (LAB, "JupyterLab's Slurm commands (munge)"),
            (HUB_USERS, "the hub users' Slurm commands (a JWT: no srun)"))),
        *(Edge(client, ACCOUNTING, (SLURMDBD_PORT,), why) for client, why in (
            (RESTD, "slurmrestd's accounting requests"), (LAB, "JupyterLab's sacct"),
            (HUB_USERS, "the hub users' sacct (a JWT)"))),
        Edge(LAB,         NODES,       (distributed.SLURMD_PORT,), "srun from JupyterLab: tasks start on the slurmds"),
        Edge(CONTROLLER,  LAB,         (),                    "slurmctld's answers to srun in JupyterLab"),
        Edge(NODES,       LAB,         (),                    "srun's step connections back to JupyterLab"),
        *(Edge(client(app), RESTD,     (SLURMRESTD_PORT,),    "config restd.allowedClients") for app in restd_clients),
        Edge(ANYONE,      LAB,         (jupyter.PORT,),       "JupyterLab (its token protects it)"),
        Edge(SINGLE_NODE, LAB,         (),                    "srun's step connections back to JupyterLab"),
        Edge(HUB_USERS,   TOKENS,      (token_service.PORT,), "each user's server asks for its Slurm token"),
        *((Edge(metrics_scraper, SINGLE_NODE, (EXPORTER_PORT,),      "Slurm's figures (slurm-exporter)"),
           Edge(metrics_scraper, CONTROLLER,  (EXPORTER_PORT,),      "Slurm's figures (slurm-exporter beside slurmctld)"),
           Edge(metrics_scraper, TOKENS,      (TOKEN_METRICS_PORT,), "the token service's figures"),
           Edge(metrics_scraper, HUB,         (jupyterhub.HUB_PORT,), "the hub's /hub/metrics (a read:metrics token)"))
          if metrics_scraper else ()),
    )
    runs = {SINGLE_NODE: parts.single_node, CONTROLLER: parts.distributed, ACCOUNTING: parts.distributed,
            NODES: parts.distributed, RESTD: parts.restd, LAB: parts.jupyter, TOKENS: parts.token_service,
            HUB_USERS: parts.jupyterhub, HUB: parts.jupyterhub, SITE: bool(site_ports)}
    return Graph(tuple(dict.fromkeys(
        e for e in table if runs.get(e.target, False) and (runs.get(e.source, False) or not e.source.stack_only))))


def client(app: str) -> Peer:
    """The peer an app.kubernetes.io/name of restd.allowedClients names: the stack's own client of that name (the
    hub's: its user pods), else that app's pods."""
    return {peer.app: peer for peer in (RESTD, LAB, HUB_USERS)}.get(app, Peer(app))


@dataclass(frozen=True)
class Graph:
    edges: tuple[Edge, ...]

    def ingress(self, target: Peer) -> k8s.networking.v1.NetworkPolicySpecArgs:
        """The NetworkPolicy spec of `target`'s pods: it admits what the edges into them allow, and nothing else
        (no edge: nothing). One rule per port list, its sources as ingress_rule() groups them."""
        sources: dict[tuple[int, ...], list[Peer]] = {}
        for edge in self.edges:
            if edge.target == target:
                sources.setdefault(edge.ports, []).append(edge.source)
        return k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(target.app)),
            policy_types=["Ingress"],
            ingress=[ingress_rule(ports, peers) for ports, peers in sources.items()],
        )

    def chart_ingress(self, target: Peer) -> list[dict]:
        """Ingress rules of `target`'s pods as a chart's values take them (JupyterHub's hub.networkPolicy.ingress,
        which the chart adds to its own rules): one per edge into them, in the table's order."""
        return [{"from": [chart_peer(edge.source)], **({"ports": _tcp(edge.ports)} if edge.ports else {})}
                for edge in self.edges if edge.target == target]

    def egress(self, source: Peer) -> list[dict]:
        """The egress rules of `source`'s pods, one per edge out of them, in the table's order, as a chart's values
        take them (JupyterHub's singleuser.networkPolicy.egress)."""
        return [{"to": [egress_peer(edge.target)], **({"ports": _tcp(edge.ports)} if edge.ports else {})}
                for edge in self.edges if edge.source == source]


def ingress_rule(ports: Sequence[int], sources: Sequence[Peer]) -> k8s.networking.v1.NetworkPolicyIngressRuleArgs:
    """Admit TCP `ports` (all if empty) from `sources` (anyone if one is ANYONE): the apps of the sources without a
    component in one pod selector, each source with a component in its own, then each address range."""
    peers = None
    if ANYONE not in sources:
        plain = [s.app for s in sources if s.app and not s.component and not s.namespace]
        peers = ([_pods([(NAME, plain)])] if plain else []) + [
            _pods([(NAME, [s.app]), (COMPONENT, [s.component])]) for s in sources if s.app and s.component] + [
            k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=s.cidr))
            for s in sources if s.cidr] + [
            k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={NAMESPACE_NAME: s.namespace}),
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=dict(s.labels)))
            for s in sources if s.namespace]
    return k8s.networking.v1.NetworkPolicyIngressRuleArgs(
        from_=peers, ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=p, protocol="TCP") for p in ports] or None)


def _pods(labels: Sequence[tuple[str, Sequence[str]]]) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=k8s.meta.v1.LabelSelectorArgs(match_expressions=[
        k8s.meta.v1.LabelSelectorRequirementArgs(key=key, operator="In", values=list(values))
        for key, values in labels]))


def chart_peer(source: Peer) -> dict:
    """A `from` peer of a chart's ingress rule, as ingress_rule() makes it for a policy of the stack."""
    if source.cidr:
        return {"ipBlock": {"cidr": source.cidr}}
    if source.namespace:
        return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME: source.namespace}},
                "podSelector": {"matchLabels": dict(source.labels)}}
    labels = {NAME: source.app, **({COMPONENT: source.component} if source.component else {})}
    return {"podSelector": {"matchLabels": labels}}


def egress_peer(target: Peer) -> dict:
    """A `to` peer of an egress rule: the target's pods by their labels, or its addresses."""
    if target.cidr:
        return {"ipBlock": {"cidr": target.cidr}}
    labels = {NAME: target.app, **({COMPONENT: target.component} if target.component else {})}
    return {"podSelector": {"matchLabels": labels}}


def _tcp(ports: Sequence[int]) -> list[dict]:
    return [{"protocol": "TCP", "port": p} for p in ports]
