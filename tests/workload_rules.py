"""The rules every workload (Deployment, StatefulSet) of this program follows, checked on the object as the
Kubernetes API has it (camelCase fields): the unit tests' mock inputs and the rendered YAML alike."""

from __future__ import annotations

import re

APP_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of",
              "app.kubernetes.io/managed-by")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
KEY_MODE = 0o400
# Containers beside a workload's own whose failure must not make the pod NotReady (no readiness probe): the
# monitoring of Slurm (components/single_node.py exporter_container()).
NOT_READINESS_GATED = {"slurm-exporter"}


def check_workload(workload: dict) -> None:
    """Labels, a selector that selects its own pods, no service account token, images by digest, probes, a failure's
    log tail in the pod's status, resources, a dropped-capabilities security context, and keys mounted read-only with
    mode 0400.
    Raises AssertionError naming the workload and the broken rule."""
    name = workload["metadata"]["name"]
    template = workload["spec"]["template"]
    for labels in (workload["metadata"]["labels"], template["metadata"]["labels"]):
        assert all(k in labels for k in APP_LABELS), f"{name}: labels {labels}"
    selector = workload["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items(), f"{name}: selector misses its pods"
    spec = template["spec"]
    assert spec["automountServiceAccountToken"] is False, f"{name}: service account token mounted"
    keys = next(v for v in spec["volumes"] if v["name"] == "slurm-keys")["projected"]
    assert keys["defaultMode"] == KEY_MODE and all(
        i["mode"] == KEY_MODE for s in keys["sources"] for i in s["secret"]["items"]), f"{name}: key modes"
    for c in spec["containers"]:
        assert DIGEST.search(c["image"]), f"{name}: image {c['image']} is not pinned by digest"
        assert c.get("livenessProbe"), f"{name}/{c['name']}: liveness probe"
        assert c.get("readinessProbe") or c["name"] in NOT_READINESS_GATED, f"{name}/{c['name']}: readiness probe"
        assert c.get("terminationMessagePolicy") == "FallbackToLogsOnError", \
            f"{name}/{c['name']}: a failed container's log tail must reach its status (components/pods.py container())"
        assert c["resources"]["requests"] and c["resources"]["limits"], f"{name}/{c['name']}: resources"
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, f"{name}/{c['name']}: privilege"
        assert sc["capabilities"]["drop"] == ["ALL"], f"{name}/{c['name']}: capabilities"
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, f"{name}/{c['name']}: seccomp"
    # Each workload's keys are mounted, read-only, wherever a container mounts them (the single node's slurm-exporter
    # holds none).
    key_mounts = [m for c in spec["containers"] for m in c["volumeMounts"] if m["mountPath"] == "/etc/slurm-keys"]
    assert key_mounts and all(m.get("readOnly") is True for m in key_mounts), f"{name}: keys must be mounted read-only"
