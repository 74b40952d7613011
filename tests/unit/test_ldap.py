"""The site's LDAP directory (config `ldap`, components/ldap.py): what preview accepts and refuses, naming the key,
and the nslcd.conf the images run with."""

import pytest

from components import ldap
from components.config import ConfigError, parse
from tests.unit.config_values import with_
from tests.unit.harness import is_secret
from tests.unit.stacks import run_values, stack_values

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
LDAP = {"uri": "ldaps://ldap.example.org", "baseDn": "dc=example,dc=org",
        "bindDn": "cn=nslcd,ou=services,dc=example,dc=org", "bindPassword": "s3cret pass", "caFile": "ca.pem"}


def ldap_config(**changes):
    """MINIMAL with `ldap` (LDAP with `changes`; None removes a field) and no static users, JupyterLab as alice."""
    fields = {k: v for k, v in {**LDAP, **changes}.items() if v is not None}
    return with_(ldap=fields, users=None, jupyter={"user": "alice"})


@pytest.fixture
def project(tmp_path):
    (tmp_path / "ca.pem").write_text(PEM)
    (tmp_path / "not-a-cert.pem").write_text("hello\n")
    return str(tmp_path)


def test_ldap_parses_with_its_secret_password_and_the_ca_read_from_its_file(project):
    cfg = parse(ldap_config(userFilter="(!(loginShell=/usr/sbin/nologin))", loginGroup="hpcusers"), {"ldap"}, project)
    assert cfg.ldap.uri == "ldaps://ldap.example.org" and cfg.ldap.ca_file == PEM
    assert cfg.ldap.login_group == "hpcusers" and cfg.users == () and cfg.jupyter_user == "alice"
    assert cfg.ldap.settings.tls and cfg.ldap.settings.ca == PEM
    assert not isinstance(cfg.ldap.bind_password, str)  # a Pulumi secret Output


def test_anonymous_plain_ldap_needs_no_password_or_ca(project):
    cfg = parse(ldap_config(uri="ldap://10.0.0.5:389 ldap://ldap2", bindDn=None, bindPassword=None, caFile=None),
                set(), project)
    assert not cfg.ldap.settings.tls and cfg.ldap.bind_dn is None


@pytest.mark.parametrize("changes, key, words", [
    ({"uri": "http://ldap.example.org"}, "ldap.uri", "is not ldap://HOST[:PORT] or ldaps://HOST[:PORT]"),
    ({"uri": "ldaps://a ldap://b"}, "ldap.uri", "mixes ldap:// and ldaps://"),
    ({"uri": "ldaps://ldap:70000"}, "ldap.uri", "has no valid port"),
    ({"uri": None}, "ldap.uri", "is missing"),
    ({"baseDn": "example.org"}, "ldap.baseDn", "'example.org' is not a distinguished name"),
    ({"bindDn": "cn=nslcd,,dc=org"}, "ldap.bindDn", "is not a distinguished name"),
    ({"bindPassword": None}, "ldap.bindPassword", "is missing while ldap.bindDn is set"),
    ({"bindDn": None}, "ldap.bindDn", "is missing while ldap.bindPassword is set"),
    ({"bindPassword": "a\nb"}, "ldap.bindPassword", "spans lines"),
    ({"caFile": None}, "ldap.caFile", "is missing but the directory is reached over TLS"),
    ({"caFile": "missing.pem"}, "ldap.caFile", "cannot read 'missing.pem'"),
    ({"caFile": "not-a-cert.pem"}, "ldap.caFile", "holds no PEM certificate"),
    ({"uri": "ldap://ldap.example.org"}, "ldap.caFile", "no TLS would use it"),
    ({"startTls": True}, "ldap.startTls", "ldaps://, which is TLS already"),
    ({"userFilter": "uid=alice"}, "ldap.userFilter", "is not enclosed in parentheses"),
    ({"groupFilter": "(a=b)(c=d)"}, "ldap.groupFilter", "is not one filter"),
    ({"userFilter": "(&(a=b)"}, "ldap.userFilter", "leaves a parenthesis open"),
    ({"loginGroup": "HPC Users"}, "ldap.loginGroup", "is not a valid name"),
    ({"sizeLimit": 5}, "ldap.sizeLimit", "unknown field"),
])
def test_bad_ldap_values_name_their_key(project, changes, key, words):
    with pytest.raises(ConfigError) as err:
        parse(ldap_config(**changes), {"ldap"}, project)
    assert err.value.key == key and words in str(err.value) and "Fix:" in str(err.value), str(err.value)


def test_starttls_on_ldap_needs_the_ca_and_uses_it(project):
    cfg = parse(ldap_config(uri="ldap://ldap.example.org", startTls=True), {"ldap"}, project)
    assert cfg.ldap.settings.tls
    with pytest.raises(ConfigError) as err:
        parse(ldap_config(uri="ldap://ldap.example.org", startTls=True, caFile=None), {"ldap"}, project)
    assert err.value.key == "ldap.caFile"


def test_the_bind_password_in_plain_text_is_refused(project):
    with pytest.raises(ConfigError) as err:
        parse(ldap_config(), set(), project)
    assert err.value.key == "ldap.bindPassword" and "plain text" in str(err.value)


@pytest.mark.parametrize("changes, key", [
    ({"users": [{"name": "alice", "uid": 2001}]}, "users"),
    ({"users": None, "groups": {"physics": 3000}}, "groups"),
    ({"users": None, "jupyter": {}}, "jupyter.user"),
])
def test_ldap_is_the_one_source_of_users(project, changes, key):
    values = ldap_config()
    values.update({k: v for k, v in with_(**changes).items() if k in changes})
    for k, v in changes.items():
        if v is None:
            values.pop(k, None)
    with pytest.raises(ConfigError) as err:
        parse(values, {"ldap"}, project)
    assert err.value.key == key, str(err.value)
    # Control: without ldap the same static directory is accepted (or, for jupyter.user, defaults to the first user).
    if key == "users":
        parse(with_(**changes), set(), project)


def test_nslcd_conf_has_the_directory_tls_filters_and_short_timeouts():
    settings = ldap.Settings(uri="ldaps://a.example.org ldaps://b.example.org", base_dn="dc=example,dc=org",
                             bind_dn="cn=nslcd,dc=example,dc=org", ca=PEM, user_filter="(!(loginShell=/bin/false))")
    files = ldap.directory_files(settings, "pw with spaces")
    lines = files[ldap.NSLCD_CONF_FILE].splitlines()
    for line in ("uri ldaps://a.example.org", "uri ldaps://b.example.org", "base dc=example,dc=org",
                 "binddn cn=nslcd,dc=example,dc=org", "bindpw pw with spaces", "ssl on", "tls_reqcert demand",
                 "tls_cacertfile /var/lib/extrausers/ldap-ca.crt",
                 "filter passwd (&(objectClass=posixAccount)(!(loginShell=/bin/false)))",
                 "filter group (&(objectClass=posixGroup))", "nss_min_uid 1001", "bind_timelimit 3", "timelimit 5",
                 "reconnect_retrytime 2"):
        assert line in lines, (line, lines)
    assert files[ldap.CA_FILE] == PEM


def test_plain_anonymous_nslcd_conf_has_no_tls_and_no_bind():
    conf = ldap.render_nslcd_conf(ldap.Settings(uri="ldap://ldap", base_dn="dc=x"), None)
    assert not any(line.split()[0] in ("ssl", "binddn", "bindpw", "tls_cacertfile") for line in conf.splitlines())
    assert ldap.directory_files(ldap.Settings(uri="ldap://ldap", base_dn="dc=x", ca=PEM), None)[ldap.CA_FILE] == ""
    assert "ssl start_tls" in ldap.render_nslcd_conf(
        ldap.Settings(uri="ldap://ldap", base_dn="dc=x", start_tls=True, ca=PEM), None)


def test_nslcd_lists_in_pages_and_puts_every_home_under_the_home_root():
    lines = ldap.render_nslcd_conf(ldap.Settings(uri="ldap://ldap", base_dn="dc=x"), None).splitlines()
    # Paged results (RFC 2696): a server's page limit (AD MaxPageSize 1000) cuts no enumeration short.
    assert "pagesize 1000" in lines, lines
    # nslcd.conf(5) mapping expression: /home/NAME from the entry's uid, as the hub mounts it and homes.sh makes it,
    # whatever its homeDirectory says (/u/dave, or another user's home).
    assert 'map passwd homeDirectory "/home/$uid"' in lines, lines
    # Control: nothing else is mapped (names, ids and shells are the directory's own).
    assert [line for line in lines if line.startswith("map ")] == ['map passwd homeDirectory "/home/$uid"']


def test_a_value_that_would_break_a_line_is_refused():
    with pytest.raises(ValueError):
        ldap.render_nslcd_conf(ldap.Settings(uri="ldap://l", base_dn="dc=x", bind_dn="cn=a,dc=x"), "pw\nuri ldap://evil")


# --- the stack: the Secret and the pods that run nslcd ------------------------------------------------------------
STATEFUL_SET, DEPLOYMENT, SECRET = ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment",
                                    "kubernetes:core/v1:Secret")


def users_volume(workload) -> dict:
    return next(v for v in workload.plain["spec"]["template"]["spec"]["volumes"] if v["name"] == "users")


def test_the_stack_puts_nslcd_conf_in_a_secret_and_in_the_directory_volume_of_the_single_node_and_slurmrestd():
    values = stack_values("cluster", users=None, groups=None, jupyter={"user": "alice"},
                          ldap={"uri": "ldap://ldap.example.org", "baseDn": "dc=example,dc=org",
                                "bindDn": "cn=nslcd,dc=example,dc=org", "bindPassword": "s3cret-pw"})
    result = run_values(values, {"ldap"})
    secret = result.one(SECRET, "directory-ldap")
    assert is_secret(secret.inputs["stringData"])
    assert "bindpw s3cret-pw" in secret.plain["stringData"][ldap.NSLCD_CONF_FILE].splitlines()
    name = secret.plain["metadata"]["name"]
    for workload in (result.one(STATEFUL_SET), result.one(DEPLOYMENT, "slurmrestd-deployment")):
        sources = users_volume(workload)["projected"]["sources"]
        projected = [s["secret"] for s in sources if "secret" in s]
        assert [(s["name"], [(i["key"], i["mode"]) for i in s["items"]]) for s in projected] == [
            (name, [(ldap.NSLCD_CONF_FILE, 0o400), (ldap.CA_FILE, 0o644)])], workload.name
    # Control: without `ldap` no such Secret, and the directory volume is the ConfigMap alone.
    plain = run_values(stack_values("cluster"), set())
    assert not [r for r in plain.of_type(SECRET) if r.name == "directory-ldap"]
    assert "configMap" in users_volume(plain.one(STATEFUL_SET))


def test_the_token_service_checks_the_directory_through_an_nslcd_beside_it_that_alone_gets_the_secret():
    values = stack_values("cluster", users=None, groups=None, jupyter={"user": "alice"},
                          ldap={"uri": "ldap://ldap.example.org", "baseDn": "dc=example,dc=org",
                                "bindDn": "cn=nslcd,dc=example,dc=org", "bindPassword": "s3cret-pw"})
    result = run_values(values, {"ldap"})
    secret = result.one(SECRET, "directory-ldap").plain["metadata"]["name"]
    spec = result.one(DEPLOYMENT, "slurm-token-deployment").plain["spec"]["template"]["spec"]
    service, nslcd = spec["containers"]
    assert {"name": "SLURM_TOKEN_DIRECTORY", "value": "nss"} in service["env"]
    assert nslcd["name"] == "nslcd" and nslcd["args"] == ["nslcd"] and nslcd["image"].split("@")[0].endswith("slurm-client")
    volumes = {v["name"]: v for v in spec["volumes"]}
    holds_secret = {name for name, v in volumes.items()
                    if any(s.get("secret", {}).get("name") == secret for s in v.get("projected", {}).get("sources", []))}
    assert holds_secret == {"users-ldap"}
    assert {m["name"] for m in nslcd["volumeMounts"]} == {"users-ldap", "nslcd"}
    assert "users-ldap" not in {m["name"] for m in service["volumeMounts"]}  # the bind password stays in nslcd's
    assert {"name": "nslcd", "mountPath": "/run/nslcd"} in service["volumeMounts"]
    # Control: without `ldap`, one container reading the directory's file.
    plain = run_values(stack_values("cluster"), set())
    spec = plain.one(DEPLOYMENT, "slurm-token-deployment").plain["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["slurm-token"]
    assert {"name": "SLURM_TOKEN_DIRECTORY", "value": "/var/lib/extrausers/passwd"} in spec["containers"][0]["env"]


def test_jupyterlab_resolves_the_directory_through_a_native_nslcd_sidecar_that_alone_gets_the_secret():
    """JupyterLab's entrypoint looks its user up at start: its nslcd is an init container that Kubernetes keeps
    running (restartPolicy Always) whose startup probe waits for the socket, so the lab's container starts after it."""
    values = stack_values("cluster", users=None, groups=None, jupyter={"user": "christopher"},
                          ldap={"uri": "ldap://ldap.example.org", "baseDn": "dc=example,dc=org",
                                "bindDn": "cn=nslcd,dc=example,dc=org", "bindPassword": "s3cret-pw"})
    result = run_values(values, {"ldap"})
    secret = result.one(SECRET, "directory-ldap").plain["metadata"]["name"]
    spec = result.one(DEPLOYMENT, "jupyter-deployment").plain["spec"]["template"]["spec"]
    [lab] = spec["containers"]
    [nslcd] = spec["initContainers"]
    assert lab["name"] == "jupyterlab" and {"name": "NB_USER", "value": "christopher"} in lab["env"]
    assert nslcd["name"] == "nslcd" and nslcd["args"] == ["nslcd"] and nslcd["image"].split("@")[0].endswith("slurm-client")
    assert nslcd["restartPolicy"] == "Always"
    assert nslcd["startupProbe"]["exec"]["command"] == ["test", "-S", "/run/nslcd/socket"]
    assert nslcd["startupProbe"]["periodSeconds"] == 1
    volumes = {v["name"]: v for v in spec["volumes"]}
    holds_secret = {name for name, v in volumes.items()
                    if any(s.get("secret", {}).get("name") == secret for s in v.get("projected", {}).get("sources", []))}
    assert holds_secret == {"users-ldap"}
    assert volumes["nslcd"] == {"name": "nslcd", "emptyDir": {}}
    assert {m["name"] for m in nslcd["volumeMounts"]} == {"users-ldap", "nslcd"}
    lab_mounts = {m["name"]: m["mountPath"] for m in lab["volumeMounts"]}
    assert "users-ldap" not in lab_mounts  # no bind password, no nslcd.conf in the lab's container
    assert lab_mounts["nslcd"] == "/run/nslcd" and lab_mounts["users"] == "/var/lib/extrausers"
    assert "configMap" in volumes["users"]  # the static directory's (empty) files, without the Secret
    # Control: without `ldap`, the lab alone, no init container, no socket volume, the directory's ConfigMap only.
    plain = run_values(stack_values("cluster"), set())
    spec = plain.one(DEPLOYMENT, "jupyter-deployment").plain["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["jupyterlab"] and not spec.get("initContainers")
    assert {v["name"] for v in spec["volumes"]} == {"slurm-config", "slurm-keys", "users", "home"}
    assert "nslcd" not in {m["name"] for m in spec["containers"][0]["volumeMounts"]}
