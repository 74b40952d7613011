"""components/user_servers.py: what deleting UserServers removes, how long it may take, what its diff replaces,
how it reaches the cluster and what it says when it cannot.

`remove()` runs against a namespace held in memory (FakeCore, CoreV1Api's list_/delete_namespaced_* methods): a
deleted object goes after a few more lists, as a pod does while its containers stop. tests/e2e/test_08_teardown.py
runs it on the real cluster, inside `pulumi destroy`.
"""

from __future__ import annotations

import functools
import math
import time
from types import SimpleNamespace

import pytest
import yaml
from kubernetes import config
from kubernetes.client.exceptions import ApiException
from kubernetes.config import incluster_config

from components import user_servers
from components.user_servers import GRACE_S, PROVIDER, _Provider, api_client, remove

SPAWNED = {"app.kubernetes.io/managed-by": "kubespawner", "app.kubernetes.io/instance": "jupyterhub"}


class FakeCore:
    """`objects`: (kind, name, labels). A deleted object is listed, terminating, `lingers` more times, then gone
    (math.inf: never, as a pod with a finalizer or on a node that no longer answers). `spawn`: (after this many
    lists, kind, name, labels), an object a hub makes meanwhile. `vanish`: names gone between a list and their
    delete."""

    def __init__(self, objects, lingers: float = 2, spawn=(), vanish=()):
        self.objects = {(kind, name): {"labels": labels, "left": None} for kind, name, labels in objects}
        self.lingers, self.spawn, self.vanish = lingers, list(spawn), set(vanish)
        self.lists, self.deletes = 0, []

    def __getattr__(self, attr):  # list_namespaced_pod, delete_namespaced_secret, ...
        if "_namespaced_" not in attr:
            raise AttributeError(attr)
        verb, kind = attr.split("_namespaced_")
        return functools.partial(getattr(self, f"_{verb}"), kind)

    def _list(self, kind, namespace, label_selector):
        self.lists += 1
        for made in [m for m in self.spawn if m[0] <= self.lists]:
            self.spawn.remove(made)
            self.objects[made[1:3]] = {"labels": made[3], "left": None}
        wanted = dict(part.split("=") for part in label_selector.split(","))
        items = []
        for key, obj in list(self.objects.items()):
            if key[0] != kind or not wanted.items() <= obj["labels"].items():
                continue
            if obj["left"] == 0:
                del self.objects[key]
                continue
            if obj["left"] is not None:
                obj["left"] -= 1
            items.append(SimpleNamespace(metadata=SimpleNamespace(
                name=key[1], deletion_timestamp=None if obj["left"] is None else "2026-12-07T00:00:00Z")))
        return SimpleNamespace(items=items)

    def _delete(self, kind, name, namespace, grace_period_seconds):
        self.deletes.append((kind, name, grace_period_seconds))
        if name in self.vanish:
            del self.objects[(kind, name)]
            raise ApiException(status=404, reason="Not Found")
        self.objects[(kind, name)]["left"] = self.lingers

    def names(self):
        return sorted(f"{kind}/{name}" for kind, name in self.objects)


def servers(*users):
    """KubeSpawner's objects for each user's server: its pod, and the Service and Secret it owns (internal_ssl)."""
    return [(kind, f"jupyter-{u}", SPAWNED) for u in users for kind in ("pod", "service", "secret")]


# The stack's own pod (managed-by pulumi) and the chart's hub (managed-by Helm) stay: Pulumi and Helm delete them.
OTHERS = [("pod", "cluster-jupyter-0", {"app.kubernetes.io/managed-by": "pulumi"}),
          ("pod", "hub-5d9f", {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "jupyterhub"})]


def test_every_server_and_its_objects_go_and_nothing_else():
    core = FakeCore(servers("alice", "bob") + OTHERS)
    remove(core, "slurm", wait_s=5, poll_s=0)
    assert core.names() == ["pod/cluster-jupyter-0", "pod/hub-5d9f"]
    pods = [(n, g) for k, n, g in core.deletes if k == "pod"]
    assert pods == [("jupyter-alice", GRACE_S), ("jupyter-bob", GRACE_S)], "each pod deleted once, with 1 s to stop"


def test_a_server_started_meanwhile_goes_too():
    core = FakeCore(servers("alice"), lingers=3, spawn=[(4, "pod", "jupyter-bob", SPAWNED)])
    remove(core, "slurm", wait_s=5, poll_s=0)
    assert core.names() == [] and ("pod", "jupyter-bob", GRACE_S) in core.deletes


def test_an_object_gone_before_its_delete_is_no_error():
    core = FakeCore(servers("alice"), vanish={"jupyter-alice"})
    remove(core, "slurm", wait_s=5, poll_s=0)
    assert core.names() == []


def test_a_server_that_never_goes_fails_naming_it_within_the_bound():
    core = FakeCore(servers("alice") + OTHERS, lingers=math.inf)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"still in namespace slurm after 0.3 s: pod/jupyter-alice, service/"):
        remove(core, "slurm", wait_s=0.3, poll_s=0.05)
    assert time.monotonic() - t0 < 2
    assert len([d for d in core.deletes if d[1] == "jupyter-alice" and d[0] == "pod"]) == 1, "deleted once, not hammered"
    # Control: the same namespace, its pods stopping, is emptied within the same bound.
    remove(FakeCore(servers("alice") + OTHERS), "slurm", wait_s=0.3, poll_s=0.05)


@pytest.mark.parametrize("change, replaced", [
    ({"namespace": "other"}, ["namespace"]),  # the servers of the old namespace go
    ({"kubeconfig": "/moved/kubeconfig"}, []),  # where the cluster is reached from: no reason to stop the servers
    ({"claim": "other-home"}, []),
    ({PROVIDER: "y"}, []),  # the provider's code: stored by the update, so that a later delete runs the new one
])
def test_only_a_new_namespace_replaces_it_and_any_other_change_updates_it(change, replaced):
    olds = {"namespace": "slurm", "claim": "home-1a2b", "kubeconfig": "/k/admin.kubeconfig", PROVIDER: "x"}
    diff = _Provider().diff("slurm", olds, {**olds, **change})
    assert (diff.changes, diff.replaces) == (True, replaced)
    assert _Provider().diff("slurm", olds, dict(olds)).changes is False  # control: nothing changed


def test_the_diff_sees_the_provider_where_pulumi_dynamic_puts_it():
    """pulumi.dynamic.Resource adds the pickled provider to the inputs under PROVIDER_KEY; its provider host
    (pulumi/dynamic/__main__.py) keeps it in the state and passes both to diff() as olds and news."""
    from pulumi.dynamic import dynamic
    assert dynamic.PROVIDER_KEY == PROVIDER


def kubeconfig(path, *servers: str, current: int = 0):
    """A kubeconfig at `path` with one context per server (c0, c1, ...), c`current` current; returns its path."""
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": f"c{current}",
        "clusters": [{"name": f"k{i}", "cluster": {"server": s}} for i, s in enumerate(servers)],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": f"c{i}", "context": {"cluster": f"k{i}", "user": "u"}} for i in range(len(servers))]}))
    return str(path)


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """No kubeconfig anywhere and not in a pod: $KUBECONFIG unset, an empty home, no service account."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def in_a_pod(monkeypatch, directory):
    """As in a pod: the service's address in the environment, the service account's token and CA at their paths."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (directory / "token").write_text("sa-token")
    (directory / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")  # read only when connecting
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(directory / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(directory / "ca.crt"))


def test_it_reaches_the_cluster_of_the_kubeconfig_and_context_given_and_writes_nothing_back(nowhere, monkeypatch):
    path = kubeconfig(nowhere / "kc", "https://one:6443", "https://two:6443")
    calls = []
    real = config.new_client_from_config
    monkeypatch.setattr(config, "new_client_from_config", lambda **kw: calls.append(kw) or real(**kw))
    assert api_client(path, "c1").configuration.host == "https://two:6443"
    assert api_client(path, None).configuration.host == "https://one:6443"  # control: the current context
    assert {c["persist_config"] for c in calls} == {False}


def test_without_a_kubeconfig_it_takes_kubeconfig_then_the_home_ones_else_the_pods_service_account(nowhere,
                                                                                                  monkeypatch):
    in_a_pod(monkeypatch, nowhere)
    assert api_client(None, None).configuration.host == "https://10.96.0.1:443"
    (nowhere / "home" / ".kube").mkdir(parents=True)
    kubeconfig(nowhere / "home" / ".kube" / "config", "https://home:6443")
    assert api_client(None, None).configuration.host == "https://home:6443"  # control: a kubeconfig found comes first
    monkeypatch.setenv("KUBECONFIG", f"{nowhere}/missing:{kubeconfig(nowhere / 'env', 'https://env:6443')}")
    assert api_client(None, None).configuration.host == "https://env:6443"


def deleting(props: dict) -> str:
    """The message of UserServers' delete with inputs `props` (it must fail)."""
    with pytest.raises(RuntimeError) as e:
        _Provider().delete("slurm", {"namespace": "slurm", "claim": "home", **props})
    return str(e.value)


WAY_OUT = ("kubernetes.kubeconfig", "kubernetes.context", "pulumi state delete", "--show-urns")


@pytest.mark.parametrize("props, why", [
    ({}, "Service host/port is not set"),  # no kubeconfig anywhere, not in a pod
    ({"kubeconfig": "/nonexistent/kubeconfig"}, "No configuration found"),
    ({"context": "gone"}, "context gone is set but no kubeconfig was found"),
])
def test_a_cluster_it_cannot_configure_is_named_with_the_keys_and_the_way_out(nowhere, props, why):
    message = deleting(props)
    assert why in message and all(part in message for part in WAY_OUT), message


def test_a_cluster_that_does_not_answer_is_named_with_the_keys_and_the_way_out(nowhere, monkeypatch):
    path = kubeconfig(nowhere / "kc", "https://127.0.0.1:1")  # nothing listens on port 1
    t0 = time.monotonic()
    message = deleting({"kubeconfig": path})
    assert "Max retries exceeded" in message and path in message and all(part in message for part in WAY_OUT)
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("status, wrapped", [(0, True), (401, True), (403, True), (500, False)])
def test_refused_credentials_or_tls_are_named_with_the_keys_other_api_errors_as_they_are(nowhere, monkeypatch, status,
                                                                                   wrapped):
    def refuse(*_args, **_kwargs):
        raise ApiException(status=status, reason="Refused")
    monkeypatch.setattr(user_servers, "api_client", lambda *_: None)
    monkeypatch.setattr(user_servers, "remove", refuse)
    with pytest.raises((RuntimeError, ApiException)) as e:
        _Provider().delete("slurm", {"namespace": "slurm", "claim": "home"})
    assert isinstance(e.value, RuntimeError) == wrapped  # control: a 500 is not about the configuration
    assert not wrapped or f"HTTP {status} Refused" in str(e.value) and "kubernetes.kubeconfig" in str(e.value)
