"""Scenario 7: an existing Slurm cluster that the program did not deploy ("the site", tests/site_cluster.py: its
own controller, slurmdbd, MariaDB and two compute nodes in podman containers on a network of their own, outside
Kubernetes, with its own keys and a site-written slurm.conf). The `site` stack (Pulumi.site.yaml, like `prod`)
deploys only the clients, slurmrestd and JupyterLab, into this machine's Kubernetes, first with a copy of the
site's slurm.conf, then configless (the clients fetch it from the site's slurmctld). In each mode:
- a munge key that is not the site's stops `pulumi up` with the message that names the munge key, before any
  client rolls out;
- with the site's key: JupyterLab's `sinfo` shows the site's nodes, `sbatch examples/test.slurm` from alice's home
  runs on the site (its sacct) and its output is read back in JupyterLab, a two-node job runs on both nodes;
- the stack's slurmrestd: ping and a job with a token the site minted complete, a token signed with another key is
  refused.
Then `pulumi destroy` leaves the site as it was (running, its jobs in its accounting) until the tests stop it,
after which nothing of it is left."""

from __future__ import annotations

import base64
import re
import secrets
import time
from pathlib import Path

import pytest

from components import jupyter, restd
from components.slurm_files import SLURMRESTD_PORT
from tests.e2e.deployment import TIMINGS
from tests.e2e.kube import Kube
from tests.e2e.test_02_rest import forged_token
from tests.project_env import ROOT, pulumi
from tests.site_cluster import SiteCluster
from tests.slurm_rest import SlurmRest, SlurmRestError

pytestmark = pytest.mark.e2e

STACK = "site"
NAMESPACE = "site"
HOME_VOLUME = "sci-site-home"  # Pulumi.site.yaml's home.volume: the site admin's PersistentVolume of its /home
USER = "alice"


@pytest.fixture(scope="module")
def site(cluster):
    """The site, running; at the end stopped, with nothing of it left (SiteCluster.stop() checks)."""
    with SiteCluster() as s:
        TIMINGS["outside cluster start to both nodes idle"] = s.timings["idle"]
        yield s


class SiteStack:
    """The `site` stack on a copy of Pulumi.site.yaml, pointed at `site`."""

    def __init__(self, site: SiteCluster, config: Path):
        self.site, self.config = site, config
        self.kube = Kube(NAMESPACE)
        self.jobs: list[str] = []  # submitted from JupyterLab: the site's accounting keeps them after the destroy
        config.write_text((ROOT / "Pulumi.site.yaml").read_text())
        self.set("--path", "existingCluster.slurmConf", str(site.slurm_conf_path))

    def set(self, *args: str, secret: bool = False) -> None:
        pulumi("config", "set", *(["--secret"] if secret else []), *args, stack=STACK, config_file=self.config)

    def up(self, *, munge_key: bytes, configless: bool, check: bool = True):
        self.set("mungeKey", base64.b64encode(munge_key).decode(), secret=True)
        self.set("--path", "existingCluster.configless", str(configless).lower())
        t0 = time.monotonic()
        proc = pulumi("up", "--yes", "--skip-preview", stack=STACK, config_file=self.config, check=check,
                      timeout=900)
        TIMINGS[f"pulumi up --stack site ({'configless' if configless else 'copied slurm.conf'}"
                f"{'' if munge_key == self.site.munge_key else ', another munge key'})"] = time.monotonic() - t0
        return proc

    def app(self, app: str):
        (pod,) = [p for p in self.kube.pods if p.labels.get("app.kubernetes.io/name") == app]
        return pod

    def exec(self, *cmd: str, input: str | None = None) -> str:
        """A command in the JupyterLab pod as the user JupyterLab runs as, in their home (as its terminal)."""
        return self.kube.exec(self.app(jupyter.APP), "sh", "-c", f"cd && {' '.join(cmd)}", user=USER,
                              input=input, timeout=60).stdout

    def rest(self, token: str) -> SlurmRest:
        svc = self.kube.get("service", next(s["metadata"]["name"] for s in self.kube.of_kind("service")
                                            if s["spec"]["selector"].get("app.kubernetes.io/name") == restd.APP))
        api = re.search(r"^SLURM_REST_API_VERSION=(\S+)$", self.config_files()["slurm-image.env"], re.M).group(1)
        return SlurmRest(f"http://{svc['spec']['clusterIP']}:{SLURMRESTD_PORT}", api,
                         user=USER, token=token)

    def config_files(self) -> dict[str, str]:
        (data,) = [cm["data"] for cm in self.kube.of_kind("configmap") if "slurm-image.env" in (cm.get("data") or {})]
        return data


@pytest.fixture(scope="module")
def stack(site, tmp_path_factory):
    """The site's home as the site admin offers it to Kubernetes (a PersistentVolume), and the stack; at the end
    `pulumi destroy`, after which the site still runs and still knows its jobs."""
    kube = Kube(NAMESPACE)
    kube.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": HOME_VOLUME},
                 "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                          "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                          "hostPath": {"path": str(site.home), "type": "Directory"}}})
    s = SiteStack(site, tmp_path_factory.mktemp("site-stack") / "Pulumi.site.yaml")
    try:
        yield s
        t0 = time.monotonic()
        pulumi("destroy", "--yes", "--skip-preview", stack=STACK, config_file=s.config, timeout=600)
        TIMINGS["pulumi destroy --stack site"] = time.monotonic() - t0
        nodes = site.exec("sinfo", "-h", "-N", "-o", "%N %t").stdout.split()
        assert nodes == ["cn1", "idle", "cn2", "idle"], f"the site changed with the stack's destroy: {nodes}"
        assert s.jobs and all(site.sacct_state(j) == "COMPLETED" for j in s.jobs), "the site's accounting lost a job"
    finally:
        kube.kubectl("delete", "pv", HOME_VOLUME, "--ignore-not-found", namespaced=False)


@pytest.fixture(scope="class", params=[False, True], ids=["copied slurm.conf", "configless"])
def configless(request):
    return request.param


@pytest.mark.usefixtures("configless")  # every test once per mode, in this order: pytest groups by the class fixture
class TestSite:
    def test_another_munge_key_stops_pulumi_up_saying_so_before_the_clients_roll_out(self, stack, configless):
        before = {d["metadata"]["name"]: d["metadata"]["generation"] for d in stack.kube.of_kind("deployment")}
        proc = stack.up(munge_key=secrets.token_bytes(1024), configless=configless, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, f"pulumi up with another munge key succeeded:\n{out[-3000:]}"
        assert "munge key mismatch" in out and "site-check" in out, out[-3000:]  # the check Job said it
        after = {d["metadata"]["name"]: d["metadata"]["generation"] for d in stack.kube.of_kind("deployment")}
        assert after == before, "the clients rolled out with a munge key the site refuses"

    def test_the_sites_key_deploys_the_clients(self, stack, site, configless):
        stack.up(munge_key=site.munge_key, configless=configless)
        files = stack.config_files()
        assert ("slurm.conf" in files) != configless, sorted(files)
        if configless:
            env = {e["name"]: e.get("value") for e in stack.app(jupyter.APP).spec["containers"][0]["env"]}
            assert env["SLURM_CONF_SERVER"] == site.conf_server

    def test_jupyterlab_sees_the_sites_nodes(self, stack):
        assert stack.exec("sinfo", "-h", "-N", "-o", "%N").split() == ["cn1", "cn2"]

    def test_a_job_from_the_home_runs_on_the_site_and_its_output_is_read_in_jupyterlab(self, stack, site):
        stack.exec("mkdir -p p && cat > p/test.slurm", input=(ROOT / "examples" / "test.slurm").read_text())
        job = stack.exec("cd p && sbatch --parsable test.slurm").strip().split(";")[0]
        stack.jobs.append(job)
        site.wait_job(job, timeout=90)
        out = stack.exec(f"cat p/test-{job}.out")
        assert f"as {USER}" in out and "held 1024 MiB" in out, out

    def test_a_two_node_job_runs_on_both_site_nodes(self, stack, site):
        stack.exec("mkdir -p p && cat > p/two-nodes.slurm", input=(ROOT / "examples" / "two-nodes.slurm").read_text())
        job = stack.exec("cd p && sbatch --parsable two-nodes.slurm").strip().split(";")[0]
        site.wait_job(job)
        assert site.nodes_of(job) == ["cn1", "cn2"]
        out = stack.exec(f"cat p/two-nodes-{job}.out")
        assert sorted(line.split()[-1] for line in out.splitlines()) == ["cn1", "cn2"], out

    def test_the_stacks_slurmrestd_takes_the_sites_tokens_only(self, stack, site):
        client = stack.rest(site.token(USER))
        assert client.ping(), "slurmrestd should see the site's slurmctld UP"
        job = client.submit("#!/bin/bash\necho rest job as $(id -un) on $SLURMD_NODENAME\n", name="site-rest",
                            cwd=f"/home/{USER}")
        assert client.wait_job(job, "COMPLETED", timeout=60) == "COMPLETED"
        assert site.sacct_state(str(job)) == "COMPLETED"
        with pytest.raises(SlurmRestError):
            stack.rest(forged_token(USER)).submit("#!/bin/bash\ntrue\n", name="forged", cwd=f"/home/{USER}")
