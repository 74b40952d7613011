"""Pure helpers for an existing cluster's slurm.conf: the images' version facts and the ports notebooks need."""

import pytest

from components.jupyterhub import existing_cluster_ports, slurm_egress
from components.slurm_config import existing_cluster_image_env


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
    ("SlurmctldHost=c\nAccountingStorageType=accounting_storage/slurmdbd\n", [6817, 6819]),
    ("SlurmctldHost=c\n#AccountingStorageType=accounting_storage/slurmdbd\n", [6817]),
    ("SlurmctldPort=7000-7001\nAccountingStorageType=accounting_storage/slurmdbd\nAccountingStoragePort=7100\n",
     [7000, 7001, 7100]),
])
def test_existing_cluster_ports(conf, ports):
    assert existing_cluster_ports(conf) == ports


def test_egress_for_an_existing_cluster_names_only_its_ports():
    (rule,) = slurm_egress(existing_ports=[6817, 6819])
    assert rule == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                    "ports": [{"protocol": "TCP", "port": 6817}, {"protocol": "TCP", "port": 6819}]}
