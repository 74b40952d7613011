"""UserServers: a JupyterHub's user servers in the stack's namespace go before the claims they mount.

KubeSpawner makes each user's server pod (with `internal_ssl` or `services_enabled` also a Secret and a Service that
the pod owns) through the Kubernetes API: neither Helm nor Pulumi knows them, and a hub leaves them running when it
goes (z2jh 4.3.3 files/hub/jupyterhub_config.py: cleanup_servers False). A running one keeps the shared home claim
(kubernetes.io/pvc-protection), so Pulumi's delete of the claim would wait out its 10 minutes and fail.

This Pulumi dynamic resource makes nothing. Deleting it deletes every pod, Service and Secret labelled
`app.kubernetes.io/managed-by: kubespawner` in the namespace (SELECTOR: the chart sets KubeSpawner.common_labels to
its own labels plus this one, as KubeSpawner's default has it, z2jh 4.3.3 files/hub/jupyterhub_config.py; the program
refuses a user's hub.config.KubeSpawner.common_labels, which would replace them, components/chart_values.py OWNED),
each pod with GRACE_S to stop whatever it is doing, and waits until they are gone, at most WAIT_S. The namespace
holds one hub, the chart's Release or one run beside the stack (the token service reaches either as `hub`). Its input
`claim` orders it before the home claim, and the Release depends on it, so the hub is gone first and starts no server
again. It reaches the cluster as the Kubernetes provider does (api_client()).
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

import pulumi
import pulumi.dynamic as dynamic
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

SELECTOR = "app.kubernetes.io/managed-by=kubespawner"
KINDS = ("pod", "service", "secret")  # what KubeSpawner makes for a server with a static home (kubespawner _start)
GRACE_S = 1  # KubeSpawner's delete_grace_period: what a server's own stop gives it
WAIT_S = 120
POLL_S = 1.0
PROVIDER = "__provider"  # where pulumi.dynamic keeps the pickled provider in the state and in a diff's olds and news


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


def api_client(kubeconfig: Optional[str], context: Optional[str]) -> client.ApiClient:
    """A client of the cluster as the Kubernetes provider reaches it: the file `kubeconfig` (config
    kubernetes.kubeconfig), else $KUBECONFIG (paths joined by ':') or ~/.kube/config, in its context `context`
    (config kubernetes.context; None: the current one); with no kubeconfig found and no context, the service account
    of the pod it runs in (in-cluster). Nothing is written back to a kubeconfig (a refreshed token stays in memory).
    Raises config.ConfigException when none of them works."""
    found = kubeconfig or os.pathsep.join(p for p in (os.environ.get("KUBECONFIG") or "~/.kube/config").split(
        os.pathsep) if p and os.path.exists(os.path.expanduser(p)))
    if found:
        return config.new_client_from_config(config_file=found, context=context, persist_config=False)
    if context:
        raise config.ConfigException(f"context {context} is set but no kubeconfig was found")
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as e:
        why = str(e).rstrip(".")
        raise config.ConfigException(f"no kubeconfig found ($KUBECONFIG, ~/.kube/config) and not in a pod: {why}") from e
    return client.ApiClient(configuration)


def unreachable(props: dict, error: Exception) -> str:
    """What to do when `error` kept UserServers (inputs `props`) from the cluster."""
    why = f"HTTP {error.status} {error.reason}" if isinstance(error, ApiException) else str(error).rstrip(".")
    return (f"cannot remove JupyterHub's user servers in namespace {props['namespace']}: the cluster is not reachable "
            f"as configured ({why}). It is reached as the Kubernetes provider reaches it: config kubernetes.kubeconfig "
            f"({props.get('kubeconfig') or 'unset: $KUBECONFIG, ~/.kube/config, else in-cluster'}) and "
            f"kubernetes.context ({props.get('context') or 'unset: the current one'}); fix them and run `pulumi up` "
            "first (a delete uses the values stored at the last update). If the cluster is gone, so are the servers: "
            "take this resource out of the state with `pulumi state delete URN` (`pulumi stack --show-urns | grep "
            "UserServers` shows it), then run again.")


class _Provider(dynamic.ResourceProvider):
    """Inputs: namespace, claim, kubeconfig and context (the Kubernetes provider's; absent: its defaults)."""

    def create(self, props: dict) -> dynamic.CreateResult:
        return dynamic.CreateResult(props["namespace"], props)

    def diff(self, _id: str, olds: dict, news: dict) -> dynamic.DiffResult:
        """A new namespace replaces it (the old namespace's servers go); any other change, the pickled provider
        (PROVIDER) included, is an update, so that the state keeps the provider that a later delete runs."""
        changed = [k for k in ("namespace", "claim", "kubeconfig", "context", PROVIDER) if olds.get(k) != news.get(k)]
        return dynamic.DiffResult(changes=bool(changed), replaces=[k for k in changed if k == "namespace"])

    def update(self, _id: str, _olds: dict, news: dict) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(news)

    def delete(self, _id: str, props: dict) -> None:
        try:
            core = client.CoreV1Api(api_client(props.get("kubeconfig"), props.get("context")))
            remove(core, props["namespace"])
        except ApiException as e:
            if e.status not in (0, 401, 403):  # 0: the client's TLS failed (kubernetes.client.rest)
                raise
            raise RuntimeError(unreachable(props, e)) from e
        except (config.ConfigException, urllib3.exceptions.HTTPError, OSError) as e:
            raise RuntimeError(unreachable(props, e)) from e


class UserServers(dynamic.Resource, module="jupyterhub", name="UserServers"):
    def __init__(self, name: str, namespace: pulumi.Input[str], claim: pulumi.Input[str],
                 kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(_Provider(), name, {"namespace": namespace, "claim": claim, "kubeconfig": kubeconfig,
                                             "context": context}, opts)
