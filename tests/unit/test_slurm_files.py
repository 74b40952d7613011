"""components/slurm_files.py: the one renderer of the Slurm files (pure Python, no containers)."""

import re

import pytest

from components.slurm_files import (
    CONFIG_FILES,
    DEFAULT_SLURM_VERSION,
    SECRET_FILES,
    THROUGHPUT_KEYS,
    VERSIONS,
    parse_slurm_conf,
    render_slurm_files,
    slurmd_ports,
    version_facts,
)

PW = "s3cret_pass"


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_files_per_version(version):
    files = render_slurm_files("demo", version, 3, "ctl", "ctl.slurm.svc", db_password=PW)
    assert set(files) == set(CONFIG_FILES) | set(SECRET_FILES)
    conf = files["slurm.conf"]
    assert "SlurmctldHost=ctl(ctl.slurm.svc)" in conf
    assert "AccountingStorageHost=ctl.slurm.svc" in conf
    assert "AuthAltTypes=auth/jwt" in conf and "AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key" in conf
    assert "AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key" in files["slurmdbd.conf"]
    nodes = re.findall(r"^NodeName=(\S+) .*NodeAddr=ctl\.slurm\.svc Port=(\d+)", conf, re.M)
    assert nodes == [("c1", "6818"), ("c2", "6821"), ("c3", "6822")]
    assert f"MailProg={VERSIONS[version].mail_prog}" in conf
    assert f"SLURM_REST_API_VERSION={VERSIONS[version].rest_api_version}" in files["slurm-image.env"]
    # The password is only in the secret file.
    assert [n for n, text in files.items() if PW in text] == ["slurmdbd.conf"]


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_many_short_jobs_settings_are_on_and_off_leaves_slurms_defaults_and_nothing_else(version):
    """A no-op Epilog (a node's epilog-complete message starts the scheduler at once) and batch_sched_delay=0 (README
    "Job throughput"); throughput=False, scripts/bench's comparison, differs in exactly those keys."""
    tuned = parse_slurm_conf(render_slurm_files("demo", version, db_password=PW)["slurm.conf"])
    plain = parse_slurm_conf(render_slurm_files("demo", version, db_password=PW, throughput=False)["slurm.conf"])
    # Exactly: a "defer" anywhere in SchedulerParameters (defer, defer_batch) stops the epilog-complete message from
    # starting the scheduler (proc_req.c), and the array runs 4 tasks a second.
    assert tuned["epilog"] == "/bin/true" and tuned["schedulerparameters"] == "batch_sched_delay=0"
    keys = {key.lower() for key in THROUGHPUT_KEYS}
    assert keys <= set(tuned) and not keys & set(plain)
    assert {k: v for k, v in tuned.items() if k not in keys} == plain
    # No TaskProlog, whose shell each task paid: the image's SPANK plugin (unset_jwt.c) drops SLURM_JWT instead.
    assert "taskprolog" not in tuned


def test_default_version_is_trixie():
    assert DEFAULT_SLURM_VERSION == "24.11" and VERSIONS["24.11"].debian_suite == "trixie"
    assert {v: f.debian_suite for v, f in VERSIONS.items()} == {"22.05": "bookworm", "24.11": "trixie", "26.05": "sid"}


def test_slurmd_ports_skip_the_other_daemons():
    assert slurmd_ports(4) == [6818, 6821, 6822, 6823]


@pytest.mark.parametrize("kwargs, message", [
    (dict(slurm_version="23.02"), "unknown Slurm version '23.02'"),
    (dict(nodes=0), "bad nodes 0"),
    (dict(nodes=True), "bad nodes True"),
    (dict(controller_host="a.b"), "bad controller_host"),
    (dict(controller_addr="bad addr"), "bad controller_addr"),
    (dict(db_password="short"), "bad db_password"),
    (dict(db_password="has#hash12"), "bad db_password"),
    (dict(cluster_name="Upper"), "bad cluster_name"),
])
def test_bad_input_raises_value_error(kwargs, message):
    args = dict(cluster_name="demo", db_password=PW)
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        render_slurm_files(**args)


def test_version_facts_unknown():
    with pytest.raises(ValueError, match="supported are 22.05, 24.11, 26.05"):
        version_facts("21.08")


def test_parse_slurm_conf_reads_first_values_case_insensitively_without_comments():
    conf = parse_slurm_conf("""# ClusterName=commented
clustername=hpc   # trailing comment
SlurmctldHost=ctl1(10.0.0.1)
SlurmctldHost=ctl2(10.0.0.2)
  SlurmctldPort = 7000-7001
NodeName=c[1-2] CPUs=2 Port=7002
MailProg=
""")
    assert conf == {"clustername": "hpc", "slurmctldhost": "ctl1(10.0.0.1)", "slurmctldport": "7000-7001",
                    "nodename": "c[1-2]", "mailprog": ""}


def test_parse_slurm_conf_reads_every_pair_of_a_line_but_a_nodes_description():
    conf = parse_slurm_conf('AuthType=auth/munge AuthAltTypes=auth/jwt\nSlurmctldParameters="enable_configless"\n'
                            "PartitionName=batch Nodes=cn[1-2] Default=YES\n")
    assert conf == {"authtype": "auth/munge", "authalttypes": "auth/jwt", "slurmctldparameters": "enable_configless",
                    "partitionname": "batch"}


def test_parse_slurm_conf_reads_the_rendered_file():
    conf = parse_slurm_conf(render_slurm_files("demo", db_password=PW)["slurm.conf"])
    assert conf["clustername"] == "demo" and conf["slurmctldport"] == "6817"
    assert conf["slurmctldhost"] == "slurm-controller(slurm-controller)"
