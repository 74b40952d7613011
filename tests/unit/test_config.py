"""The stack configuration: good values parse; each bad one names the key, the problem and the fix."""

import base64
import json
import re

import pytest

from components.config import README, REQUIRED, ConfigError, parse, readme_with_table, rows, type_name
from components.slurm_files import DEFAULT_SLURM_VERSION

MINIMAL = {"clusterName": "dev", "images": json.dumps({"registry": "127.0.0.1:5000"}),
           "jupyterhub": json.dumps({"chartVersion": "4.2.0"}), "users": json.dumps([{"name": "alice", "uid": 2001}])}
MUNGE = base64.b64encode(bytes(range(256)) * 4).decode()
JWT = base64.b64encode(bytes(range(32))).decode()


def raw(value):
    """A config value as Pulumi gives it to the program: objects and lists as JSON text."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def changed(values: dict, **changes) -> dict:
    """A copy of raw config `values` with `changes` made (None removes a key)."""
    values = dict(values)
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = raw(value)
    return values


def with_(**changes):
    return changed(MINIMAL, **changes)


def test_minimal_config_gets_defaults():
    cfg = parse(MINIMAL)
    assert cfg.cluster_name == "dev"
    assert cfg.slurm_version == DEFAULT_SLURM_VERSION
    assert cfg.namespace == "slurm"
    assert cfg.nodes == 2
    assert cfg.images.name("slurm-client") == "127.0.0.1:5000/slurm-cloud-integration/slurm-client:latest"
    assert cfg.components.single_node and cfg.components.jupyterhub
    assert cfg.existing_cluster is None and cfg.munge_key is None


def test_existing_cluster(tmp_path):
    (tmp_path / "slurm.conf").write_text("ClusterName=prod\nSlurmctldHost=ctl(10.0.0.1)\n")
    cfg = parse(with_(existingCluster={"slurmConf": "slurm.conf"}, mungeKey=MUNGE,
                      components={"singleNode": False}), {"mungeKey"}, str(tmp_path))
    assert "SlurmctldHost=ctl" in cfg.existing_cluster.slurm_conf
    assert cfg.munge_key is not None


@pytest.mark.parametrize("changes, key, words", [
    ({"clusterName": None}, "clusterName", "is missing"),
    ({"clusterName": "Dev_Cluster"}, "clusterName", "not a valid name"),
    ({"slurmVersion": "23.02"}, "slurmVersion", "not a supported Slurm version"),
    ({"namespace": "Slurm!"}, "namespace", "not a valid Kubernetes namespace"),
    ({"nodes": "many"}, "nodes", "not a whole number"),
    ({"nodes": "0"}, "nodes", "out of range"),
    ({"images": None}, "images", "is missing"),
    ({"images": {"registry": "https://ghcr.io/acme"}}, "images.registry", "not a registry host"),
    ({"images": {"registry": "ghcr.io", "tag": "a b"}}, "images.tag", "not a valid image tag"),
    ({"images": {"registry": "ghcr.io", "regsitry": "x"}}, "images.regsitry", "did you mean 'images.registry'"),
    ({"clustername": "dev"}, "clustername", "did you mean 'clusterName'"),
    ({"components": {"jupyter": "maybe"}}, "components.jupyter", "not true or false"),
    ({"jupyterhub": None}, "jupyterhub.chartVersion", "is missing"),
    ({"jupyterhub": {"chartVersion": "^4"}}, "jupyterhub.chartVersion", "not a chart version"),
    ({"components": {"singleNode": False}}, "components.singleNode", "no existingCluster"),
    ({"kubernetes": {"renderDir": "/tmp/x"}}, "components.jupyterhub", "needs a live cluster"),
    ({"storage": {"size": "ten"}}, "storage.size", "not a Kubernetes quantity"),
    ({"node": {"cpus": "0"}}, "node.cpus", "out of range"),
    ({"node": {"cpus": "-2"}}, "node.cpus", "out of range"),
    ({"node": {"memoryMb": "100"}}, "node.memoryMb", "out of range"),
    ({"node": {"memoryMb": "2.5G"}}, "node.memoryMb", "not a whole number"),
    ({"singleNode": {"memory": "lots"}}, "singleNode.memory", "not a positive Kubernetes quantity"),
    ({"singleNode": {"memory": "-1Gi"}}, "singleNode.memory", "not a positive Kubernetes quantity"),
    ({"singleNode": {"memory": "8000m"}}, "singleNode.memory", "thousandths of a byte"),
    ({"singleNode": {"cpu": "0"}}, "singleNode.cpu", "not a positive Kubernetes quantity"),
    # The nodes do not fit the pod: the message names both settings and the size that would fit.
    ({"singleNode": {"memory": "4Gi"}}, "singleNode.memory",
     "4096Mi cannot hold nodes x node.memoryMb = 2 x 2560 MiB plus the daemons' 1024 MiB (6144 MiB)"),
    ({"nodes": "3", "singleNode": {"memory": "6Gi"}}, "singleNode.memory", "= 3 x 2560 MiB"),
    ({"node": {"cpus": "4"}, "singleNode": {"cpu": "4"}}, "singleNode.cpu",
     "4000m cannot hold nodes x node.cpus = 2 x 4 CPUs plus the daemons' 500m (8500m)"),
    ({"storage": "10Gi"}, "storage", "must be an object"),
    ({"restd": {"allowedClients": "jupyter"}}, "restd.allowedClients", "not a list"),
    ({"restd": {"allowedClients": ["Jupyter_Lab"]}}, "restd.allowedClients", "not an app.kubernetes.io/name"),
    ({"images": {"registry": "ghcr.io", "password": "pw"}}, "images.password", "plain text"),
    ({"kubernetes": {"renderDir": "$NO_SUCH_VAR_X/r"}, "components": {"jupyterhub": False}},
     "kubernetes.renderDir", "unset environment variable"),
    ({"kubernetes": {"kubeconfig": "${NO_SUCH_VAR_X}/admin.kubeconfig"}}, "kubernetes.kubeconfig",
     "unset environment variable"),
    ({"kubernetes": {"kubeconfig": "/k/config", "renderDir": "/tmp/x"}, "components": {"jupyterhub": False}},
     "kubernetes.renderDir", "talks to no cluster"),
])
def test_bad_values_name_key_problem_and_fix(changes, key, words):
    with pytest.raises(ConfigError) as err:
        parse(with_(**changes))
    message = str(err.value)
    assert err.value.key == key
    assert f"'slurm-cloud-integration:{key}'" in message and words in message and "Fix:" in message


def test_pod_resources_follow_the_nodes_unless_set():
    cfg = parse(MINIMAL)
    assert (cfg.node.cpus, cfg.node.memory_mb) == (2, 2560)
    assert cfg.single_node_memory_mib == 2 * 2560 + 1024 and cfg.single_node_cpu_milli == (500, 4500)
    cfg = parse(with_(nodes="3", node={"cpus": "1", "memoryMb": "4000"}))
    assert cfg.single_node_memory_mib == 3 * 4000 + 1024 and cfg.single_node_cpu_milli == (500, 3500)
    cfg = parse(with_(singleNode={"memory": "8Gi", "cpu": "4.5"}))
    assert cfg.single_node_memory_mib == 8192 and cfg.single_node_cpu_milli == (500, 4500)
    assert parse(with_(singleNode={"memory": "6442450944"})).single_node_memory_mib == 6144  # bytes


def test_default_nodes_run_the_examples_as_they_are():
    """examples/test.slurm's --mem (the seed's 2300) fits a default node; the two-node job finds two nodes."""
    examples = README.parent / "examples"
    mem = int(re.search(r"^#SBATCH --mem=(\d+)$", (examples / "test.slurm").read_text(), re.M).group(1))
    nodes = int(re.search(r"^#SBATCH --nodes=(\d+)$", (examples / "two-nodes.slurm").read_text(), re.M).group(1))
    cfg = parse(MINIMAL)
    assert mem == 2300 and mem <= cfg.node.memory_mb
    assert nodes <= cfg.nodes


def test_munge_key_in_plain_text_is_refused():
    with pytest.raises(ConfigError, match="plain text.*--secret"):
        parse(with_(mungeKey=MUNGE))  # not in the secret keys


@pytest.mark.parametrize("key, words", [("bm90IGJhc2U2NA=!", "not base64 text"),
                                        (base64.b64encode(b"short").decode(), "decodes to 5 bytes")])
def test_bad_munge_key(key, words):
    with pytest.raises(ConfigError, match=words):
        parse(with_(mungeKey=key), {"mungeKey"})


def test_existing_cluster_needs_a_real_slurm_conf_and_key(tmp_path):
    (tmp_path / "empty.conf").write_text("# nothing\n")
    base = dict(components={"singleNode": False})
    with pytest.raises(ConfigError, match="cannot read 'nope.conf'"):
        parse(with_(existingCluster={"slurmConf": "nope.conf"}, mungeKey=MUNGE, **base), {"mungeKey"}, str(tmp_path))
    with pytest.raises(ConfigError, match="no SlurmctldHost line"):
        parse(with_(existingCluster={"slurmConf": "empty.conf"}, mungeKey=MUNGE, **base), {"mungeKey"}, str(tmp_path))
    (tmp_path / "ok.conf").write_text("SlurmctldHost=ctl\n")
    with pytest.raises(ConfigError, match="needs the cluster's munge key"):
        parse(with_(existingCluster={"slurmConf": "ok.conf"}, **base), set(), str(tmp_path))
    with pytest.raises(ConfigError, match="would deploy a second Slurm"):
        parse(with_(existingCluster={"slurmConf": "ok.conf"}, mungeKey=MUNGE), {"mungeKey"}, str(tmp_path))


def test_committed_stacks_parse(monkeypatch):
    """Pulumi.local.yaml, Pulumi.cluster.yaml and Pulumi.dev.yaml are valid as committed (prod needs its munge
    key secret)."""
    import yaml

    monkeypatch.setenv("SCI_CACHE", "/var/cache/sci-test")
    monkeypatch.setenv("SCI_KUBECONFIG", "/var/cache/sci-test/kube/admin.kubeconfig")
    for stack in ("local", "cluster", "dev"):
        with open(f"Pulumi.{stack}.yaml") as f:
            raw = yaml.safe_load(f)["config"]
        values = {k.split(":", 1)[1]: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}
        cfg = parse(values)
        assert cfg.cluster_name == stack
        if stack == "cluster":
            assert cfg.kubernetes.kubeconfig == "/var/cache/sci-test/kube/admin.kubeconfig"
    assert cfg.jupyterhub.chart_version == "4.3.3"


def test_registry_password_needs_a_user():
    with pytest.raises(ConfigError, match="images.username.*is missing.*--path images.username USER"):
        parse(with_(images={"registry": "ghcr.io", "password": "pw"}), {"images"})
    cfg = parse(with_(images={"registry": "ghcr.io", "username": "me", "password": "pw"}), {"images"})
    assert cfg.images.username == "me" and cfg.images.password is not None


def test_every_key_has_a_type_a_meaning_and_a_default_its_check_accepts():
    for name, f in rows():
        assert type_name(f) and f.metadata["meaning"], name
        check, default = f.metadata["check"], f.default
        if check and default not in (REQUIRED, None):
            check(default)


def test_readme_configuration_table_is_the_generated_one():
    text = README.read_text()
    assert readme_with_table(text) == text, "README.md's table is stale: run python -m components.config --readme"
    stale = text.replace("| `nodes` | integer | `2` |", "| `nodes` | integer | `3` |")
    assert stale != text and readme_with_table(stale) == text  # control: an edited row is caught
