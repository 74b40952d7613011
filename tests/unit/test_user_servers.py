"""components/user_servers.py: what deleting UserServers removes, how long it may take, and what its diff replaces.

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
from kubernetes.client.exceptions import ApiException

from components.user_servers import GRACE_S, _Provider, remove

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
])
def test_only_a_new_namespace_replaces_it(change, replaced):
    olds = {"namespace": "slurm", "claim": "home-1a2b", "kubeconfig": "/k/admin.kubeconfig", "__provider": "x"}
    diff = _Provider().diff("slurm", olds, {**olds, **change, "__provider": "y"})
    assert (diff.changes, diff.replaces) == (True, replaced)
    assert _Provider().diff("slurm", olds, {**olds, "__provider": "y"}).changes is False  # control: nothing changed
