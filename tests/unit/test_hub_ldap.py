"""The hub side of the site's LDAP directory (config `ldap`, issue 23): logins through jupyterhub-ldapauthenticator
2.0.2 (the official hub image's) with the stack's `ldap` settings, the bind password kept secret, and each user's ids
looked up at spawn by the hook hub.extraConfig.slurmUsers renders. Pure checks of the rendered values and code;
tests/images/test_hub_kubespawner.py runs both in the tests' hub image against a real slapd."""

from __future__ import annotations

import asyncio
import json
import os
import re
from types import SimpleNamespace

import pytest

from components import chart_values, directory, ldap
from components.errors import ConfigError
from components.jupyterhub import (
    DIRECTORY_HOME_WAIT,
    DIRECTORY_VOLUME,
    DIRECTORY_WRITE,
    HOME_WAIT_S,
    HOMES_MOUNT,
    LDAP_AUTHENTICATOR,
    HubLdap,
    check_user_values,
    hub_ldap_extra_config,
    ldap_authenticator_config,
)
from tests import helm
from tests.e2e import hub_config
from tests.unit.harness import is_secret
from tests.unit.hub_samples import HubConfig, sample_values
from tests.unit.stacks import run_values, stack_values

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SETTINGS = ldap.Settings(uri="ldaps://ldap.example.org:1636 ldaps://ldap2.example.org", base_dn="dc=example,dc=org",
                         bind_dn="cn=hub,ou=services,dc=example,dc=org", ca=PEM,
                         user_filter="(!(loginShell=/usr/sbin/nologin))", group_filter="(cn=hpc*)")
HUB_LDAP = HubLdap(settings=SETTINGS, bind_password="s3cret", login_group="hpcusers")
RELEASE = "kubernetes:helm.sh/v3:Release"


def ldap_values(hub_ldap: HubLdap = HUB_LDAP) -> dict:
    return sample_values(users=(), groups={}, hub_ldap=hub_ldap)


def authenticator(values: dict) -> dict:
    return values["hub"]["config"]["LDAPAuthenticator"]


def test_logins_check_the_directory_with_ldapauthenticator():
    config = ldap_values()["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == LDAP_AUTHENTICATOR == "ldapauthenticator.LDAPAuthenticator"
    assert "SharedPasswordAuthenticator" not in config, "no generated password: each user's own, in the directory"
    # Nobody by name: the directory (and the login group) decides; never whoever the hub's database still has.
    assert config["Authenticator"] == {"allowed_users": [], "allow_existing_users": False}
    auth = config["LDAPAuthenticator"]
    # The first server of ldap.uri (ldapauthenticator takes one), TLS from its first byte, the site's CA demanded.
    assert (auth["server_address"], auth["server_port"], auth["tls_strategy"]) == ("ldap.example.org", 1636,
                                                                                   "on_connect")
    assert auth["tls_kwargs"] == {"ca_certs_data": PEM, "validate": 2}  # ssl.CERT_REQUIRED
    # The login name looked up as a posixAccount uid (with ldap.userFilter), bound as the bind DN, then the password
    # checked by binding as the entry found.
    assert auth["lookup_dn"] is True and auth["user_search_base"] == "dc=example,dc=org"
    assert (auth["user_attribute"], auth["lookup_dn_user_dn_attribute"]) == ("uid", "uid")
    assert auth["lookup_dn_search_filter"].format(login_attr="uid", login="alice") == (
        "(&(objectClass=posixAccount)(!(loginShell=/usr/sbin/nologin))(uid=alice))")
    assert (auth["lookup_dn_search_user"], auth["lookup_dn_search_password"]) == (SETTINGS.bind_dn, "s3cret")
    # loginGroup: exactly that posixGroup (with ldap.groupFilter) lists the user, and then anyone who passed is let in.
    assert auth["search_filter"].format(userattr="uid", username="alice") == (
        "(&(objectClass=posixGroup)(cn=hpc*)(cn=hpcusers)(memberUid=alice))")
    assert auth["allow_all"] is True
    # Only names the static list could hold log in (a name KubeSpawner would change would get another home).
    assert re.match(auth["valid_username_regex"], "christopher") and not re.match(auth["valid_username_regex"],
                                                                                    "john.doe")


@pytest.mark.parametrize("uri, start_tls, expected", [
    ("ldap://ldap.example.org", False, ("ldap.example.org", 389, "insecure")),
    ("ldap://ldap.example.org:3389", True, ("ldap.example.org", 3389, "before_bind")),
    ("ldaps://[fd00::5]", False, ("fd00::5", 636, "on_connect")),
])
def test_the_server_and_its_tls_follow_the_first_uri(uri, start_tls, expected):
    settings = ldap.Settings(uri=uri, base_dn="dc=x", start_tls=start_tls, ca=PEM if start_tls else None)
    auth = ldap_authenticator_config(HubLdap(settings=settings))
    assert (auth["server_address"], auth["server_port"], auth["tls_strategy"]) == expected
    assert ("tls_kwargs" in auth) == settings.tls
    # Anonymous: no lookup account; no login group: no group search.
    assert not {"lookup_dn_search_user", "lookup_dn_search_password", "search_filter"} & set(auth)


def test_braces_in_a_filter_reach_the_directory_as_written():
    settings = ldap.Settings(uri="ldap://x", base_dn="dc=x", user_filter="(description={hpc})")
    auth = ldap_authenticator_config(HubLdap(settings=settings))
    assert auth["lookup_dn_search_filter"].format(login_attr="uid", login="bob") == (
        "(&(objectClass=posixAccount)(description={hpc})(uid=bob))")


def test_ldap_values_pass_the_chart_schema_and_the_tests_hub_maps_them():
    defaults, schema = helm.chart()
    values = json.loads(json.dumps(ldap_values()))
    chart_values.check_schema(helm.helm_merge(defaults, values), schema)
    hub_config.check_mapped(values)
    settings = dict(hub_config.settings(helm.helm_merge(defaults, values)))
    assert settings["LDAPAuthenticator"] == authenticator(values)
    assert settings["extraConfig:slurmUsers"] == values["hub"]["extraConfig"]["slurmUsers"]


def test_the_bind_password_reaches_the_release_only_as_a_secret():
    values = stack_values("dev", users=None, groups=None, jupyter={"user": "alice"},
                          ldap={"uri": "ldap://ldap.example.org", "baseDn": "dc=example,dc=org",
                                "bindDn": "cn=nslcd,dc=example,dc=org", "bindPassword": "s3cret-pw",
                                "loginGroup": "hpcusers"})
    result = run_values(values, {"ldap"})
    release = result.one(RELEASE)
    # Secret as a whole in the Release's inputs (and its state); the chart keeps its values in the hub's Secret.
    assert is_secret(release.inputs["values"])
    assert authenticator(release.plain["values"])["lookup_dn_search_password"] == "s3cret-pw"
    assert "s3cret-pw" not in release.plain["values"]["hub"]["extraConfig"]["slurmUsers"]
    assert authenticator(release.plain["values"])["search_filter"].startswith("(&(objectClass=posixGroup)(cn=hpcusers)")
    assert "jupyterhubPassword" not in result.outputs, "no generated password with the directory"
    assert "an account of the site's directory" in result.outputs["jupyterhubAccess"][0]
    # Control: without ldap the generated password, no LDAP section.
    plain = run_values(stack_values("dev"), set())
    assert "LDAPAuthenticator" not in plain.one(RELEASE).plain["values"]["hub"]["config"]
    assert "jupyterhubPassword" in plain.outputs


def test_another_authenticator_of_the_users_values_is_kept_and_the_directorys_settings_are_the_programs():
    chart = helm.chart()
    github = {"hub": {"config": {"JupyterHub": {"authenticator_class": "github"},
                                 "GitHubOAuthenticator": {"allowed_organizations": ["acme"]},
                                 "LDAPAuthenticator": {"auth_state_attributes": ["mail"]}}}}
    check_user_values(chart, github, (), hub_ldap=HUB_LDAP)  # the program's own admin check needs `users`: skipped
    merged = chart_values.with_user_values(ldap_values(), github, *chart)
    assert merged["hub"]["config"]["JupyterHub"]["authenticator_class"] == "github"
    # The spawn hook still looks each user up in the directory, whichever authenticator logs them in.
    assert merged["hub"]["extraConfig"]["slurmUsers"] == hub_ldap_extra_config(SETTINGS)
    for key in ("server_address", "lookup_dn_search_password", "search_filter", "allow_all"):
        with pytest.raises(ConfigError, match=rf"jupyterhub\.values\.hub\.config\.LDAPAuthenticator\.{key}': is set by "
                                              "this program: logins check the site's directory"):
            check_user_values(chart, {"hub": {"config": {"LDAPAuthenticator": {key: "x"}}}}, (), hub_ldap=HUB_LDAP)
    with pytest.raises(ConfigError, match=r"LDAPAuthenticator': is set by this program"):
        check_user_values(chart, {"hub": {"config": {"LDAPAuthenticator": None}}}, (), hub_ldap=HUB_LDAP)
    # Control: without ldap the section is the user's.
    check_user_values(chart, {"hub": {"config": {"LDAPAuthenticator": {"server_address": "x"}}}},
                      (directory.User("alice", 2001, 2001),))


def hook_config(password="s3cret") -> HubConfig:
    """`c` after the chart's hub ran hub.config (the LDAPAuthenticator section) and then hub.extraConfig."""
    c = HubConfig()
    c["LDAPAuthenticator"].update(ldap_authenticator_config(HubLdap(settings=SETTINGS, bind_password=password)))
    exec(hub_ldap_extra_config(SETTINGS), {"c": c})
    return c


def spawner_for(name: str) -> SimpleNamespace:
    return SimpleNamespace(user=SimpleNamespace(name=name), image="registry.example/nb:1",
                           init_containers=[{"name": "site-init"}], volumes={"home": {"name": "home"}},
                           volume_mounts={"home": {"name": "home"}})


def test_the_spawn_hook_looks_each_user_up_in_the_directory_and_kubespawner_takes_the_ids_it_found():
    c = hook_config()
    ks = c.KubeSpawner
    hook_globals = ks.pre_spawn_hook.__globals__
    directory_settings = hook_globals["SLURM_DIRECTORY"]
    assert directory_settings["uris"] == ["ldaps://ldap.example.org:1636", "ldaps://ldap2.example.org"]
    assert (directory_settings["base_dn"], directory_settings["bind_dn"], directory_settings["ca"]) == (
        SETTINGS.base_dn, SETTINGS.bind_dn, PEM)
    assert (directory_settings["min_id"], directory_settings["max_id"]) == (directory.MIN_ID, directory.MAX_ID)
    assert (directory_settings["connect_timeout_s"], directory_settings["timeout_s"]) == (
        ldap.BIND_TIMELIMIT_S, ldap.TIMELIMIT_S), "nslcd's timeouts: a directory that is down fails a spawn fast"
    assert hook_globals["SLURM_DIRECTORY_PASSWORD"] == "s3cret", "read from hub.config, not written in the code"
    assert "s3cret" not in hub_ldap_extra_config(SETTINGS)

    looked_up = {"uid": 10001, "gid": 10001, "supplemental_gids": [13000],
                 "passwd": "alice:x:10001:10001::/home/alice:/bin/bash\n",
                 "group": "alice:x:10001:\nphysics:x:13000:alice\n"}
    hook_globals["slurm_directory_ids"] = lambda name: {"alice": looked_up}[name]
    spawner = spawner_for("alice")
    for _ in range(2):  # a server started again: the same pod, nothing added twice
        asyncio.run(ks.pre_spawn_hook(spawner))
    assert (ks.uid(spawner), ks.gid(spawner), ks.fs_gid(spawner), ks.supplemental_gids(spawner)) == (
        10001, 10001, 10001, [13000])
    # The pod's own passwd and group: written by an init container as the user, read-only in the server's container.
    [init] = [i for i in spawner.init_containers if i["name"] == DIRECTORY_VOLUME]
    assert init["image"] == spawner.image and init["command"] == ["/bin/sh", "-c", DIRECTORY_WRITE]
    assert {e["name"]: e["value"] for e in init["env"]} == {"SLURM_DIRECTORY_PASSWD": looked_up["passwd"],
                                                            "SLURM_DIRECTORY_GROUP": looked_up["group"],
                                                            "SLURM_HOME": f"{HOMES_MOUNT}/alice"}
    assert init["securityContext"]["runAsUser"] == 10001 and init["securityContext"]["runAsNonRoot"] is True
    assert spawner.volumes == {"home": {"name": "home"}, DIRECTORY_VOLUME: {"name": DIRECTORY_VOLUME,
                                                                           "emptyDir": {"sizeLimit": "1Mi"}}}
    assert spawner.volume_mounts[DIRECTORY_VOLUME] == {"name": DIRECTORY_VOLUME, "mountPath": directory.EXTRAUSERS_DIR,
                                                       "readOnly": True}
    assert [i["name"] for i in spawner.init_containers] == ["site-init", DIRECTORY_VOLUME]


def test_with_the_chart_mounting_the_home_the_init_container_then_waits_for_it():
    """With the chart's `storage.type: static` mount (z2jh 4.3.3 files/hub/jupyterhub_config.py: volume `home`,
    mountPath homeMountPath, subPath {username}) the init container mounts that volume whole and read-only (no subPath,
    which the kubelet would make as root) and waits for the user's home there; the control above: without a home
    mount, only the files are written."""
    c = hook_config()
    hook_globals = c.KubeSpawner.pre_spawn_hook.__globals__
    hook_globals["slurm_directory_ids"] = lambda name: {"uid": 10002, "gid": 10002, "supplemental_gids": [],
                                                        "passwd": "", "group": ""}
    spawner = spawner_for("bob")
    spawner.volume_mounts = [{"mountPath": "/home/{username}", "name": "home", "subPath": "{username}"}]
    asyncio.run(c.KubeSpawner.pre_spawn_hook(spawner))
    [init] = [i for i in spawner.init_containers if i["name"] == DIRECTORY_VOLUME]
    assert init["command"] == ["/bin/sh", "-c", f"{DIRECTORY_WRITE} && {DIRECTORY_HOME_WAIT}"]
    assert init["volumeMounts"][1:] == [{"name": "home", "mountPath": HOMES_MOUNT, "readOnly": True}]
    assert {e["name"]: e["value"] for e in init["env"]}["SLURM_HOME"] == f"{HOMES_MOUNT}/bob"


def test_the_home_wait_ends_when_the_home_is_writable_and_fails_saying_so_when_it_never_is(tmp_path):
    """DIRECTORY_HOME_WAIT run by a real sh: it returns once the home exists and is the user's (made while it waits),
    and with its limit lowered to 1 s fails with the message when it does not, or when the home is someone else's."""
    import subprocess

    home = tmp_path / "bob"
    env = {"PATH": "/usr/bin:/bin", "SLURM_HOME": str(home)}
    waiting = subprocess.Popen(["/bin/sh", "-c", DIRECTORY_HOME_WAIT], env=env, stderr=subprocess.PIPE, text=True)
    assert waiting.poll() is None  # no home yet: still waiting
    home.mkdir()
    assert waiting.wait(timeout=10) == 0
    short = DIRECTORY_HOME_WAIT.replace(f"-ge {HOME_WAIT_S} ", "-ge 1 ")
    assert "{" not in DIRECTORY_HOME_WAIT and short != DIRECTORY_HOME_WAIT  # KubeSpawner formats the init container
    failed = subprocess.run(["/bin/sh", "-c", short], env={**env, "SLURM_HOME": str(tmp_path / "eve")},
                            capture_output=True, text=True, timeout=10)
    assert failed.returncode == 1 and "is not made (as yours) after" in failed.stderr, failed
    other = tmp_path / "mallory"  # a directory of another uid's (the tests run as root, as the README's commands)
    other.mkdir()
    os.chown(other, 4242, 4242)
    theirs = subprocess.run(["/bin/sh", "-c", short], env={**env, "SLURM_HOME": str(other)}, capture_output=True,
                            text=True, timeout=10)
    assert theirs.returncode == 1, theirs


def test_the_init_containers_command_writes_the_users_files_as_given(tmp_path):
    """DIRECTORY_WRITE run by a real sh, as the init container runs it, into a directory standing for the volume."""
    import subprocess

    command = DIRECTORY_WRITE.replace("/directory/", f"{tmp_path}/")
    env = {"PATH": "/usr/bin:/bin", "SLURM_DIRECTORY_PASSWD": "bob:x:10002:10002::/home/bob:/bin/bash\n",
           "SLURM_DIRECTORY_GROUP": "bob:x:10002:\n"}
    subprocess.run(["/bin/sh", "-c", command], env=env, check=True)
    assert (tmp_path / "passwd").read_text() == env["SLURM_DIRECTORY_PASSWD"]
    assert (tmp_path / "group").read_text() == env["SLURM_DIRECTORY_GROUP"]
    assert {oct((tmp_path / f).stat().st_mode & 0o777) for f in ("passwd", "group")} == {"0o644"}


def test_with_the_directory_no_static_user_files_reach_the_pods():
    files = ldap_values()["singleuser"]["extraFiles"]
    assert files and not [k for k in files if k.startswith("slurm-users-")]
    assert [k for k in sample_values()["singleuser"]["extraFiles"] if k.startswith("slurm-users-")]  # control


def test_a_sites_own_authenticator_class_is_left_as_it_is_and_an_anonymous_directory_has_no_password():
    c = HubConfig()
    c.JupyterHub.authenticator_class = "github"
    exec(hub_ldap_extra_config(SETTINGS), {"c": c})
    assert c.JupyterHub.authenticator_class == "github"
    assert c.KubeSpawner.pre_spawn_hook.__globals__["SLURM_DIRECTORY_PASSWORD"] is None
    assert "LDAPAuthenticator" in c and not vars(c.LDAPAuthenticator), "reading the password added nothing"


@pytest.mark.parametrize("name, words", [("munge", "the name of a system user of this cluster's images"),
                                         ("john.doe", "not a name this cluster's users can have"),
                                         ("a" * 33, "not a name this cluster's users can have")])
def test_names_the_static_list_refuses_are_refused_at_spawn_before_the_directory_is_asked(name, words):
    c = hook_config()
    hook_globals = c.KubeSpawner.pre_spawn_hook.__globals__
    hook_globals["slurm_directory_connection"] = lambda *a: pytest.fail("the directory was asked")
    with pytest.raises(hook_globals["SlurmDirectoryError"], match=words):
        hook_globals["slurm_directory_ids"](name)


def test_without_the_hooks_lookup_no_server_starts():
    """A user's own hub.extraConfig that replaced the pre_spawn_hook cannot start servers as the chart's uid 1000."""
    ks = hook_config().KubeSpawner
    for trait in ("uid", "gid", "fs_gid", "supplemental_gids"):
        with pytest.raises(ValueError, match="alice's ids were not looked up in the site's directory"):
            getattr(ks, trait)(spawner_for("alice"))


def test_the_static_directory_keeps_its_own_config_without_ldap():
    values = sample_values()
    assert "pre_spawn_hook" not in values["hub"]["extraConfig"]["slurmUsers"]
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] == "shared-password"
