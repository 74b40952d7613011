"""slurm-exporter in the slurm-single-node pod (components/single_node.py), under Pulumi's mocks: a second container
of the same image, as its own user with nothing of root, no key and no slurmdbd.conf, sharing only munged's socket
directory; scrape annotations when asked; nothing of it without `metrics`."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components import metrics, pods, single_node
from components.image_facts import ACCOUNTING_UIDS
from tests.unit.harness import Mocks

STATEFULSET = "kubernetes:apps/v1:StatefulSet"


class Recording(Mocks):
    def __init__(self):
        super().__init__()
        self.inputs: dict[tuple[str, str], dict] = {}

    def new_resource(self, args):
        self.inputs[(args.typ, args.name)] = args.inputs
        return super().new_resource(args)


def pod(**more) -> dict:
    """The StatefulSet's pod template (plain inputs) that SlurmSingleNode registers with `more` args."""
    mocks = Recording()
    pulumi.runtime.set_mocks(mocks, project="slurm-cloud-integration", stack="test", preview=False)

    @pulumi.runtime.test
    def program():
        node = single_node.SlurmSingleNode("single-node", single_node.SlurmSingleNodeArgs(
            namespace="slurm", name="sci", image="registry/slurm-single-node@sha256:0", nodes=2,
            config_map_name="slurm-config", config_secret_name="slurm-secret", config_secret_files=("slurmdbd.conf",),
            munge_secret_name="munge", jwt_secret_name="jwt", directory_config_map="users", home_claim="home",
            storage_size="10Gi", storage_class=None, cpu_milli=(500, 4500), memory_mib=6144,
            network_policy=k8s.networking.v1.NetworkPolicySpecArgs(pod_selector={}), **more))
        return node.service_name

    program()
    return mocks.inputs[(STATEFULSET, "single-node-statefulset")]["spec"]["template"]


def containers(template: dict) -> dict[str, dict]:
    return {c["name"]: c for c in template["spec"]["containers"]}


def volumes(template: dict) -> dict[str, dict]:
    return {v["name"]: v for v in template["spec"]["volumes"]}


@pytest.fixture(scope="module")
def with_exporter() -> dict:
    return pod(metrics=True, annotate=True)


def test_the_exporter_is_a_second_container_of_the_same_image(with_exporter):
    found = containers(with_exporter)
    assert set(found) == {"slurm", "slurm-exporter"}
    exporter = found["slurm-exporter"]
    assert exporter["image"] == found["slurm"]["image"]
    assert exporter["command"] == [single_node.EXPORTER]
    assert exporter["ports"] == [{"name": single_node.EXPORTER_PORT_NAME, "containerPort": metrics.EXPORTER_PORT,
                                  "protocol": "TCP"}]
    env = {e["name"]: e["value"] for e in exporter["env"]}
    assert env["SLURM_EXPORTER_PORT"] == str(metrics.EXPORTER_PORT)
    assert env["SLURM_CONF"] == f"{pods.CONFIG_MOUNT}/slurm.conf"
    assert exporter["livenessProbe"]["tcpSocket"]["port"] == metrics.EXPORTER_PORT
    limits = exporter["resources"]["limits"]
    assert limits == {"cpu": "500m", "memory": "512Mi"}, "sized for squeue --json of ~2500 jobs (single_node.py)"
    assert exporter["resources"]["requests"] == {"cpu": "10m", "memory": "128Mi"}


def test_the_exporter_never_makes_the_slurm_pod_not_ready(with_exporter):
    """Monitoring that fails must not take Slurm's Service away: a liveness probe only, no readiness probe."""
    found = containers(with_exporter)
    assert "readinessProbe" not in found["slurm-exporter"], found["slurm-exporter"].get("readinessProbe")
    assert "livenessProbe" in found["slurm-exporter"]
    assert "readinessProbe" in found["slurm"], "control: the daemons' container decides the pod's readiness"


def test_the_exporter_runs_as_its_own_user_with_nothing_of_root(with_exporter):
    context = containers(with_exporter)["slurm-exporter"]["securityContext"]
    uid = single_node.EXPORTER_UID
    assert context["runAsUser"] == uid and context["runAsGroup"] == uid and context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]} and context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    # Not a user the accounting sync makes a Slurm user of.
    assert not ACCOUNTING_UIDS[0] <= uid < ACCOUNTING_UIDS[1]


def test_the_exporter_mounts_no_key_and_only_slurm_conf(with_exporter):
    exporter = containers(with_exporter)["slurm-exporter"]
    mounts = {m["name"]: m for m in exporter["volumeMounts"]}
    assert set(mounts) == {"exporter-config", "munge-socket"}
    assert all(m["readOnly"] for m in mounts.values())
    config = volumes(with_exporter)["exporter-config"]
    assert set(config) == {"name", "configMap"}, "a ConfigMap only: slurmdbd.conf (the Secret) stays out"
    assert config["configMap"]["items"] == [{"key": "slurm.conf", "path": "slurm.conf"}]
    # Control: the daemons' container does mount the keys and the projected config with slurmdbd.conf.
    daemon_mounts = {m["name"] for m in containers(with_exporter)["slurm"]["volumeMounts"]}
    assert {"slurm-keys", "slurm-config"} <= daemon_mounts


def test_both_containers_share_munged_socket_directory(with_exporter):
    assert volumes(with_exporter)["munge-socket"] == {"name": "munge-socket", "emptyDir": {}}
    for name, container in containers(with_exporter).items():
        assert {"name": "munge-socket", "mountPath": single_node.MUNGE_SOCKET_DIR} | (
            {"readOnly": True} if name == "slurm-exporter" else {}) in container["volumeMounts"], name


DEFAULT_CONTAINER = {"kubectl.kubernetes.io/default-container": "slurm"}  # kubectl exec/logs: the daemons'


def test_the_pod_carries_the_scrape_annotations(with_exporter):
    assert with_exporter["metadata"]["annotations"] == \
        metrics.scrape_annotations(metrics.EXPORTER_PORT) | DEFAULT_CONTAINER
    assert with_exporter["metadata"]["annotations"]["prometheus.io/port"] == "9341"


def test_with_a_prometheus_operator_no_scrape_annotations():
    template = pod(metrics=True, annotate=False)
    assert "slurm-exporter" in containers(template)
    assert template["metadata"]["annotations"] == DEFAULT_CONTAINER


def test_without_metrics_no_exporter_and_no_shared_munge_directory():
    template = pod()
    assert set(containers(template)) == {"slurm"}
    assert "munge-socket" not in volumes(template) and "exporter-config" not in volumes(template)
    assert not template["metadata"].get("annotations")
