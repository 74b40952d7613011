"""GPUs of the distributed node pods (config node.gpus, issue 21), under Pulumi's mocks: the config's choices and
refusals, the node pods' extended resource (request = limit), the Gres= they register with, slurm.conf's GresTypes
and the gres.conf that slurmctld serves them; without the key, none of it (the control). Unit tests only: no GPU
runs here."""

from __future__ import annotations

import functools

import pytest

from components import distributed
from components.config import ConfigError, parse
from components.slurm_files import (
    DISTRIBUTED_MEM_SPEC_MB,
    GRES_CONF,
    Distributed,
    Gpus,
    device_file_count,
    parse_slurm_conf,
    render_slurm_files,
)
from tests.unit.config_values import with_
from tests.unit.dist_stack import DIST, config_files, container, dist, pod, slurm_conf
from tests.unit.stacks import run

NODE = {"cpus": 1, "memoryMb": 768}  # Pulumi.dist.yaml's


@functools.cache
def dist_gpus():
    """The `dist` stack with two A100s in each node pod."""
    return run("dist", node={**NODE, "gpus": {"count": 2, "type": "a100"}})


# --- config ------------------------------------------------------------------------------------------------------

def test_gpus_parse_with_nvidias_resource_by_default():
    gpus = parse(with_(**DIST, node={"gpus": {"count": 2}})).node.gpus
    assert gpus.settings == Gpus(count=2, resource="nvidia.com/gpu")
    assert parse(with_(**DIST)).node.gpus is None


@pytest.mark.parametrize("changes, key, words", [
    ({"node": {"gpus": {"count": 1}}}, "node.gpus", "components.distributed is false"),
    ({**DIST, "node": {"gpus": {"type": "a100"}}}, "node.gpus.count", "is missing"),
    ({**DIST, "node": {"gpus": {"count": 0}}}, "node.gpus.count", "out of range"),
    ({**DIST, "node": {"gpus": {"count": 1, "resource": "gpu"}}}, "node.gpus.resource", "extended resource"),
    ({**DIST, "node": {"gpus": {"count": 1, "resource": "kubernetes.io/gpu"}}}, "node.gpus.resource", "extended"),
    ({**DIST, "node": {"gpus": {"count": 1, "type": "a100:80gb"}}}, "node.gpus.type", "GRES type"),
    ({**DIST, "node": {"gpus": {"count": 1, "resource": "amd.com/gpu"}}}, "node.gpus.file", "AutoDetect=nvidia"),
    ({**DIST, "node": {"gpus": {"count": 1, "resource": "nvidia.com/mig-1g.5gb"}}}, "node.gpus.file", "MIG"),
    ({**DIST, "node": {"gpus": {"count": 1, "resource": "amd.com/gpu", "file": "/etc/passwd"}}},
     "node.gpus.file", "bad device files"),
    ({**DIST, "node": {"gpus": {"count": 1, "resource": "amd.com/gpu", "file": "/dev/dri/renderD[128-129]"}}},
     "node.gpus.file", "names 2 device file(s) but node.gpus.count is 1"),
])
def test_a_bad_gpu_config_names_its_key(changes, key, words):
    with pytest.raises(ConfigError) as err:
        parse(with_(**changes))
    assert f"'slurm-cloud-integration:{key}'" in str(err.value) and words in str(err.value), str(err.value)


def test_the_control_gpu_configs_parse():
    """Control for the refusals above: the same keys with good values pass."""
    parse(with_(**DIST, node={"gpus": {"count": 8, "resource": "nvidia.com/gpu", "type": "nvidia_h100_80gb_hbm3"}}))
    gpus = parse(with_(**DIST, node={"gpus": {"count": 2, "resource": "amd.com/gpu",
                                              "file": "/dev/dri/renderD[128-129]"}})).node.gpus
    assert gpus.file == "/dev/dri/renderD[128-129]"


@pytest.mark.parametrize("file, count", [("/dev/nvidia0", 1), ("/dev/nvidia[0-3]", 4),
                                         ("/dev/dri/renderD[128,130-131]", 3)])
def test_device_files_are_counted_as_slurm_reads_them(file, count):
    assert device_file_count(file) == count


@pytest.mark.parametrize("file", ["dev/nvidia0", "/dev/../etc/shadow", "/dev/nvidia[3-0]", "/dev/nvidia 0"])
def test_bad_device_files_are_refused(file):
    with pytest.raises(ValueError):
        device_file_count(file)


# --- the rendered files ------------------------------------------------------------------------------------------

def render(gpus):
    return render_slurm_files("dist", "24.11", 2, "dist-slurmctld-0", "a.b", db_password="password1",
                              distributed=Distributed("c.d", gpus=gpus))


def test_nvidia_gpus_get_gres_types_and_an_autodetecting_gres_conf():
    files = render(Gpus(count=2, type="a100"))
    assert parse_slurm_conf(files["slurm.conf"])["grestypes"] == "gpu"
    lines = [line for line in files[GRES_CONF].splitlines() if line and not line.startswith("#")]
    assert lines == ["AutoDetect=nvidia"], "device numbers are the host's: slurmd finds them, no File= line"


def test_another_vendors_gpus_get_the_device_files_given():
    files = render(Gpus(count=2, resource="amd.com/gpu", type="mi300x", file="/dev/dri/renderD[128-129]"))
    lines = [line for line in files[GRES_CONF].splitlines() if line and not line.startswith("#")]
    assert lines == ["Name=gpu Type=mi300x File=/dev/dri/renderD[128-129]"]


def test_rendering_refuses_gpus_it_could_not_describe():
    with pytest.raises(ValueError, match="AutoDetect=nvidia"):
        render(Gpus(count=1, resource="amd.com/gpu"))
    with pytest.raises(ValueError, match="names 4 device files"):
        render(Gpus(count=2, file="/dev/nvidia[0-3]"))


def test_without_gpus_no_gres_is_rendered():
    """Control: the distributed deployment without node.gpus."""
    files = render(None)
    assert GRES_CONF not in files and "grestypes" not in parse_slurm_conf(files["slurm.conf"])


def test_the_node_pods_register_their_gpus():
    assert distributed.node_conf(4, 8192, Gpus(count=2, type="a100")) == (
        f"CPUs=4 RealMemory=8192 MemSpecLimit={DISTRIBUTED_MEM_SPEC_MB} Gres=gpu:a100:2 Feature=nodes")
    assert "Gres=gpu:1 " in distributed.node_conf(4, 8192, Gpus(count=1))


# --- the stack ---------------------------------------------------------------------------------------------------

def test_node_pods_request_and_limit_their_gpus_and_register_them():
    c = container(dist_gpus(), "node")
    assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert c["resources"]["limits"]["memory"] == "768Mi", "CPU and memory as without GPUs"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["SLURMD_NODE_CONF"] == distributed.node_conf(1, 768, Gpus(count=2, type="a100"))


def test_slurmctld_gets_gres_conf_to_serve_with_slurm_conf():
    result = dist_gpus()
    files = config_files(result)
    assert "AutoDetect=nvidia" in files[GRES_CONF]
    assert parse_slurm_conf(slurm_conf(result))["grestypes"] == "gpu"
    # slurmctld mounts the whole ConfigMap (its entrypoint installs gres.conf beside slurm.conf); node pods none.
    (source,) = [s for v in pod(result, "slurmctld")["volumes"] if v["name"] == "slurm-config"
                 for s in v["projected"]["sources"] if "configMap" in s]
    assert not source["configMap"].get("items"), "every file of the ConfigMap, gres.conf included"
    assert not [v for v in pod(result, "node")["volumes"] if v["name"] == "slurm-config"]


def test_the_dist_stack_without_gpus_has_none():
    """Control: the committed `dist` stack requests no GPU, registers none, renders no gres.conf."""
    result = dist()
    c = container(result, "node")
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}
    assert "Gres=" not in {e["name"]: e["value"] for e in c["env"]}["SLURMD_NODE_CONF"]
    assert GRES_CONF not in config_files(result) and "grestypes" not in parse_slurm_conf(slurm_conf(result))
