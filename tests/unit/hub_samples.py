"""What the unit tests of the JupyterHub side share: the chart values the program computes for a sample stack
(sample_values()), and a stand-in for the `c` that jupyterhub_config.py code runs against (HubConfig)."""

from __future__ import annotations

from types import SimpleNamespace

from components import directory, network
from components.config import Components
from components.jupyterhub import jupyterhub_values, split_image_ref

DIGEST = "sha256:" + "ab" * 32
USERS = (directory.User("alice", 2001, 2001, ("physics",)), directory.User("bob", 2002, 2002))
GROUPS = {"physics": 3000}


def sample_values(**changes):
    """jupyterhub_values() for a sample stack (USERS, GROUPS, the notebook image by DIGEST), with `changes`."""
    name, tag = split_image_ref(f"registry.example.com/hpc/slurm-cloud-integration/slurm-jupyter-notebook@{DIGEST}", "dev")
    args = dict(image_name=name, image_tag=tag,
                config_files={"slurm.conf": "ClusterName=dev\n", "cgroup.conf": "\n", "slurm-image.env": "A=1\n"},
                users=USERS, groups=GROUPS, home_claim="home-0a1b2c", token_url="http://tokens:8090/token",
                hub_password="p" * 32,
                egress=network.graph(Components(), nodes=2, restd_clients=("jupyterhub",)).egress(network.HUB_USERS))
    return jupyterhub_values(**{**args, **changes})


class HubConfig(dict):
    """What jupyterhub_config.py's `c` offers the code here: c.Section.trait = value, c[Section].update({..})."""

    def __missing__(self, section: str) -> SimpleNamespace:
        return self.setdefault(section, Section())

    __getattr__ = dict.__getitem__


class Section(SimpleNamespace):
    def update(self, values: dict) -> None:
        self.__dict__.update(values)

    def get(self, key: str, default=None):  # traitlets' Config is a dict
        return self.__dict__.get(key, default)
