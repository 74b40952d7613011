"""The stack configuration: good values parse; each bad one names the key, the problem and the fix."""

import base64
import json
import os
import re

import pytest

from components import directory
from components.config import README, REQUIRED, ConfigError, parse, readme_with_tables, rows, type_name
from components.slurm_files import DEFAULT_SLURM_VERSION
from tests.unit.config_values import EXISTING, JWT, MINIMAL, MUNGE, changed, with_


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
    (tmp_path / "slurm.conf").write_text("ClusterName=prod\nSlurmctldHost=ctl(10.0.0.1)\nAuthAltTypes=auth/jwt\n")
    cfg = parse(with_(**EXISTING), {"mungeKey", "jwtKey"}, str(tmp_path))
    assert "SlurmctldHost=ctl" in cfg.existing_cluster.slurm_conf
    assert cfg.munge_key is not None and cfg.jwt_key is not None
    assert cfg.home.claim == "site-home"


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
    # The user directory: each entry's own key for a bad field, `users` for what only the whole list shows.
    ({"users": "alice"}, "users", "is not a list"),
    ({"users": []}, "users", "is empty, but JupyterLab and JupyterHub run only as users of the directory"),
    ({"users": [{"name": "root", "uid": 2001}]}, "users[0].name", "'root' is a name the images already have"),
    ({"users": [{"name": "alice", "uid": 2001}, {"name": "jovyan", "uid": 2002}]}, "users[1].name",
     "'jovyan' is a name the images already have"),
    ({"users": [{"name": "Alice", "uid": 2001}]}, "users[0].name", "'Alice' is not a valid name"),
    ({"users": [{"name": "a" * 33, "uid": 2001}]}, "users[0].name", "longer than 32 characters"),
    ({"users": [{"name": "alice"}]}, "users[0].uid", "is missing"),
    ({"users": [{"name": "alice", "uid": 1000}]}, "users[0].uid", "1000 is out of range"),
    ({"users": [{"name": "alice", "uid": 60001}]}, "users[0].uid", "60001 is out of range"),
    ({"users": [{"name": "alice", "uid": "x"}]}, "users[0].uid", "not a whole number"),
    ({"users": [{"name": "alice", "uid": 2001, "gid": 100}]}, "users[0].gid", "100 is out of range"),
    ({"users": [{"name": "alice", "uid": 2001, "gorups": []}]}, "users[0].gorups", "did you mean 'users[0].groups'"),
    ({"users": [{"name": "alice", "uid": 2001}, {"name": "bob", "uid": 2001, "gid": 2002}]}, "users",
     "user bob's uid 2001 is also user alice's"),
    ({"users": [{"name": "alice", "uid": 2001}, {"name": "bob", "uid": 2002, "gid": 2001}]}, "users",
     "user bob's gid 2001 is also user alice's"),
    ({"users": [{"name": "alice", "uid": 2001}, {"name": "alice", "uid": 2002}]}, "users",
     "user name alice is given twice"),
    ({"users": [{"name": "alice", "uid": 2001, "groups": ["physics"]}]}, "users",
     "user alice is in group physics, which is not in `groups`"),
    ({"groups": ["physics"]}, "groups", "must be an object"),
    ({"groups": {"physics": "many"}}, "groups", "group physics's gid 'many' is not a whole number from 1001"),
    ({"groups": {"physics": 100}}, "groups", "group physics's gid 100 is not a whole number from 1001 to 60000"),
    ({"groups": {"users": 3000}}, "groups", "'users' is a name the images already have"),
    ({"groups": {"alice": 3000}}, "users", "group alice has the name of a user"),
    ({"groups": {"physics": 2001}}, "users", "group physics's gid 2001 is also user alice's"),
    ({"jupyter": {"user": "bob"}}, "jupyter.user", "'bob' is not in `users`"),
    ({"home": "10Gi"}, "home", "must be an object"),
    ({"home": {"size": "ten"}}, "home.size", "not a Kubernetes quantity"),
    ({"home": {"claim": "Site_Home"}}, "home.claim", "not a valid claim name"),
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
    (tmp_path / "ok.conf").write_text("SlurmctldHost=ctl\nAuthAltTypes=auth/jwt\n")
    with pytest.raises(ConfigError, match="needs the cluster's munge key"):
        parse(with_(existingCluster={"slurmConf": "ok.conf"}, **base), set(), str(tmp_path))
    with pytest.raises(ConfigError, match="would deploy a second Slurm"):
        parse(with_(existingCluster={"slurmConf": "ok.conf"}, mungeKey=MUNGE), {"mungeKey"}, str(tmp_path))


def test_the_user_directory_home_and_jupyter_user_parse():
    cfg = parse(with_(users=[{"name": "alice", "uid": 2001, "groups": ["physics", "chem"]},
                             {"name": "bob-2", "uid": 2002, "gid": 3100}],
                      groups={"physics": 3000, "chem": 3001},
                      home={"size": "50Gi", "className": "nfs-shared"}, jupyter={"user": "bob-2"}))
    assert cfg.directory == (directory.User("alice", 2001, 2001, ("physics", "chem")),
                             directory.User("bob-2", 2002, 3100, ()))
    assert cfg.groups == {"physics": 3000, "chem": 3001}
    assert (cfg.home.size, cfg.home.class_name, cfg.home.claim) == ("50Gi", "nfs-shared", None)
    assert cfg.jupyter_user == "bob-2"
    assert parse(with_(home={"claim": "site-home"})).home.claim == "site-home"


def test_the_directory_defaults():
    cfg = parse(MINIMAL)
    assert cfg.directory == (directory.User("alice", 2001, 2001),) and cfg.groups == {}
    assert (cfg.home.size, cfg.home.class_name, cfg.home.claim) == ("10Gi", None, None)
    assert cfg.jupyter_user == "alice", "JupyterLab runs as the first user unless jupyter.user names another"
    assert cfg.jwt_key is None


def test_no_users_are_needed_without_jupyter():
    cfg = parse(with_(users=None, components={"jupyter": False, "jupyterhub": False, "tokenService": False}))
    assert cfg.users == () and cfg.directory == ()
    for needs_users in ("jupyter", "tokenService"):  # control
        with pytest.raises(ConfigError, match="users.*is empty"):
            parse(with_(users=None, components={"jupyter": False, "jupyterhub": False, "tokenService": False,
                                                needs_users: True}))


def test_existing_cluster_needs_the_jwt_key_for_the_hub_and_the_site_home(tmp_path):
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=ctl\nAuthAltTypes=auth/jwt\n")

    def error(secrets=frozenset({"mungeKey", "jwtKey"}), **changes) -> ConfigError:
        with pytest.raises(ConfigError) as e:
            parse(with_(**{**EXISTING, **changes}), set(secrets), str(tmp_path))
        return e.value

    e = error(jwtKey=None)
    assert e.key == "jwtKey" and "signs JupyterHub users' Slurm tokens with the existing cluster's JWT key" in str(e)
    assert "pulumi config set --secret jwtKey" in str(e)
    e = error(home=None)
    assert e.key == "home.claim" and "existingCluster needs the site's shared home" in str(e)
    assert error(secrets={"mungeKey"}).key == "jwtKey"  # in plain text
    assert "plain text" in str(error(secrets={"mungeKey"}))
    # Without the token service nobody needs tokens from the stack: no jwtKey is fine.
    cfg = parse(with_(**{**EXISTING, "jwtKey": None,
                         "components": {"singleNode": False, "jupyterhub": False, "tokenService": False}}),
                {"mungeKey"}, str(tmp_path))
    assert cfg.jwt_key is None


def test_what_an_existing_cluster_lacks_is_named_at_preview(tmp_path):
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=ctl(10.0.0.1)\n")
    site = with_(**EXISTING)
    with pytest.raises(ConfigError) as e:
        parse(site, {"mungeKey", "jwtKey"}, str(tmp_path))
    assert e.value.key == "existingCluster.slurmConf" and "no auth/jwt in AuthAltTypes" in str(e.value)
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=ctl(10.0.0.1)\nAuthAltTypes=auth/jwt\n")
    configless = changed(site, existingCluster={"slurmConf": "slurm.conf", "configless": True})
    with pytest.raises(ConfigError, match="no enable_configless in SlurmctldParameters") as e:
        parse(configless, {"mungeKey", "jwtKey"}, str(tmp_path))
    assert e.value.key == "existingCluster.slurmConf"
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=ctl(10.0.0.1)\nAuthAltTypes=auth/jwt\n"
                                         "SlurmctldParameters=enable_configless\n")
    assert parse(configless, {"mungeKey", "jwtKey"}, str(tmp_path)).site.conf_server == "10.0.0.1:6817"
    with pytest.raises(ConfigError, match="slurmrestd of Slurm 22.05 cannot run configless") as e:
        parse(changed(configless, slurmVersion="22.05"), {"mungeKey", "jwtKey"}, str(tmp_path))
    assert e.value.key == "existingCluster.configless"
    no_restd = changed(configless, slurmVersion="22.05", components={"singleNode": False, "restd": False})
    assert parse(no_restd, {"mungeKey", "jwtKey"}, str(tmp_path)).existing_cluster.configless


def test_home_volume_and_claim_exclude_each_other(tmp_path):
    with pytest.raises(ConfigError, match="set together with home.claim") as e:
        parse(with_(home={"claim": "a", "volume": "b"}))
    assert e.value.key == "home.volume"
    with pytest.raises(ConfigError, match="set together with home.volume") as e:
        parse(with_(home={"className": "nfs", "volume": "b"}))
    assert e.value.key == "home.className"


def test_jwt_key_belongs_to_an_existing_cluster():
    with pytest.raises(ConfigError) as e:
        parse(with_(jwtKey=JWT), {"jwtKey"})
    assert e.value.key == "jwtKey" and "is set without existingCluster" in str(e.value) and "Fix:" in str(e.value)


@pytest.mark.parametrize("key, words", [("bm90IGJhc2U2NA=!", "not base64 text"),
                                        (base64.b64encode(bytes(31)).decode(), "decodes to 31 bytes, an HS256 key")])
def test_bad_jwt_key(tmp_path, key, words):
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=ctl\nAuthAltTypes=auth/jwt\n")
    with pytest.raises(ConfigError, match=words) as e:
        parse(with_(**{**EXISTING, "jwtKey": key}), {"mungeKey", "jwtKey"}, str(tmp_path))
    assert e.value.key == "jwtKey"


def test_committed_stacks_parse(monkeypatch):
    """The committed Pulumi.<stack>.yaml files are valid as committed (prod and site with their key secrets set)."""
    import yaml

    cache = os.environ.get("SCI_CACHE", "/nonexistent/sci-cache")  # also where a pulled chart is looked for
    monkeypatch.setenv("SCI_CACHE", cache)
    monkeypatch.setenv("SCI_KUBECONFIG", f"{cache}/kube/admin.kubeconfig")
    parsed = {}
    for stack in ("local", "cluster", "dev", "prod", "site"):
        with open(f"Pulumi.{stack}.yaml") as f:
            raw = yaml.safe_load(f)["config"]
        values = {k.split(":", 1)[1]: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in raw.items()}
        secrets = {"prod": {"mungeKey": MUNGE, "jwtKey": JWT}, "site": {"mungeKey": MUNGE, "jwtKey": JWT}}.get(stack, {})
        parsed[stack] = cfg = parse({**values, **secrets}, set(secrets))
        assert cfg.cluster_name == stack
        assert [(u.name, u.uid, u.gid, u.groups) for u in cfg.directory] == [
            ("alice", 2001, 2001, ("research",)), ("bob", 2002, 2002, ("research",))], stack
        assert cfg.groups == {"research": 3000}
    assert parsed["cluster"].kubernetes.kubeconfig == f"{cache}/kube/admin.kubeconfig"
    assert parsed["cluster"].home.class_name == "local-path-shared"
    assert parsed["prod"].home.claim == "site-home" and parsed["prod"].jwt_key is not None
    assert parsed["dev"].jupyterhub.chart_version == "4.3.3"
    assert parsed["site"].home.volume == "sci-site-home" and parsed["site"].components.token_service


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


def test_readme_configuration_table_and_owned_chart_settings_are_the_generated_ones():
    text = README.read_text()
    assert readme_with_tables(text) == text, "README.md is stale: run python -m components.config --readme"
    for row, edited in (("| `nodes` | integer | `2` |", "| `nodes` | integer | `3` |"),
                        ("- `singleuser.extraEnv.SLURM_TOKEN_URL`: ", "- `singleuser.extraEnv.SLURM_URL`: ")):
        stale = text.replace(row, edited)
        assert stale != text and readme_with_tables(stale) == text  # control: an edited line is caught
