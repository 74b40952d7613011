"""The values this program gives the JupyterHub chart pass the chart's own values schema.

Helm deep-merges the chart's values.yaml with the user's values (a null deletes a key) and validates the
result against values.schema.json before rendering anything: a value the schema rejects fails `pulumi up`
on a live cluster. This does the same offline with the pinned chart's files, found as the program finds them.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import jsonschema
import pytest

from components import directory, pods
from components.chart_values import helm_merge
from components.jupyterhub import LOGIN_NOTE, hub_extra_config, split_image_ref
from tests import helm
from tests.unit.hub_samples import DIGEST, GROUPS, USERS, HubConfig, sample_values
from tests.unit.stacks import run


@pytest.fixture(scope="module")
def chart():
    defaults, schema = helm.chart()
    jsonschema.Draft7Validator.check_schema(schema)
    return defaults, jsonschema.Draft7Validator(schema)


def schema_errors(chart, values) -> list[str]:
    defaults, validator = chart
    merged = helm_merge(defaults, json.loads(json.dumps(values)))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(merged)]


@pytest.mark.parametrize("pull_secret", [None, "images-pull-0a1b2c3d"])
def test_values_pass_the_chart_schema(chart, pull_secret):
    errors = schema_errors(chart, sample_values(image_pull_secret=pull_secret))
    assert not errors, "the chart's schema rejects our values:\n" + "\n".join(errors)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_values_of_the_committed_stacks_pass_the_chart_schema(chart, stack):
    values = run(stack).one("kubernetes:helm.sh/v3:Release").plain["values"]
    errors = schema_errors(chart, values)
    assert not errors, f"{stack}: the chart's schema rejects our values:\n" + "\n".join(errors)


def test_the_schema_check_can_fail(chart):
    bad = sample_values()
    bad["singleuser"]["extraFiles"]["slurm-users-passwd"]["mode"] = "0644"  # a string, the schema wants a number
    bad["singleuser"]["image"].pop("tag")
    bad["singleuser"]["imageTypo"] = {}
    errors = schema_errors(chart, bad)
    assert any("mode" in e for e in errors) and any("imageTypo" in e for e in errors), errors


def test_notebook_image_is_pinned_by_digest():
    image = sample_values()["singleuser"]["image"]
    assert image["name"] == "registry.example.com/hpc/slurm-cloud-integration/slurm-jupyter-notebook"
    assert image["tag"] == f"dev@{DIGEST}"
    # The chart joins name:tag, which gives a reference whose digest the runtime pulls.
    assert f"{image['name']}:{image['tag']}".endswith(f":dev@{DIGEST}")


@pytest.mark.parametrize("ref", ["registry/x/img:latest", "registry/x/img@sha256:abc", "img@md5:" + "0" * 32])
def test_unpinned_references_are_refused(ref):
    with pytest.raises(ValueError, match="not pinned by a sha256 digest"):
        split_image_ref(ref, "dev")


def test_a_tag_in_the_reference_is_replaced():
    assert split_image_ref(f"127.0.0.1:5000/r/img:old@{DIGEST}", "new") == ("127.0.0.1:5000/r/img", f"new@{DIGEST}")


def test_extra_files_follow_the_image_contract(chart):
    defaults, _ = chart
    singleuser = helm_merge(defaults, sample_values())["singleuser"]
    files = singleuser["extraFiles"]
    assert {f["mountPath"] for f in files.values()} == {
        *(f"{pods.CONFIG_MOUNT}/{n}" for n in ("slurm.conf", "cgroup.conf", "slurm-image.env")),
        f"{directory.EXTRAUSERS_DIR}/passwd", f"{directory.EXTRAUSERS_DIR}/group"}
    assert all(f["mode"] == 0o644 and "stringData" in f for f in files.values())
    assert files["slurm-users-passwd"]["stringData"].startswith("alice:x:2001:2001::/home/alice:/bin/bash\n")
    assert singleuser["cmd"] == "jupyterhub-singleuser"
    # The chart's own label that lets notebooks reach the hub survives our extraLabels.
    assert singleuser["extraLabels"]["hub.jupyter.org/network-access-hub"] == "true"


def test_user_pods_hold_no_cluster_key(chart):
    defaults, _ = chart

    def key_traces(values):
        text = json.dumps(helm_merge(defaults, values)["singleuser"])
        return [word for word in ("munge", "jwt", pods.KEYS_MOUNT) if word in text]
    values = sample_values()
    assert key_traces(values) == []
    values["singleuser"]["extraFiles"]["key"] = {"mountPath": f"{pods.KEYS_MOUNT}/munge.key", "binaryData": "eA=="}
    assert key_traces(values) == ["munge", pods.KEYS_MOUNT]  # control: the seed's munge key file is found


def spawner_for(name: str) -> SimpleNamespace:
    return SimpleNamespace(user=SimpleNamespace(name=name))


def test_each_user_runs_as_their_directory_ids():
    """The hub's extraConfig, run as the chart's hub runs it (exec with `c`), gives KubeSpawner per-user ids."""
    users = (*USERS, directory.User("dora", 2004, 3100, ("physics", "chem")))
    c = HubConfig()
    exec(hub_extra_config(users, {**GROUPS, "chem": 3001}), {"c": c})
    ks = c.KubeSpawner

    def ids(name):
        spawner = spawner_for(name)
        return ks.uid(spawner), ks.gid(spawner), ks.fs_gid(spawner), ks.supplemental_gids(spawner)
    assert ids("alice") == (2001, 2001, 2001, [3000])
    assert ids("bob") == (2002, 2002, 2002, [])
    assert ids("dora") == (2004, 3100, 3100, [3000, 3001]), "gid and fsGroup: the user's own group"
    # A user the hub knows but the directory does not (an admin may add one) gets no server, and is named.
    for trait in ("uid", "gid", "fs_gid", "supplemental_gids"):
        with pytest.raises(ValueError, match="carol is not in the Slurm cluster's user directory"):
            getattr(ks, trait)(spawner_for("carol"))


def test_the_hub_runs_the_directory_config():
    assert sample_values()["hub"]["extraConfig"] == {"slurmUsers": hub_extra_config(USERS, GROUPS)}


def test_user_servers_ask_the_token_service_for_slurm_tokens():
    assert sample_values()["singleuser"]["extraEnv"]["SLURM_TOKEN_URL"] == "http://tokens:8090/token"


def test_a_shell_in_a_user_pod_has_the_users_home():
    """`kubectl exec` gets the container's environment, not the one the entrypoint gives the server: HOME is the
    home KubeSpawner mounts, `{username}` expanded alike (kubespawner 7.0.0 get_env, as for homeMountPath)."""
    single = sample_values()["singleuser"]
    assert single["extraEnv"]["HOME"] == single["storage"]["homeMountPath"] == "/home/{username}"


def test_homes_are_the_shared_claim(chart):
    defaults, _ = chart
    storage = helm_merge(defaults, sample_values())["singleuser"]["storage"]
    assert storage["type"] == "static"
    assert storage["static"] == {"pvcName": "home-0a1b2c", "subPath": "{username}"}
    assert storage["homeMountPath"] == "/home/{username}"


def test_values_hold_no_null_because_pulumi_drops_them():
    """A null in a Release's values never reaches Helm, so it cannot delete a chart default (fsGid: 100 stayed)."""
    def nulls(tree, path=""):
        if isinstance(tree, dict):
            return [p for k, v in tree.items() for p in nulls(v, f"{path}.{k}")]
        return [path] if tree is None else []
    assert nulls(sample_values()) == []
    assert nulls({"a": {"b": None}}) == [".a.b"]  # control: the walk finds one


def test_hub_is_not_open(chart):
    defaults, _ = chart
    merged = helm_merge(defaults, sample_values())
    config = merged["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "shared-password"
    assert config["SharedPasswordAuthenticator"] == {"user_password": "p" * 32}
    # Whatever authenticator jupyterhub.values chooses, only the directory's users get in, and the login page
    # says so.
    assert config["Authenticator"]["allowed_users"] == ["alice", "bob"]
    # Not the users the hub's database already has (jupyterhub 5.4.4 auth.py: allow_existing_users defaults to True
    # once allowed_users is set): a user removed from `users`, or one who logged in before, stays out.
    assert config["Authenticator"]["allow_existing_users"] is False
    assert "allow_all" not in json.dumps(config)
    assert config["JupyterHub"]["template_vars"]["announcement_login"] == LOGIN_NOTE
    assert merged["proxy"]["service"]["type"] == "ClusterIP"


def test_user_pods_get_no_privileged_init_container(chart):
    """The metadata server is blocked by the singleuser NetworkPolicy, not by a privileged iptables container."""
    defaults, _ = chart
    single = helm_merge(defaults, sample_values())["singleuser"]
    assert single["cloudMetadata"]["blockWithIptables"] is False
    assert single["networkPolicy"]["enabled"] is True
    assert single["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
