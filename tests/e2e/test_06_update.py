"""Scenario 6: an update. `pulumi up` after `pulumi config set keyRotation NEW` (new munge and JWT keys, new
Secrets, so every workload's pod changes) returns only once each changed workload runs its new pod and is ready:
looked at the moment it returns, with no waiting, every workload has a new pod, Ready, and Slurm answers from the
JupyterLab pod with the new key. The committed Pulumi.cluster.yaml is left as it is (a copy takes the new value)."""

import secrets
import time

import pytest

from components import jupyter, restd, single_node, token_service
from tests.e2e.deployment import STACK, TIMINGS
from tests.project_env import ROOT, pulumi

pytestmark = pytest.mark.e2e

WORKLOADS = (single_node.APP, restd.APP, jupyter.APP, token_service.APP)


def ready(pod) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.status.get("conditions", []))


def test_pulumi_up_returns_when_every_updated_workload_is_ready_again(deployment, tmp_path):
    d = deployment
    before = {app: d.app(app).uid for app in WORKLOADS}
    _, old_key = d.secret_with("munge.key")
    config = tmp_path / "Pulumi.cluster.yaml"
    config.write_text((ROOT / "Pulumi.cluster.yaml").read_text())
    pulumi("config", "set", "keyRotation", f"e2e-{secrets.token_hex(4)}", stack=STACK, config_file=config)

    t0 = time.monotonic()
    pulumi("up", "--yes", "--skip-preview", stack=STACK, config_file=config)
    TIMINGS["pulumi up after keyRotation (every pod new)"] = time.monotonic() - t0

    pods = {p.labels.get("app.kubernetes.io/name"): p for p in d.kube.pods}
    for app in WORKLOADS:
        pod = pods[app]
        assert pod.uid != before[app], f"{app}: still the pod from before the update"
        assert ready(pod), f"{app}: pulumi up returned while its new pod {pod.name} is not ready: {pod.status}"
    _, new_key = d.secret_with("munge.key")
    assert new_key != old_key
    out = d.kube.exec(d.jupyter, "timeout", "20", "sinfo", "-h", "-o", "%a", user=d.lab_user).stdout
    assert out.split() == ["up"], out
