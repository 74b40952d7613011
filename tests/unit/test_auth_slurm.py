"""The stack's own Slurm with AuthType=auth/slurm (config authType, issue 21): Slurm's own authentication with a
generated slurm.key instead of munge, in the rendered files, the config's rules and, under Pulumi mocks, the key
Secret and the pods that mount it. What the daemons do with it: tests/e2e/test_10_distributed.py (the committed
`dist` stack runs it) and tests/images/test_single_node_auth_slurm.py."""

import pytest

from components.config import ConfigError, parse
from components.keys import SLURM_KEY_FILE
from components.slurm_files import AUTH_SLURM, RUN_DIR, parse_slurm_conf, render_slurm_files
from tests.unit.config_values import EXISTING, MUNGE, with_
from tests.unit.dist_stack import dist, pod
from tests.unit.stacks import run

RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
SECRET = "kubernetes:core/v1:Secret"
STATEFULSET = "kubernetes:apps/v1:StatefulSet"


def files(version: str = "26.05", **kw) -> dict[str, str]:
    return render_slurm_files("c", version, 2, "c-slurm-0", db_password="password1", **kw)


def test_auth_slurm_signs_requests_and_job_credentials_with_the_one_key():
    rendered = files(auth_type=AUTH_SLURM)
    conf = parse_slurm_conf(rendered["slurm.conf"])
    assert (conf["authtype"], conf["credtype"], conf["authalttypes"]) == ("auth/slurm", "cred/slurm", "auth/jwt")
    assert parse_slurm_conf(rendered["slurmdbd.conf"])["authtype"] == "auth/slurm"
    # Control: munge, the default, has no CredType line (Slurm's default cred/munge).
    munge = files()
    assert parse_slurm_conf(munge["slurm.conf"])["authtype"] == "auth/munge"
    assert "credtype" not in parse_slurm_conf(munge["slurm.conf"])
    assert parse_slurm_conf(munge["slurmdbd.conf"])["authtype"] == "auth/munge"


@pytest.mark.parametrize("version, auth, error", [("24.11", AUTH_SLURM, "Slurm 24.11 does not run auth/slurm"),
                                                  ("26.05", "auth/none", "bad auth_type 'auth/none'")])
def test_the_renderer_refuses_what_cannot_run(version, auth, error):
    with pytest.raises(ValueError, match=error):
        files(version, auth_type=auth)


def test_config_takes_auth_slurm_on_26_05_and_names_the_version_otherwise():
    assert parse(with_(authType="auth/slurm", slurmVersion="26.05")).auth_type == AUTH_SLURM
    with pytest.raises(ConfigError) as e:
        parse(with_(authType="auth/slurm", slurmVersion="24.11"))
    assert e.value.key == "authType" and "slurmVersion is 24.11" in str(e.value) and "set slurmVersion to 26.05" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse(with_(authType="munge"))
    assert e.value.key == "authType"


def test_an_existing_clusters_auth_type_is_its_slurm_confs(tmp_path):
    (tmp_path / "slurm.conf").write_text("ClusterName=hpc\nSlurmctldHost=ctl(10.0.0.1)\nAuthType=auth/munge\n"
                                         "AuthAltTypes=auth/jwt\n")
    with pytest.raises(ConfigError) as e:
        parse(with_(**EXISTING, authType="auth/slurm", slurmVersion="26.05"), {"mungeKey", "jwtKey"}, str(tmp_path))
    assert e.value.key == "authType" and "existing cluster's AuthType is auth/munge" in str(e.value)


def test_the_stack_generates_a_slurm_key_and_no_munge_key():
    result = dist()  # the committed dist stack: 26.05, auth/slurm
    generated = {r.name: r.plain["length"] for r in result.of_type(RANDOM_BYTES)}
    assert generated == {"slurm-keys-slurm": 1024, "slurm-keys-jwt": 32}
    assert set(result.one(SECRET, "slurm-keys-munge").plain["data"]) == {"slurm.key"}
    # Control: with munge the same stack makes a munge key.
    munge = run("dist", authType="auth/munge")
    assert {r.name for r in munge.of_type(RANDOM_BYTES)} == {"slurm-keys-munge", "slurm-keys-jwt"}


def shares_the_run_directory_with_the_exporter(spec: dict) -> None:
    """The pod's exporter mounts the daemons' run directory (their credential socket), read-only, and no key."""
    containers = {c["name"]: c for c in spec["containers"]}
    assert {"name": "sack-socket", "emptyDir": {}} in spec["volumes"]
    assert {"name": "sack-socket", "mountPath": RUN_DIR} in containers["slurm"]["volumeMounts"]
    mounts = {m["name"]: m for m in containers["slurm-exporter"]["volumeMounts"]}
    assert mounts.keys() == {"exporter-config", "sack-socket"}, "no key"
    assert mounts["sack-socket"] == {"name": "sack-socket", "mountPath": RUN_DIR, "readOnly": True}
    assert "munge-socket" not in {v["name"] for v in spec["volumes"]}


def test_the_exporter_asks_the_daemons_credential_socket_and_holds_no_key():
    shares_the_run_directory_with_the_exporter(pod(dist(), "slurmctld"))
    single = run("cluster", slurmVersion="26.05", authType="auth/slurm")  # the single node
    spec = single.one(STATEFULSET, "single-node-statefulset").plain["spec"]["template"]["spec"]
    shares_the_run_directory_with_the_exporter(spec)
    keys = next(v for v in spec["volumes"] if v["name"] == "slurm-keys")["projected"]["sources"]
    assert {i["path"] for s in keys for i in s["secret"]["items"]} == {SLURM_KEY_FILE, "jwt_hs256.key"}


def test_a_munge_key_with_auth_slurm_is_refused():
    with pytest.raises(ConfigError) as e:
        parse(with_(authType="auth/slurm", slurmVersion="26.05", mungeKey=MUNGE), {"mungeKey"})
    assert e.value.key == "mungeKey" and "uses no munge key" in str(e.value)
