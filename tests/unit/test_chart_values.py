"""jupyterhub.values / jupyterhub.valuesFile: read, merged over the program's chart values with Helm's semantics,
owned keys refused, the result checked against the schema of exactly the pinned chart version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
import pytest

from components.chart_values import chart_version, helm_merge, load_chart, read_user_values, with_user_values
from components.config import ConfigError, parse
from components.user_servers import SELECTOR
from tests import helm
from tests.unit.config_values import with_
from tests.unit.hub_samples import sample_values
from tests.unit.stacks import run

SECRET = "gh-client-secret-0123456789"


@pytest.fixture(scope="module")
def chart():
    return helm.chart()


def apply(chart, user):
    defaults, schema = chart
    return with_user_values(sample_values(), user, defaults, schema)


def refused(chart, user) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        apply(chart, user)
    return e.value


def test_helm_merge_merges_maps_deletes_on_null_and_replaces_the_rest():
    base = {"a": {"b": 1, "c": 2}, "l": [1, 2], "s": "x", "gone": {"deep": 1}}
    merged = helm_merge(base, {"a": {"c": 3, "d": 4}, "l": [9], "s": {"now": "map", "n": None}, "gone": None,
                               "new": None})
    assert merged == {"a": {"b": 1, "c": 3, "d": 4}, "l": [9], "s": {"now": "map"}}
    assert base == {"a": {"b": 1, "c": 2}, "l": [1, 2], "s": "x", "gone": {"deep": 1}}, "the base was changed"


def test_the_file_is_merged_first_and_the_object_over_it(tmp_path):
    (tmp_path / "hub.yaml").write_text("cull: {timeout: 7200, every: 600}\nhub: {config: {A: {x: 1}}}\n")
    user = read_user_values({"cull": {"timeout": 3600}, "hub": {"config": {"A": None}}}, "hub.yaml", str(tmp_path))
    assert user == {"cull": {"timeout": 3600, "every": 600}, "hub": {"config": {"A": None}}}


@pytest.mark.parametrize("values, file, text, key, problem", [
    ("not an object", None, None, "jupyterhub.values", "must be an object"),
    (None, "missing.yaml", None, "jupyterhub.valuesFile", "cannot read 'missing.yaml'"),
    (None, "bad.yaml", "hub: [\n", "jupyterhub.valuesFile", "not valid YAML at line 2"),
    (None, "list.yaml", "- a\n", "jupyterhub.valuesFile", "does not hold a mapping"),
])
def test_unreadable_user_values_name_the_key(tmp_path, values, file, text, key, problem):
    if text is not None:
        (tmp_path / file).write_text(text)
    with pytest.raises(ConfigError, match=problem) as e:
        read_user_values(values, file, str(tmp_path))
    assert e.value.key == key


def test_the_usual_settings_pass_and_take_effect(chart):
    """What z2jh users put in config.yaml: an authenticator, ingress, resources, image mirrors, culling."""
    user = {
        "hub": {"config": {"JupyterHub": {"authenticator_class": "github"},
                           "GitHubOAuthenticator": {"client_id": "id", "client_secret": SECRET,
                                                    "oauth_callback_url": "https://hub.example.org/hub/oauth_callback",
                                                    "allowed_organizations": ["acme"]},
                           "SharedPasswordAuthenticator": None},
                "image": {"name": "mirror.example.org/jupyterhub/k8s-hub"}},
        "ingress": {"enabled": True, "hosts": ["hub.example.org"]},
        "singleuser": {"cpu": {"limit": 2}, "memory": {"limit": "4G"}, "image": {"pullPolicy": "Always"},
                       "extraFiles": {"motd": {"mountPath": "/etc/motd", "stringData": "hi\n"}}},
        "prePuller": {"continuous": {"enabled": False}},
        "cull": {"timeout": 7200},
    }
    user["singleuser"]["profileList"] = [
        {"display_name": "small", "default": True},
        {"display_name": "large", "kubespawner_override": {"cpu_limit": 8, "mem_limit": "32G"}}]
    merged = apply(chart, user)
    assert merged["hub"]["config"]["JupyterHub"]["authenticator_class"] == "github"
    assert "SharedPasswordAuthenticator" not in merged["hub"]["config"]  # a null deletes what the program set
    assert merged["singleuser"]["cpu"]["limit"] == 2 and merged["ingress"]["enabled"] is True
    assert merged["singleuser"]["image"]["pullPolicy"] == "Always"
    program = sample_values()["singleuser"]
    assert merged["singleuser"]["image"]["name"] == program["image"]["name"]
    assert set(merged["singleuser"]["extraFiles"]) == set(program["extraFiles"]) | {"motd"}
    # Another authenticator still lets in only the directory's users, each as their own ids, in their home.
    assert merged["hub"]["config"]["Authenticator"]["allowed_users"] == ["alice", "bob"]
    assert merged["hub"]["extraConfig"] == sample_values()["hub"]["extraConfig"]
    assert merged["singleuser"]["storage"] == program["storage"]
    assert merged["singleuser"]["extraEnv"] == program["extraEnv"]


@pytest.mark.parametrize("user, key", [
    ({"singleuser": {"fsGid": 100}}, "singleuser.fsGid"),
    ({"singleuser": {"uid": 1000}}, "singleuser.uid"),
    ({"singleuser": {"cmd": "jupyter-lab"}}, "singleuser.cmd"),
    ({"singleuser": {"image": {"name": "quay.io/jupyter/base-notebook"}}}, "singleuser.image.name"),
    ({"singleuser": {"image": {"tag": "latest"}}}, "singleuser.image.tag"),
    ({"singleuser": {"image": None}}, "singleuser.image"),  # would delete the owned name and tag
    ({"singleuser": {"extraFiles": {"slurm-users-passwd": {"mode": 0o666}}}}, "singleuser.extraFiles.slurm-users-passwd"),
    ({"singleuser": {"extraFiles": {"slurm-config-slurm-conf": {"stringData": "x"}}}},
     "singleuser.extraFiles.slurm-config-slurm-conf"),
    ({"singleuser": {"extraFiles": []}}, "singleuser.extraFiles"),
    ({"singleuser": {"extraPodConfig": {"securityContext": {"fsGroup": 100}}}},
     "singleuser.extraPodConfig.securityContext"),
    ({"hub": {"config": {"KubeSpawner": {"fs_gid": 100}}}}, "hub.config.KubeSpawner.fs_gid"),
    ({"hub": {"config": {"KubeSpawner": {"uid": 0}}}}, "hub.config.KubeSpawner.uid"),
    ({"hub": {"config": {"KubeSpawner": {"gid": 0}}}}, "hub.config.KubeSpawner.gid"),
    ({"hub": {"config": {"KubeSpawner": {"supplemental_gids": [0]}}}}, "hub.config.KubeSpawner.supplemental_gids"),
    ({"hub": {"config": {"KubeSpawner": {"volumes": []}}}}, "hub.config.KubeSpawner.volumes"),
    ({"hub": {"config": {"KubeSpawner": {"volume_mounts": []}}}}, "hub.config.KubeSpawner.volume_mounts"),
    ({"hub": {"config": {"Authenticator": {"allowed_users": ["carol"]}}}}, "hub.config.Authenticator.allowed_users"),
    ({"hub": {"config": {"Authenticator": None}}}, "hub.config.Authenticator"),  # would delete allowed_users
    ({"hub": {"config": {"Authenticator": {"allow_existing_users": True}}}},
     "hub.config.Authenticator.allow_existing_users"),
    ({"hub": {"extraConfig": {"slurmUsers": "pass"}}}, "hub.extraConfig.slurmUsers"),
    ({"singleuser": {"storage": {"type": "dynamic"}}}, "singleuser.storage.type"),
    ({"singleuser": {"storage": {"static": {"subPath": "shared"}}}}, "singleuser.storage.static"),
    ({"singleuser": {"storage": {"homeMountPath": "/home/jovyan"}}}, "singleuser.storage.homeMountPath"),
    ({"singleuser": {"storage": None}}, "singleuser.storage"),  # would delete the owned keys below it
    ({"singleuser": {"extraEnv": {"SLURM_TOKEN_URL": "http://elsewhere/token"}}},
     "singleuser.extraEnv.SLURM_TOKEN_URL"),
    ({"singleuser": {"extraEnv": {"HOME": "/tmp"}}}, "singleuser.extraEnv.HOME"),
    ({"hub": {"config": {"Spawner": {"cmd": ["bash"]}}}}, "hub.config.Spawner.cmd"),
    ({"singleuser": {"profileList": [{"display_name": "small"}, {"display_name": "other image",
                                                                 "kubespawner_override": {"image": "x"}}]}},
     "singleuser.profileList.1.kubespawner_override.image"),
    ({"singleuser": {"profileList": [{"display_name": "p", "profile_options": {"gid": {"choices": {
        "a": {"display_name": "a", "kubespawner_override": {"fs_gid": 100}}}}}}]}},
     "singleuser.profileList.0.profile_options.gid.choices.a.kubespawner_override.fs_gid"),
])
def test_owned_settings_are_refused_with_the_reason(chart, user, key):
    error = refused(chart, user)
    assert error.key == f"jupyterhub.values.{key}"
    assert "is set by this program: " in str(error) and "remove it" in str(error)


@pytest.mark.parametrize("user, reason", [
    ({"singleuser": {"fsGid": 100}}, "the fsGroup is the user's own group (hub.extraConfig.slurmUsers)"),
    ({"singleuser": {"uid": 0}}, "runs as their directory uid, gid and groups"),
    ({"hub": {"config": {"KubeSpawner": {"supplemental_gids": [0]}}}}, "never as root"),
    ({"singleuser": {"storage": {"type": "none"}}}, "the shared home claim, mounted at `/home/<user>`"),
    ({"hub": {"config": {"KubeSpawner": {"volumes": []}}}}, "the shared home claim"),
    ({"hub": {"config": {"Authenticator": {"allowed_users": []}}}}, "only users of the stack's directory"),
    ({"singleuser": {"extraEnv": {"SLURM_TOKEN_URL": "x"}}}, "where the user's server gets its Slurm tokens"),
    ({"singleuser": {"extraFiles": {"slurm-users-group": {"stringData": "x"}}}}, "or the user directory"),
])
def test_each_refusal_gives_its_reason(chart, user, reason):
    assert reason in str(refused(chart, user))


@pytest.mark.parametrize("user, key", [
    ({"hub": {"config": {"KubeSpawner": {"common_labels": {"team": "hpc"}}}}}, "hub.config.KubeSpawner.common_labels"),
    ({"singleuser": {"profileList": [{"display_name": "p", "kubespawner_override": {"common_labels": {}}}]}},
     "singleuser.profileList.0.kubespawner_override.common_labels"),
])
def test_kubespawners_common_labels_are_refused_as_user_servers_finds_the_servers_by_one(chart, user, key):
    """The chart sets KubeSpawner.common_labels, with the label UserServers selects the servers by (SELECTOR); the
    user's would replace that dict (the chart loads hub.config last), and `pulumi destroy` would leave the servers."""
    error = refused(chart, user)
    label, value = SELECTOR.split("=")
    assert error.key == f"jupyterhub.values.{key}" and f"`{label}: {value}`" in str(error)
    apply(chart, {"singleuser": {"extraLabels": {"team": "hpc"}}})  # control: labels added beside them are free


@pytest.mark.parametrize("user", [
    {"singleuser": {"extraEnv": {"MY_VAR": "1"}}},
    {"hub": {"extraConfig": {"site": "c.JupyterHub.shutdown_on_logout = True"}}},
    {"hub": {"config": {"Authenticator": {"admin_users": ["alice"]}}}},
    {"hub": {"config": {"KubeSpawner": {"start_timeout": 600}}}},
    {"singleuser": {"extraFiles": {"motd": {"mountPath": "/etc/motd", "stringData": "hi\n"}}}},
    {"singleuser": {"storage": {"extraVolumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                                "extraVolumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}]}}},
], ids=["extraEnv", "extraConfig", "admin_users", "start_timeout", "extraFiles", "storage.extraVolumes"])
def test_keys_beside_the_owned_ones_stay_free(chart, user):
    """Control for the refusals: the owned keys are leaves, not the whole extraEnv, extraConfig or Authenticator."""
    apply(chart, user)


@pytest.mark.parametrize("user, key, problem", [
    ({"singleuser": {"cpu": {"limit": "two"}}}, "singleuser.cpu.limit", "must be of type number"),
    ({"singleuser": {"cpu": {"limt": 2}}}, "singleuser.cpu.limt", "not a value of the JupyterHub chart"),
    ({"hub": {"config": {"JupyterHub": {"authenticator_class": "github"}}, "imageTypo": {}}}, "hub.imageTypo",
     "not a value of the JupyterHub chart"),
    ({"proxy": {"service": {"type": "Public"}}}, "proxy.service.type", "must be one of"),
])
def test_schema_invalid_values_fail_naming_the_key_path(chart, user, key, problem):
    error = refused(chart, user)
    assert error.key == f"jupyterhub.values.{key}" and problem in str(error)


def test_a_typo_gets_a_suggestion(chart):
    assert "did you mean 'limit'?" in str(refused(chart, {"singleuser": {"cpu": {"limt": 2}}}))


def test_a_null_for_a_chart_default_is_refused_as_pulumi_would_drop_it(chart):
    error = refused(chart, {"cull": {"timeout": None}})
    assert error.key == "jupyterhub.values.cull.timeout" and "Pulumi drops nulls" in str(error)
    apply(chart, {"cull": {"noSuchDefault": None}, "hub": {"config": {"SharedPasswordAuthenticator": None}}})  # control


def test_errors_never_show_the_value(chart):
    for user in ({"hub": {"config": {"KubeSpawner": {"uid": SECRET}}}},
                 {"singleuser": {"cpu": {"limit": SECRET}}},
                 {"proxy": {"service": {"type": SECRET}}}):
        assert SECRET not in str(refused(chart, user))


def test_program_outputs_pass_the_schema_check_as_placeholders(chart):
    defaults, schema = chart
    program = sample_values(image_name=pulumi.Output.from_input("r/img"), hub_password=pulumi.Output.secret("p"))
    merged = with_user_values(program, {}, defaults, schema)
    assert isinstance(merged["singleuser"]["image"]["name"], pulumi.Output), "the Output itself goes to the Release"


def test_no_chart_schema_fails_naming_what_to_set(monkeypatch, tmp_path):
    monkeypatch.setenv("SCI_Z2JH_REFERENCE", str(tmp_path / "none"))
    monkeypatch.setenv("SCI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no helm to pull with
    with pytest.raises(ConfigError, match="SCI_Z2JH_REFERENCE") as e:
        load_chart("4.3.3", "https://hub.jupyter.org/helm-chart/")
    assert e.value.key == "jupyterhub.chartVersion"
    assert "helm is not installed" in str(e.value) and "install helm 3 and let this machine reach" in str(e.value)


def chart_files(directory: Path, version_file: str | None = None, text: str = "") -> Path:
    """A chart's values.yaml and values schema in `directory`, with `version_file` (Chart.yaml, SOURCE.md) if given."""
    directory.mkdir(parents=True)
    (directory / "values.yaml").write_text("a: 1\n")
    (directory / "values.schema.json").write_text(json.dumps({"type": "object"}))
    if version_file:
        (directory / version_file).write_text(text)
    return directory


def without_helm(monkeypatch, tmp_path, reference: Path | None = None) -> None:
    """An empty $SCI_CACHE, no helm to pull with, and `reference` as $SCI_Z2JH_REFERENCE (unset if None)."""
    monkeypatch.setenv("SCI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    if reference:
        monkeypatch.setenv("SCI_Z2JH_REFERENCE", str(reference))
    else:
        monkeypatch.delenv("SCI_Z2JH_REFERENCE", raising=False)


def fake_helm(directory: Path) -> None:
    """`directory`/helm, as `helm pull jupyterhub --repo R --version V --untar --untardir DIR` unpacks chart V."""
    helm = directory / "helm"
    helm.write_text('#!/bin/sh\n/bin/mkdir "$9/jupyterhub" && cd "$9/jupyterhub" && echo "b: 2" > values.yaml && '
                    'echo "{}" > values.schema.json && echo "version: $6" > Chart.yaml\n')
    helm.chmod(0o755)


def test_without_sci_cache_helm_pulls_the_chart_into_the_users_cache(monkeypatch, tmp_path):
    """As in the preview workflow (.github/workflows/preview.yml): no SCI_CACHE, no reference, helm installed."""
    without_helm(monkeypatch, tmp_path)
    monkeypatch.delenv("SCI_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    pulled = tmp_path / "xdg" / "slurm-cloud-integration" / "charts" / "jupyterhub-4.4.0"
    with pytest.raises(ConfigError, match=f"helm is not installed.*helm pulls it into {re.escape(str(pulled))}"):
        load_chart("4.4.0", "unused")  # control: nothing to pull with
    fake_helm(tmp_path)
    assert load_chart("4.4.0", "unused") == ({"b": 2}, {})
    assert chart_version(pulled / "jupyterhub") == "4.4.0"


def test_a_pulled_chart_of_the_exact_version_is_used_first(monkeypatch, tmp_path):
    chart_files(tmp_path / "charts" / "jupyterhub-4.3.3" / "jupyterhub", "Chart.yaml", "version: 4.3.3\n")
    monkeypatch.setenv("SCI_CACHE", str(tmp_path))
    assert load_chart("4.3.3", "unused") == ({"a": 1}, {"type": "object"})


@pytest.mark.parametrize("file, text, version", [
    ("Chart.yaml", "apiVersion: v1\nname: jupyterhub\nversion: 4.3.3\nappVersion: 5.4.4\n", "4.3.3"),
    ("SOURCE.md", "of the official chart (chart directory `jupyterhub/`,\ntag 4.3.3, the chart version the stacks pin)",
     "4.3.3"),
    ("SOURCE.md", "tag 4.4.0-beta.1, built from tag 4.4.0-beta.1", "4.4.0-beta.1"),
    ("SOURCE.md", "Tag 4.3.3 of the chart", "4.3.3"),  # any case
    ("Chart.yaml", "name: jupyterhub\n", None),
    ("SOURCE.md", "tag 4.3.3, then tag 4.4.0", None),  # which one?
    ("SOURCE.md", "the chart's files, newest", None),
    ("README.md", "tag 4.3.3", None),
])
def test_a_chart_directory_says_its_version_in_chart_yaml_or_source_md(tmp_path, file, text, version):
    (tmp_path / file).write_text(text)
    assert chart_version(tmp_path) == version


@pytest.mark.parametrize("file, text, problem", [
    ("Chart.yaml", "name: jupyterhub\nversion: 4.4.0\n", "is chart 4.4.0, not the pinned 4.3.3"),
    ("SOURCE.md", "tag 4.4.0", "is chart 4.4.0, not the pinned 4.3.3"),
    (None, "", "does not say its chart version"),
    ("SOURCE.md", "tag 4.3.3, then Tag 4.4.0", "names several chart versions in its SOURCE.md (tags 4.3.3, 4.4.0)"),
    ("SOURCE.md", "tag 4.3.3", None),  # the control
])
def test_a_reference_of_another_or_an_unknown_version_is_refused(monkeypatch, tmp_path, file, text, problem):
    reference = chart_files(tmp_path / "reference", file, text)
    without_helm(monkeypatch, tmp_path, reference)
    if problem is None:
        assert load_chart("4.3.3", "unused") == ({"a": 1}, {"type": "object"})
        return
    with pytest.raises(ConfigError) as e:
        load_chart("4.3.3", "https://hub.jupyter.org/helm-chart/")
    assert e.value.key == "jupyterhub.chartVersion" and f"{reference} {problem}" in str(e.value)


def test_a_pulled_chart_of_another_version_is_not_used(monkeypatch, tmp_path):
    without_helm(monkeypatch, tmp_path)
    chart_files(tmp_path / "cache" / "charts" / "jupyterhub-4.3.3" / "jupyterhub", "Chart.yaml", "version: 4.3.2\n")
    with pytest.raises(ConfigError, match="is chart 4.3.2, not the pinned 4.3.3"):
        load_chart("4.3.3", "unused")


def test_a_reference_of_another_version_gives_way_to_a_pull_of_the_pinned_one(monkeypatch, tmp_path):
    without_helm(monkeypatch, tmp_path, chart_files(tmp_path / "reference", "SOURCE.md", "tag 4.3.3"))
    fake_helm(tmp_path)
    assert load_chart("4.4.0", "unused") == ({"b": 2}, {})
    assert chart_version(tmp_path / "cache" / "charts" / "jupyterhub-4.4.0" / "jupyterhub") == "4.4.0"


def test_a_chart_version_other_than_the_references_fails_the_preview_naming_both(monkeypatch, tmp_path):

    without_helm(monkeypatch, tmp_path, chart_files(tmp_path / "reference", "SOURCE.md", "tag 4.3.3"))
    with pytest.raises(ConfigError, match="is chart 4.3.3, not the pinned 4.4.0") as e:
        parse(with_(jupyterhub={"chartVersion": "4.4.0"}))
    assert e.value.key == "jupyterhub.chartVersion"


def test_a_stack_without_jupyterhub_needs_no_chart(monkeypatch, tmp_path):

    without_helm(monkeypatch, tmp_path)
    assert parse(with_(components={"jupyterhub": False})).jupyterhub.chart is None


def test_the_stack_config_reads_values_and_file_and_knows_when_they_are_secret(tmp_path):

    (tmp_path / "v.yaml").write_text("cull: {timeout: 60}\n")
    hub = {"chartVersion": helm.VERSION, "values": {"cull": {"every": 30}}, "valuesFile": "v.yaml"}
    for secret in (set(), {"jupyterhub"}):
        cfg = parse(with_(jupyterhub=hub), secret, str(tmp_path))
        assert cfg.jupyterhub.values == {"cull": {"timeout": 60, "every": 30}}
        assert cfg.jupyterhub.values_secret == bool(secret)
    with pytest.raises(ConfigError, match="did you mean 'jupyterhub.values'"):
        parse(with_(jupyterhub={"chartVersion": helm.VERSION, "value": {}}))


# Through the whole program (Pulumi mocks), as `pulumi preview` runs it.

def release_values(result):
    return result.one("kubernetes:helm.sh/v3:Release").plain["values"]


def test_admins_of_the_directory_are_fine():  # the control of the admin case below
    result = run("dev", jupyterhub={"chartVersion": helm.VERSION,
                                    "values": {"hub": {"config": {"Authenticator": {"admin_users": ["alice"]}}}}})
    assert release_values(result)["hub"]["config"]["Authenticator"]["admin_users"] == ["alice"]


def test_stack_values_and_file_reach_the_release(tmp_path):
    (tmp_path / "hub.yaml").write_text("singleuser: {memory: {limit: 2G}, cpu: {limit: 1}}\n")
    result = run("dev", jupyterhub={"chartVersion": helm.VERSION, "valuesFile": str(tmp_path / "hub.yaml"),
                                    "values": {"singleuser": {"memory": {"limit": "3G"}}}})
    singleuser = release_values(result)["singleuser"]
    assert singleuser["memory"] == {"limit": "3G"} and singleuser["cpu"] == {"limit": 1}
    assert singleuser["storage"]["type"] == "static" and "SLURM_TOKEN_URL" in singleuser["extraEnv"]


@pytest.mark.parametrize("user, key", [
    ({"singleuser": {"cpu": {"limit": "two"}}}, "jupyterhub.values.singleuser.cpu.limit"),
    ({"singleuser": {"fsGid": 100}}, "jupyterhub.values.singleuser.fsGid"),
    ({"hub": {"config": {"Authenticator": {"admin_users": ["alice", "carol"]}}}},
     "jupyterhub.values.hub.config.Authenticator.admin_users"),
], ids=["schema", "owned", "admin outside the directory"])
def test_bad_stack_values_fail_the_preview(user, key):
    with pytest.raises(ConfigError) as e:
        run("dev", jupyterhub={"chartVersion": helm.VERSION, "values": user})
    assert e.value.key == key


def test_a_value_the_pinned_chart_refuses_fails_the_preview():
    """proxy.chp.command passed a check against a newer chart's schema; the pinned chart's refuses it (at install)."""
    with pytest.raises(ConfigError, match="is not a value of the JupyterHub chart") as e:
        run("dev", jupyterhub={"chartVersion": helm.VERSION, "values": {"proxy": {"chp": {"command": ["chp"]}}}})
    assert e.value.key == "jupyterhub.values.proxy.chp.command"
    run("dev", jupyterhub={"chartVersion": helm.VERSION, "values": {"proxy": {"chp": {"extraCommandLineFlags": []}}}})


@pytest.mark.parametrize("user, fails", [({"singleuser": {"fsGid": 100}}, True),
                                         ({"singleuser": {"cpu": {"limit": "two"}}}, True),
                                         ({"singleuser": {"cpu": {"limit": 2}}}, False)],
                         ids=["owned", "schema", "control"])
def test_bad_stack_values_fail_before_any_resource_is_made(monkeypatch, user, fails):
    """`pulumi up` without a preview must not create the rest of the stack before it fails."""
    from tests.unit import harness

    made = []
    new_resource = harness.Mocks.new_resource
    monkeypatch.setattr(harness.Mocks, "new_resource", lambda self, args: made.append(args.name) or new_resource(self, args))
    if fails:
        with pytest.raises(ConfigError):
            run("dev", jupyterhub={"chartVersion": helm.VERSION, "values": user})
        assert made == []
    else:
        run("dev", jupyterhub={"chartVersion": helm.VERSION, "values": user})
        assert "jupyterhub-release" in made


def test_values_of_a_secret_jupyterhub_key_stay_secret():
    """Under mocks a secret anywhere in a value marks all of it, so this shows no leak, not the granularity."""
    from tests.unit.harness import is_secret, run_stack
    from tests.unit.stacks import ROOT, stack_values

    jupyterhub = {"chartVersion": helm.VERSION,
                  "values": {"hub": {"config": {"GitHubOAuthenticator": {"client_secret": SECRET}}}}}
    result = run_stack(stack_values("dev", jupyterhub=jupyterhub), {"jupyterhub"}, str(ROOT))
    release = result.one("kubernetes:helm.sh/v3:Release")
    assert is_secret(release.inputs["values"]) and SECRET in json.dumps(release.plain["values"])
    assert SECRET not in json.dumps(result.outputs, default=str)
    for r in result.resources:
        if r is not release:
            assert SECRET not in json.dumps(r.plain, default=str), f"{r.name} holds the user's secret"
