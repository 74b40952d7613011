"""The `site` stack (Pulumi.site.yaml: only the clients, against an existing Slurm cluster) on a copy of its
config pointed at a running tests/site_cluster.py site, and the site's home offered to Kubernetes as the site admin
would (a PersistentVolume): shared by tests/e2e/test_07_site.py and test_11_ldap.py."""

from __future__ import annotations

import base64
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from components import jupyter, restd
from components.slurm_files import SLURMRESTD_PORT
from tests.e2e.deployment import TIMINGS, Deployment
from tests.e2e.kube import Kube
from tests.project_env import ROOT, pulumi
from tests.site_cluster import SiteCluster
from tests.slurm_rest import SlurmRest

STACK = "site"
NAMESPACE = "site"
HOME_VOLUME = "sci-site-home"  # Pulumi.site.yaml's home.volume: the site admin's PersistentVolume of its /home
USER = "alice"


@contextmanager
def site_home_volume(site: SiteCluster) -> Iterator[None]:
    """The site's /home as a PersistentVolume (HOME_VOLUME), removed afterwards."""
    kube = Kube(NAMESPACE)
    kube.create({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": HOME_VOLUME},
                 "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany"],
                          "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                          "hostPath": {"path": str(site.home), "type": "Directory"}}})
    try:
        yield
    finally:
        kube.kubectl("delete", "pv", HOME_VOLUME, "--ignore-not-found", namespaced=False)


class SiteStack(Deployment):
    """The `site` stack on a copy of Pulumi.site.yaml, pointed at `site`, with the site's keys."""

    def __init__(self, site: SiteCluster, config: Path):
        super().__init__(Kube(NAMESPACE))
        self.site, self.config = site, config
        self.jobs: list[str] = []  # submitted from JupyterLab: the site's accounting keeps them after the destroy
        config.write_text((ROOT / "Pulumi.site.yaml").read_text())
        self.set("--path", "existingCluster.slurmConf", str(site.slurm_conf_path))

    def set(self, *args: str, secret: bool = False) -> None:
        pulumi("config", "set", *(["--secret"] if secret else []), *args, stack=STACK, config_file=self.config)

    def up(self, *, munge_key: bytes, configless: bool, check: bool = True):
        self.set("mungeKey", base64.b64encode(munge_key).decode(), secret=True)
        self.set("jwtKey", base64.b64encode(self.site.jwt_key).decode(), secret=True)  # the token service signs with it
        self.set("--path", "existingCluster.configless", str(configless).lower())
        t0 = time.monotonic()
        proc = pulumi("up", "--yes", "--skip-preview", stack=STACK, config_file=self.config, check=check,
                      timeout=900)
        TIMINGS[f"pulumi up --stack site ({'configless' if configless else 'copied slurm.conf'}"
                f"{'' if munge_key == self.site.munge_key else ', another munge key'})"] = time.monotonic() - t0
        return proc

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

    def output(self, name: str) -> str:
        return pulumi("stack", "output", name, stack=STACK).stdout.strip()  # (`stack output` takes no config file)

    def destroy(self) -> None:
        t0 = time.monotonic()
        pulumi("destroy", "--yes", "--skip-preview", stack=STACK, config_file=self.config, timeout=600)
        TIMINGS["pulumi destroy --stack site"] = time.monotonic() - t0
