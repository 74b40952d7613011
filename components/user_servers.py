"""UserServers: a JupyterHub's user servers in the stack's namespace go before the claims they mount.

KubeSpawner makes each user's server pod (with `internal_ssl` or `services_enabled` also a Secret and a Service that
the pod owns) through the Kubernetes API: neither Helm nor Pulumi knows them, and a hub leaves them running when it
goes (z2jh 4.3.3 files/hub/jupyterhub_config.py: cleanup_servers False). A running one keeps the shared home claim
(kubernetes.io/pvc-protection), so Pulumi's delete of the claim would wait out its 10 minutes and fail.

This Pulumi dynamic resource makes nothing. Deleting it deletes every pod, Service and Secret labelled
`app.kubernetes.io/managed-by: kubespawner` in the namespace (kubespawner 7.0.0 common_labels, which the chart keeps),
each pod with GRACE_S to stop whatever it is doing, and waits until they are gone, at most WAIT_S. The namespace
holds one hub, the chart's Release or one run beside the stack (the token service reaches either as `hub`). Its input
`claim` orders it before the home claim, and the Release depends on it, so the hub is gone first and starts no server
again.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import pulumi
import pulumi.dynamic as dynamic
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

SELECTOR = "app.kubernetes.io/managed-by=kubespawner"
KINDS = ("pod", "service", "secret")  # what KubeSpawner makes for a server with a static home (kubespawner _start)
GRACE_S = 1  # KubeSpawner's delete_grace_period: what a server's own stop gives it
WAIT_S = 120
POLL_S = 1.0


def remove(core: Any, namespace: str, wait_s: float = WAIT_S, poll_s: float = POLL_S) -> None:
    """Delete KubeSpawner's objects in `namespace` (`core`: a kubernetes CoreV1Api) and wait until none is left,
    deleting any that appears meanwhile; RuntimeError naming them after `wait_s`."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for kind in KINDS:
            for obj in getattr(core, f"list_namespaced_{kind}")(namespace, label_selector=SELECTOR).items:
                left.append(f"{kind}/{obj.metadata.name}")
                if obj.metadata.deletion_timestamp is None:
                    try:
                        getattr(core, f"delete_namespaced_{kind}")(obj.metadata.name, namespace,
                                                                   grace_period_seconds=GRACE_S)
                    except ApiException as e:
                        if e.status != 404:
                            raise
        if not left:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"JupyterHub's user servers are still in namespace {namespace} after {wait_s:g} s: "
                               f"{', '.join(left)} (a pod on a node that no longer answers stays until `kubectl -n "
                               f"{namespace} delete pod NAME --force`)")
        time.sleep(poll_s)


class _Provider(dynamic.ResourceProvider):
    """Inputs: namespace, claim, kubeconfig and context (the Kubernetes provider's; absent: its defaults)."""

    def create(self, props: dict) -> dynamic.CreateResult:
        return dynamic.CreateResult(props["namespace"], props)

    def diff(self, _id: str, olds: dict, news: dict) -> dynamic.DiffResult:
        changed = [k for k in ("namespace", "claim", "kubeconfig", "context") if olds.get(k) != news.get(k)]
        return dynamic.DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "namespace"])

    def update(self, _id: str, _olds: dict, news: dict) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(news)

    def delete(self, _id: str, props: dict) -> None:
        api = config.new_client_from_config(config_file=props.get("kubeconfig"), context=props.get("context"))
        remove(client.CoreV1Api(api), props["namespace"])


class UserServers(dynamic.Resource, module="jupyterhub", name="UserServers"):
    def __init__(self, name: str, namespace: pulumi.Input[str], claim: pulumi.Input[str],
                 kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(_Provider(), name, {"namespace": namespace, "claim": claim, "kubeconfig": kubeconfig,
                                             "context": context}, opts)
