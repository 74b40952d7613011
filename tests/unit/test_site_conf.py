"""Pure helpers for an existing cluster's slurm.conf: the images' version facts, what the stack reads of the site
(components/site.py) and what it refuses."""

import dataclasses
import json
import re

import pytest

from components import network, restd, site, slurm_files, token_service
from components.slurm_config import existing_cluster_image_env
from components.slurm_files import SLURMRESTD_PORT
from tests.hub_egress import hub_users_egress, hub_users_graph


def test_image_env_uses_the_clusters_own_names():
    env = existing_cluster_image_env("ClusterName=hpc\nSlurmctldHost=ctl1(ctl1.example.org)\n", "prod", "22.05")
    text = env["slurm-image.env"]
    assert "SLURM_CLUSTER_NAME=hpc\n" in text and "SLURM_CONTROLLER_HOST=ctl1\n" in text
    assert "SLURM_VERSION=22.05\n" in text and "SLURMRESTD_PLUGINS=openapi/v0.0.38" in text


def test_image_env_falls_back_to_the_stack_cluster_name():
    text = existing_cluster_image_env("ClusterName=HPC_Main\nControlMachine=ctl.example.org\n", "prod", "24.11")
    assert "SLURM_CLUSTER_NAME=prod\n" in text["slurm-image.env"]
    assert "SLURM_CONTROLLER_HOST=ctl\n" in text["slurm-image.env"]


def test_image_env_names_the_primary_controller_not_a_backup():
    text = existing_cluster_image_env("SlurmctldHost=ctl1\nSlurmctldHost=ctl2 # backup\n", "prod", "24.11")
    assert "SLURM_CONTROLLER_HOST=ctl1\n" in text["slurm-image.env"]


def test_image_env_refuses_what_it_cannot_describe():
    with pytest.raises(ValueError, match="existing cluster's slurm.conf"):
        existing_cluster_image_env("SlurmctldHost=bad_host!\n", "prod", "24.11")


@pytest.mark.parametrize("conf, ports", [
    ("SlurmctldHost=c\n", [6817]),
    ("SlurmctldHost=c\nAccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=c\n", [6817, 6819]),
    ("SlurmctldHost=c\n#AccountingStorageType=accounting_storage/slurmdbd\n", [6817]),
    ("SlurmctldHost=c\nSlurmctldPort=7000-7001\nAccountingStorageType=accounting_storage/slurmdbd\n"
     "AccountingStorageHost=db\nAccountingStoragePort=7100\n", [7000, 7001, 7100]),
])
def test_the_ports_clients_connect_to(conf, ports):
    assert site.describe(conf).ports == ports


SITE = """# the site's slurm.conf
ClusterName=hpc
SlurmctldHost=ctl(10.1.2.3)
SlurmctldHost=ctl2(10.1.2.4) # backup
SlurmctldPort=7817-7818
SlurmctldParameters=idle_on_node_suspend,enable_configless
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=10.1.2.5
AccountingStoragePort=7819
"""


def test_what_the_stack_reads_of_a_site():
    s = site.describe(SITE)
    assert (s.cluster_name, s.controller, s.slurmctld_ports, s.slurmdbd) == ("hpc", "10.1.2.3", (7817, 7818),
                                                                             ("10.1.2.5", 7819))
    assert s.conf_server == "10.1.2.3:7817" and s.configless and s.alt_auth_types == ("auth/jwt",)
    assert site.problems(s, jwt_clients=("slurmrestd",), configless=True) == []
    assert site.describe("SlurmctldHost=ctl.example.org\n").controller == "ctl.example.org"
    assert site.describe("ControlMachine=ctl\nControlAddr=10.0.0.9\n").controller == "10.0.0.9"


@pytest.mark.parametrize("conf, message", [
    ("ClusterName=x\n", "no SlurmctldHost line"),
    ("SlurmctldHost=a(b)(c)\n", "SlurmctldHost=a(b)(c) is not NAME or NAME(ADDRESS)"),
    ("SlurmctldHost=c\nSlurmctldPort=7818-7817\n", "SlurmctldPort=7818-7817 is not a port"),
    ("SlurmctldHost=c\nSlurmctldPort=70000\n", "SlurmctldPort=70000 is not a port"),
    ("SlurmctldHost=c\nAccountingStorageType=accounting_storage/slurmdbd\n", "without AccountingStorageHost"),
])
def test_a_slurm_conf_the_stack_cannot_use_is_refused(conf, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        site.describe(conf)


@pytest.mark.parametrize("change, configless, message", [
    (("AuthType=auth/munge", "AuthType=auth/none"), False, "AuthType=auth/none, but the clients authenticate "
                                                           "with auth/munge or auth/slurm"),
    (("AuthAltTypes=auth/jwt", ""), False, "no auth/jwt in AuthAltTypes, so the cluster refuses the JWTs of slurmrestd"),
    (("enable_configless", "x"), True, "no enable_configless in SlurmctldParameters"),
    (("ClusterName=hpc", "Include /etc/slurm/nodes.conf"), False, "Include /etc/slurm/nodes.conf: the clients get"),
])
def test_what_the_clients_need_of_a_site(change, configless, message):
    found = site.problems(site.describe(SITE.replace(*change)), jwt_clients=("slurmrestd",), configless=configless)
    assert len(found) == 1 and found[0].startswith(message), found


def test_an_auth_slurm_site_is_one_the_clients_can_use_from_slurm_25_05_on():
    s = site.describe(SITE.replace("AuthType=auth/munge", "AuthType=Auth/Slurm\nCredType=cred/slurm"))
    assert s.auth_type == slurm_files.AUTH_SLURM and site.problems(s, jwt_clients=("slurmrestd",), configless=True) == []
    assert [v for v in ("22.05", "23.11", "24.11", "25.05", "26.05") if slurm_files.auth_slurm_supported(v)] == ["25.05", "26.05"]


def test_lists_and_plugin_names_are_read_as_slurm_reads_them():
    s = site.describe("SlurmctldHost=c AuthType=auth/munge AuthAltTypes=Auth/JWT\n"
                      'SlurmctldParameters="idle_on_node_suspend, enable_configless"\n')
    assert s.alt_auth_types == ("auth/jwt",) and s.configless and s.auth_type == "auth/munge"


def test_a_configless_client_does_not_need_the_included_files():
    s = site.describe(SITE + "Include nodes.conf\n")
    assert s.includes == ("nodes.conf",) and site.problems(s, jwt_clients=(), configless=True) == []


@pytest.mark.parametrize("params, bounded", [
    ("", False),
    ("AuthAltParameters=jwt_key=/etc/slurm/jwt.key\n", False),
    ("AuthAltParameters=jwt_key=/etc/slurm/jwt.key,max_token_lifespan=600\n", True),
    ("AuthAltParameters=disable_token_creation, jwt_key=/k\n", True),
    ("AuthAltParameters=jwt_key=/k,max_token_lifespan=315360000\n", False),
])
def test_preview_names_a_site_whose_users_can_mint_tokens_of_any_lifetime(params, bounded):
    conf = SITE.replace("AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key\n", params)
    warning = site.unbounded_tokens(site.describe(conf))
    assert (warning is None) == bounded, warning
    assert bounded or "max_token_lifespan=900" in warning
    assert site.unbounded_tokens(site.describe(conf.replace("AuthAltTypes=auth/jwt", ""))) is None  # no JWTs


SITE_RULE = {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
             "ports": [{"protocol": "TCP", "port": 6817}, {"protocol": "TCP", "port": 6819}]}


def to_addresses(egress: list[dict]) -> list[dict]:
    """The rules of `egress` to address ranges (the site's daemons), not to pods."""
    return [rule for rule in egress if any("ipBlock" in peer for peer in rule["to"])]


def test_egress_for_an_existing_cluster_names_only_its_ports():
    graph = hub_users_graph(site_ports=[6817, 6819], restd=False)
    assert to_addresses(graph.egress(network.HUB_USERS)) == [SITE_RULE]
    # Control: a graph whose edge to the site admits every port gives a rule without ports, which this refuses.
    open_site = network.Graph(tuple(dataclasses.replace(e, ports=()) if e.target == network.SITE else e
                                    for e in graph.edges))
    assert to_addresses(open_site.egress(network.HUB_USERS)) == [{"to": SITE_RULE["to"]}]


def test_hub_users_egress_on_a_site_is_its_ports_slurmrestd_and_the_token_service():
    rules = hub_users_egress(site_ports=[6817, 6819], restd=True)
    assert rules[0] == SITE_RULE
    assert [(r["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], r["ports"][0]["port"])
            for r in rules[1:]] == [(restd.APP, SLURMRESTD_PORT), (token_service.APP, token_service.PORT)]
    assert "ipBlock" not in json.dumps(hub_users_egress(restd=False))  # control: no site
