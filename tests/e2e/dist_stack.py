"""The `dist` stack (Pulumi.dist.yaml: the distributed deployment) as the tests reach it: its names, and Slurm
commands in its pods. Shared by test_10 (the stack as committed), test_10b (a copy at an older Slurm) and test_11 (a
copy with the site's directory), which deploy it one after the other under the one stack name."""

from __future__ import annotations

from tests.e2e.kube import Kube, Pod

STACK = "dist"
NAMESPACE = "slurm-dist"  # Pulumi.dist.yaml
CLUSTER = "dist"
NODES = [f"{CLUSTER}-node-0", f"{CLUSTER}-node-1"]  # its node pods (`nodes: 2`)
USER = "alice"


class Dist:
    """The stack's pods, by name; Slurm commands run in the first node pod (its configless files)."""

    def __init__(self, kube: Kube | None = None):
        self.kube = kube or Kube(NAMESPACE)
        self.client = NODES[0]  # the node pod that runs the tests' Slurm commands

    def pod(self, name: str) -> Pod:
        return self.kube.pod(name)

    @property
    def node_pod(self) -> Pod:
        return self.pod(self.client)

    def on(self, pod: str, script: str, user: str = "", check: bool = True, timeout: float = 120) -> str:
        """`bash -c SCRIPT` in POD, as root or as `user` from their home; its stdout."""
        cmd = ("runuser", "-u", user, "--", "bash", "-c", f"cd ~ && {script}") if user else ("bash", "-c", script)
        return self.kube.exec(self.pod(pod), *cmd, check=check, timeout=timeout).stdout

    def slurm(self, *cmd: str, user: str | None = None, timeout: float = 60) -> str:
        """A Slurm command in the client node pod, as `user` from their home (through bash: quote for it)."""
        if user:
            return self.on(self.client, " ".join(cmd), user=user, timeout=timeout)
        return self.kube.exec(self.node_pod, *cmd, timeout=timeout).stdout

    def nodes(self) -> dict[str, tuple[str, str, str]]:
        """sinfo per node: name -> (state, CPUs, memory)."""
        out = self.slurm("timeout", "10", "sinfo", "-h", "-N", "-o", "%N %t %c %m")
        return {n: (s, c, m) for n, s, c, m in (line.split() for line in out.splitlines())}

    def idle(self, nodes: list[str] = NODES) -> bool:
        found = self.nodes()
        return sorted(found) == sorted(nodes) and all(v[0] == "idle" for v in found.values())

    def records(self) -> dict[str, str]:
        """Every job accounting holds (sacct, from slurmdbd): id -> state, its first word ("CANCELLED by 0" reads
        "CANCELLED" once slurmctld has restarted)."""
        out = self.slurm("timeout", "20", "sacct", "-a", "-X", "-n", "-P", "-S", "2000-01-01", "-o", "jobid,state")
        return {job: state.split()[0] for job, state in (line.split("|", 1) for line in out.splitlines() if line)}

    def queue(self) -> dict[str, str]:
        out = self.slurm("timeout", "10", "squeue", "-h", "-o", "%i %T")
        return dict(line.split() for line in out.splitlines())
