"""An existing cluster with AuthType=auth/slurm (issue 21): its slurm.key (config slurmKey) instead of a munge key,
refused where it cannot work (an older Slurm, the other kind of key, no key), and, under Pulumi mocks, the one key
Secret the check Job and every client mount as /etc/slurm-keys/slurm.key."""

import base64

import pytest

from components.config import ConfigError, parse
from tests.project_env import ROOT
from tests.unit.config_values import EXISTING, JWT, MUNGE, changed, with_
from tests.unit.stacks import run_values, stack_values

SLURM_KEY = base64.b64encode(bytes(range(255, -1, -1)) * 4).decode()  # 1024 bytes, as Slurm's docs make it
SECRETS = {"slurmKey", "jwtKey"}
SITE_CONF = "ClusterName=hpc\nSlurmctldHost=ctl(10.0.0.1)\nAuthType=auth/slurm\nCredType=cred/slurm\nAuthAltTypes=auth/jwt\n"
SITE = {**EXISTING, "mungeKey": None, "slurmKey": SLURM_KEY, "slurmVersion": "26.05"}
SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


@pytest.fixture
def conf_dir(tmp_path):
    (tmp_path / "slurm.conf").write_text(SITE_CONF)
    return str(tmp_path)


def error(conf_dir, secrets=SECRETS, **changes) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        parse(with_(**{**SITE, **changes}), set(secrets), conf_dir)
    return e.value


def test_a_26_05_auth_slurm_site_takes_its_slurm_key(conf_dir):
    cfg = parse(with_(**SITE), SECRETS, conf_dir)
    assert cfg.site.auth_type == "auth/slurm" and cfg.slurm_key is not None and cfg.munge_key is None


def test_without_the_slurm_key_preview_says_which_key_and_how(conf_dir):
    e = error(conf_dir, slurmKey=None)
    assert e.key == "slurmKey" and "AuthType is auth/slurm, so the clients need its slurm.key" in str(e)
    assert 'pulumi config set --secret slurmKey "$(base64 -w0 /etc/slurm/slurm.key)"' in str(e)


@pytest.mark.parametrize("version", ["22.05", "24.11"])
def test_an_older_slurm_is_refused_naming_the_versions_that_can(conf_dir, version):
    e = error(conf_dir, slurmVersion=version)
    assert e.key == "slurmVersion" and f"is {version}, but the existing cluster's AuthType is auth/slurm" in str(e)
    assert "from Slurm 25.05 on" in str(e) and "(26.05)" in str(e)


def test_a_munge_key_for_an_auth_slurm_site_is_refused(conf_dir):
    e = error(conf_dir, SECRETS | {"mungeKey"}, mungeKey=MUNGE)
    assert e.key == "mungeKey" and "uses no munge key" in str(e)


def test_a_slurm_key_for_a_munge_site_is_refused(tmp_path):
    (tmp_path / "slurm.conf").write_text(SITE_CONF.replace("auth/slurm", "auth/munge"))
    with pytest.raises(ConfigError) as e:
        parse(with_(**{**EXISTING, "slurmKey": SLURM_KEY}), {"mungeKey", "jwtKey", "slurmKey"}, str(tmp_path))
    assert e.value.key == "slurmKey" and "AuthType is auth/munge, not auth/slurm" in str(e.value)


def test_a_slurm_key_without_an_existing_cluster_is_refused():
    with pytest.raises(ConfigError) as e:
        parse(with_(slurmKey=SLURM_KEY), {"slurmKey"})
    assert e.value.key == "slurmKey" and "is set without existingCluster" in str(e.value)


def test_the_slurm_key_must_be_a_secret_of_at_least_32_bytes(conf_dir):
    assert "plain text" in str(error(conf_dir, secrets={"jwtKey"}))
    short = base64.b64encode(bytes(31)).decode()
    e = error(conf_dir, slurmKey=short)
    assert e.key == "slurmKey" and "decodes to 31 bytes" in str(e)


def test_the_slurm_key_is_the_one_secret_the_check_and_the_clients_mount(tmp_path):
    conf = (ROOT / "configs" / "existing" / "slurm.conf").read_text().replace("AuthType=auth/munge",
                                                                               "AuthType=auth/slurm")
    (tmp_path / "slurm.conf").write_text(conf)
    values = stack_values("prod", existingCluster={"slurmConf": str(tmp_path / "slurm.conf")}, slurmVersion="26.05",
                          slurmKey=SLURM_KEY, jwtKey=JWT)
    result = run_values(changed(values), SECRETS)
    key_secrets = [s for s in result.of_type(SECRET) if s.parent.endswith("SlurmKeys")]
    assert {s.name: s.plain["data"] for s in key_secrets} == {"slurm-keys-munge": {"slurm.key": SLURM_KEY},
                                                             "slurm-keys-jwt": {"jwt_hs256.key": JWT}}
    assert not result.of_type("random:index/randomBytes:RandomBytes"), "the site's key is adopted, never generated"
    name = result.one(SECRET, "slurm-keys-munge").plain["metadata"]["name"]
    (job,) = result.of_type("kubernetes:batch/v1:Job")
    pods = {"site-check-job": job.plain["spec"]["template"]["spec"]}
    pods |= {d: result.one(DEPLOYMENT, d).plain["spec"]["template"]["spec"]
             for d in ("slurmrestd-deployment", "jupyter-deployment")}
    for pod, spec in pods.items():
        (keys,) = [v["projected"] for v in spec["volumes"] if v["name"] == "slurm-keys"]
        items = {s["secret"]["name"]: s["secret"]["items"] for s in keys["sources"]}
        assert items == {name: [{"key": "slurm.key", "path": "slurm.key", "mode": 0o400}]}, pod
