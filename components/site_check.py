"""SiteCheck: before the clients of an existing cluster roll out, one pod checks that the site's slurmctld accepts
the stack's munge key (or, for a site with AuthType=auth/slurm, its slurm.key).

A Kubernetes Job runs `slurm-munge-check` (slurm-client image, dockerfiles/README.md) with the files and the key
every client gets. The Kubernetes provider fails `pulumi up` as soon as the Job fails, with the pod's last words
(terminationMessagePolicy FallbackToLogsOnError), e.g. "munge key mismatch: ...", and `munge_secret_name` (the
key, once checked) keeps the clients from rolling out with a key the site refuses. A changed key or slurm.conf
changes the Job's pod, so the Job is made again and checks again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from components import pods
from components.client_app import slurm_volumes
from components.keys import MUNGE_KEY_FILE
from components.labels import labels

APP = "slurm-check"
DEADLINE_SECONDS = 120  # the pod's whole run: image pull, munged (or sackd), and the check's own timeouts (5 s + 10 s)


@dataclass
class SiteCheckArgs:
    namespace: pulumi.Input[str]
    image: pulumi.Input[str]  # slurm-client by digest
    config_map_name: pulumi.Input[str]  # SlurmConfig's
    munge_secret_name: pulumi.Input[str]  # the site's key (SlurmKeys, from config mungeKey or slurmKey)
    slurm_env: Mapping[str, str] = field(default_factory=dict)  # SlurmConfig.client_env
    image_pull_secret: Optional[pulumi.Input[str]] = None
    key_file: str = MUNGE_KEY_FILE  # the file of that Secret: munge.key, or an auth/slurm site's slurm.key


class SiteCheck(pulumi.ComponentResource):
    """Outputs: `munge_secret_name` (the Secret's name, known once the check passed)."""

    def __init__(self, name: str, args: SiteCheckArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SiteCheck", name, None, opts)
        volumes, mounts = slurm_volumes(args.config_map_name, args.munge_secret_name, args.key_file)
        job = k8s.batch.v1.Job(
            f"{name}-job",  # auto-named: a changed pod is a new Job
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=labels(APP, "check")),
            spec=k8s.batch.v1.JobSpecArgs(
                backoff_limit=0,  # a refused key stays refused: fail at once
                active_deadline_seconds=DEADLINE_SECONDS,
                template=pods.pod_template(
                    APP, "check", image_pull_secret=args.image_pull_secret, restart_policy="Never",
                    containers=[pods.container(
                        "slurm-munge-check", args.image, args=["slurm-munge-check"],
                        env=pods.env(args.slurm_env) or None, volume_mounts=mounts,
                        resources=pods.resources("50m", "64Mi", "500m", "256Mi"))],
                    volumes=volumes,
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.munge_secret_name = pulumi.Output.all(job.metadata.name, args.munge_secret_name).apply(lambda v: v[1])
        self.register_outputs({"munge_secret_name": self.munge_secret_name})
