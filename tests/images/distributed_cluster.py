"""The distributed deployment's roles (components/distributed.py) as podman containers, for the image tests: one
slurm-single-node image, each container in its entrypoint mode (dockerfiles/slurm-single-node/distributed.sh
accounting|controller|node) with the files, keys, capabilities and names its pod gets from the stack:

- accounting: slurm.conf and slurmdbd.conf, the munge and JWT keys, a state volume, its own Service name as loopback
  (the pod's hostAliases);
- controller: slurm.conf and cgroup.conf (no slurmdbd.conf), the munge and JWT keys, a state volume, the hostname
  `<cluster>-slurmctld-0` (SlurmctldHost), its own name as loopback and the accounting's name mapped to it;
- node: the munge key alone, no Slurm file (configless: SLURM_CONF_SERVER), the shared home at /home, a hostname
  `<cluster>-node-N`, registering with distributed.node_conf().

Every container gets the directory volume at /var/lib/extrausers (`directory`: a directory laid out as the stack's
volume, e.g. tests/ldap_directory.py write_ldap_directory) and the `run_args` given (such as an LDAP server's
--add-host). Podman's --add-host stands in for the Services' DNS names.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

from components import distributed, pods, single_node
from components.slurm_files import SLURMCTLD_PORT, Distributed, render_slurm_files
from tests.images.slurm_containers import WaitTimeout, podman, wait_until

CPUS, MEMORY_MB = 1, 768  # each node's, as the dist stack's (Pulumi.dist.yaml)


@dataclass
class Role:
    """A running container of one role."""

    name: str
    mode: str
    args: list[str] = field(default_factory=list)
    ip: str = ""

    def start(self, image: str, network: str) -> "Role":
        podman("run", "-d", "--no-healthcheck", "--name", self.name, "--network", network,
               "--security-opt=no-new-privileges", "--cap-drop=ALL", *self.args,
               "--entrypoint", distributed.ENTRYPOINT, image, self.mode)
        self.ip = podman("inspect", "--format", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                         self.name).stdout.strip()
        return self

    def status(self) -> str:
        return podman("inspect", "--format", "{{.State.Status}}", self.name, check=False).stdout.strip()

    def logs(self, tail: int = 60) -> str:
        p = podman("logs", "--tail", str(tail), self.name, check=False)
        return f"--- podman logs {self.name}:\n{p.stdout}{p.stderr}"

    def exec(self, *cmd: str, check: bool = True, timeout: float = 30, input: Optional[str] = None):
        return podman("exec", "-i", self.name, *cmd, check=check, timeout=timeout, input=input)

    def ready(self) -> bool:
        """The pod's probe (distributed.sh ready), failing at once if the container stopped."""
        if self.status() != "running":
            raise WaitTimeout(f"{self.name} is no longer running\n{self.logs()}")
        return self.exec(distributed.ENTRYPOINT, "ready", check=False).returncode == 0

    def wait_for(self, condition: Callable[[], object], what: str, timeout: float = 60):
        """wait_until, but fail at once (with the logs) if the container stops."""
        def probe():
            if self.status() != "running":
                raise WaitTimeout(f"{self.name} is no longer running\n{self.logs()}")
            return condition()
        return wait_until(probe, timeout, what, self.logs)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "5", self.name, check=False)


class DistributedCluster:
    """accounting, controller and `nodes` node containers of one cluster on `network`, with the directory volume
    `directory` in each; start() starts them in the order the pods become ready and waits for each one's probe."""

    def __init__(self, image: str, version: str, network: str, directory: str, nodes: int = 1,
                 run_args: tuple[str, ...] = ()):
        suffix = uuid.uuid4().hex[:6]
        self.image, self.network, self.cluster = image, network, f"dl{suffix}"
        names = distributed.names(self.cluster)
        self.ctld_addr, self.accounting_addr = names["slurmctld"], names["accounting"]
        self.dir = tempfile.mkdtemp(prefix="sci-dist-")
        files = render_slurm_files(
            self.cluster, version, nodes, distributed.controller_host(self.cluster), self.ctld_addr,
            db_password=secrets.token_urlsafe(18).replace("-", "_"), cpus_per_node=CPUS, memory_mb_per_node=MEMORY_MB,
            distributed=Distributed(accounting_addr=self.accounting_addr, nodeset=distributed.NODESET))
        server, client, keys, node_keys = (self._dir(d) for d in ("server", "client", "keys", "node-keys"))
        for name, text in files.items():
            self._write(server, name, text.encode(), 0o600 if name == "slurmdbd.conf" else 0o644)
            if name != "slurmdbd.conf":
                self._write(client, name, text.encode(), 0o644)
        munge = os.urandom(1024)
        self._write(keys, "munge.key", munge, 0o400)
        self._write(keys, "jwt_hs256.key", os.urandom(32), 0o400)
        self._write(node_keys, "munge.key", munge, 0o400)
        self.volumes = [f"sci-dist-state-{suffix}-accounting", f"sci-dist-state-{suffix}-ctld", f"sci-dist-home-{suffix}"]
        common = ["-v", f"{directory}:/var/lib/extrausers:ro", *run_args]
        root_caps = f"--cap-add={','.join(pods.ROOT_START_CAPABILITIES)}"
        self.accounting = Role(f"sci-dist-{suffix}-accounting", "accounting", [
            "--hostname", f"{self.accounting_addr}-0", "--add-host", f"{self.accounting_addr}:127.0.0.1", root_caps,
            "-v", f"{server}:/etc/slurm-config:ro", "-v", f"{keys}:/etc/slurm-keys:ro",
            "-v", f"{self.volumes[0]}:/var/lib/slurm-state", *common])
        self.controller = Role(f"sci-dist-{suffix}-slurmctld", "controller", [
            "--hostname", distributed.controller_host(self.cluster), "--add-host", f"{self.ctld_addr}:127.0.0.1",
            root_caps, "-v", f"{client}:/etc/slurm-config:ro", "-v", f"{keys}:/etc/slurm-keys:ro",
            "-v", f"{self.volumes[1]}:/var/lib/slurm-state", *common])
        self.nodes = [Role(f"sci-dist-{suffix}-node-{i}", "node", [
            "--hostname", f"{names['node']}-{i}", f"--cap-add={','.join(single_node.CAPABILITIES)}",
            "-e", f"SLURM_CONF_SERVER={self.ctld_addr}:{SLURMCTLD_PORT}",
            "-e", f"SLURMD_NODE_CONF={distributed.node_conf(CPUS, MEMORY_MB)}",
            "-v", f"{node_keys}:/etc/slurm-keys:ro", "-v", f"{self.volumes[2]}:/home", *common]) for i in range(nodes)]

    def _dir(self, name: str) -> str:
        path = os.path.join(self.dir, name)
        os.makedirs(path)
        return path

    @staticmethod
    def _write(directory: str, name: str, data: bytes, mode: int) -> None:
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)

    def start(self, timeout: float = 120) -> "DistributedCluster":
        self.accounting.start(self.image, self.network)
        self.accounting.wait_for(self.accounting.ready, "the accounting container's probe", timeout)
        self.controller.args += ["--add-host", f"{self.accounting_addr}:{self.accounting.ip}"]
        self.controller.start(self.image, self.network)
        self.controller.wait_for(self.controller.ready, "the controller container's probe", timeout)
        for node in self.nodes:
            node.args += ["--add-host", f"{self.ctld_addr}:{self.controller.ip}"]
            node.start(self.image, self.network)
        for node in self.nodes:
            node.wait_for(node.ready, f"{node.name}'s probe", timeout)
        return self

    def roles(self) -> list[Role]:
        return [self.accounting, self.controller, *self.nodes]

    def logs(self) -> str:
        return "\n".join(role.logs(30) for role in self.roles())

    def remove(self) -> None:
        for role in reversed(self.roles()):
            role.remove()
        podman("volume", "rm", "-f", *self.volumes, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
