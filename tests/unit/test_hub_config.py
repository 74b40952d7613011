"""The end-to-end hub's configuration (tests/e2e/hub_config.py) follows the chart's rules for the program's values:
pure checks of the mapping; tests/images/test_hub_kubespawner.py runs its output through the real KubeSpawner."""

from __future__ import annotations

import json

import pytest

from components import directory
from components.jupyterhub import jupyterhub_values
from tests.e2e import hub_config
from tests.helm import chart, helm_merge
from tests.unit.hub_samples import HubConfig


def program_values(**changes) -> dict:
    values = jupyterhub_values(image_name="registry.example/nb", image_tag="e2e@sha256:" + "ab" * 32,
                               config_files={"slurm.conf": "ClusterName=x\n", "cgroup.conf": "\n"},
                               users=(directory.User("alice", 2001, 2001),), groups={}, home_claim="home-1",
                               token_url="http://tokens:8090/token", hub_password="p" * 32, egress=[],
                               image_pull_secret="pull-1", **changes)
    return json.loads(json.dumps(values))


def merged(values: dict) -> dict:
    return helm_merge(chart()[0], values)


def settings(values: dict) -> dict:
    return dict(hub_config.settings(values))


def test_every_value_the_program_sets_is_mapped():
    hub_config.check_mapped(program_values())


def test_a_value_the_mapping_does_not_know_is_refused_by_name():
    values = program_values()
    values["singleuser"]["storage"] = {"extraVolumes": [{"name": "scratch"}]}
    with pytest.raises(ValueError, match=r"singleuser\.storage\.extraVolumes"):
        hub_config.check_mapped(values)


@pytest.mark.parametrize("fs_gid, expected", [(None, "absent"), (2000, 2000), ("chart default", 100)])
def test_fs_gid_null_leaves_kubespawners_default_as_in_the_chart(fs_gid, expected):
    values = program_values()
    if fs_gid == "chart default":
        values["singleuser"].pop("fsGid", None)  # not given: the chart's values.yaml default (100) stays
    else:
        values["singleuser"]["fsGid"] = fs_gid  # null: Helm removes the key, so no trait is set
    assert settings(merged(values)).get("KubeSpawner.fs_gid", "absent") == expected


def test_the_image_is_name_colon_tag_and_the_command_is_the_value():
    s = settings(merged(program_values()))
    assert s["KubeSpawner.image"] == "registry.example/nb:e2e@sha256:" + "ab" * 32
    assert s["Spawner.cmd"] == "jupyterhub-singleuser"
    assert s["KubeSpawner.uid"] == 1000  # the chart's default: hub.extraConfig.slurmUsers overrides it, after
    assert s["KubeSpawner.allow_privilege_escalation"] is False
    assert s["KubeSpawner.image_pull_secrets"] == ["pull-1"]
    assert s["KubeSpawner.extra_labels"]["app.kubernetes.io/part-of"] == "slurm-cloud-integration"


def test_extra_files_are_one_secret_volume_with_modes_mounted_file_by_file():
    values = merged(program_values())
    s = settings(values)
    files = values["singleuser"]["extraFiles"]
    items = s["KubeSpawner.volumes"]["files"]["secret"]["items"]
    assert s["KubeSpawner.volumes"]["files"]["secret"]["secretName"] == "singleuser"
    assert {i["key"]: i["mode"] for i in items} == {k: f["mode"] for k, f in files.items()}
    mounts = [m for m in s["KubeSpawner.volume_mounts"].values() if m["name"] == "files"]
    assert sorted((m["mountPath"], m["subPath"]) for m in mounts) == sorted(
        (f["mountPath"], k) for k, f in files.items())
    secret = hub_config.singleuser_secret(values, "ns")
    assert secret["data"] == {}
    assert set(secret["stringData"]) == set(files)


def test_dynamic_storage_is_a_claim_per_user_at_the_home_mount():
    values = program_values()
    values["singleuser"]["storage"] = {"type": "dynamic"}  # the chart's default, as a user may still choose it
    s = settings(merged(values))
    assert s["KubeSpawner.storage_pvc_ensure"] is True and s["KubeSpawner.storage_capacity"] == "10Gi"
    home = s["KubeSpawner.volume_mounts"]["volume-{user_server}"]
    assert home["mountPath"] == "/home/jovyan"  # the chart's default homeMountPath
    assert s["KubeSpawner.volumes"]["volume-{user_server}"]["persistentVolumeClaim"]["claimName"] == "{pvc_name}"


def test_static_storage_is_the_shared_claim_by_subpath():
    s = settings(merged(program_values()))
    assert "KubeSpawner.storage_pvc_ensure" not in s
    assert s["KubeSpawner.volumes"]["home"] == {"name": "home", "persistentVolumeClaim": {"claimName": "home-1"}}
    assert s["KubeSpawner.volume_mounts"]["home"] == {"name": "home", "mountPath": "/home/{username}",
                                                     "subPath": "{username}"}


def test_the_environment_is_extra_env_as_given_for_kubespawner_to_expand():
    """The chart hands singleuser.extraEnv to KubeSpawner's `environment`; KubeSpawner 7.0.0 expands {username}."""
    environment = settings(merged(program_values()))["KubeSpawner.environment"]
    assert environment == {"SLURM_TOKEN_URL": "http://tokens:8090/token", "HOME": "/home/{username}"}


def test_extra_config_runs_last_in_key_order():
    values = program_values()
    values["hub"]["extraConfig"]["aaa"] = "c.JupyterHub.admin_access = False"
    entries = hub_config.settings(merged(values))
    assert [t for t, _ in entries if t.startswith("extraConfig:")] == ["extraConfig:aaa", "extraConfig:slurmUsers"]
    assert entries[-1][0] == "extraConfig:slurmUsers"


def test_hub_config_passes_through_last_without_the_secrets_the_chart_seeds():
    values = program_values()
    values["hub"]["config"]["JupyterHub"]["cookie_secret"] = "seeded-by-the-chart"
    entries = hub_config.settings(merged(values))
    sections = dict(e for e in entries if "." not in e[0] and ":" not in e[0])
    assert sections["SharedPasswordAuthenticator"] == {"user_password": "p" * 32}
    assert sections["JupyterHub"]["authenticator_class"] == "shared-password"
    assert "cookie_secret" not in sections["JupyterHub"]
    last_trait = max(i for i, (t, _) in enumerate(entries) if "." in t)
    assert all("." not in t for t, _ in entries[last_trait + 1:])  # after every trait the chart sets


def test_a_hub_config_section_that_is_not_a_class_name_is_refused():
    values = program_values()
    values["hub"]["config"]["loadRoles"] = {}
    with pytest.raises(ValueError, match=r"hub\.config\.loadRoles"):
        hub_config.settings(merged(values))


def test_iptables_cloud_metadata_blocking_is_refused_rather_than_dropped():
    values = program_values()
    values["singleuser"]["cloudMetadata"]["blockWithIptables"] = True
    with pytest.raises(ValueError, match="blockWithIptables"):
        hub_config.settings(merged(values))


def test_the_rendered_configuration_is_python():
    text = hub_config.render(merged(program_values()))
    compile(text, "jupyterhub_config.py", "exec")
    assert "c['SharedPasswordAuthenticator'].update(" in text
    c = HubConfig()
    exec(text, {"get_config": lambda: c})
    assert callable(c.KubeSpawner.uid)  # hub.extraConfig.slurmUsers ran after the chart's uid
