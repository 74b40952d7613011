"""SlurmRestd: slurmrestd (JWT authentication) from the slurm-client image, for the stack's Slurm.

The image's entrypoint with no command sets up munge and runs slurmrestd as an unprivileged user on the loopback
(BACKEND), behind its REST gate on 0.0.0.0:6820, which passes a request on only once slurmctld has accepted its
token (dockerfiles/README.md). A NetworkPolicy admits to that port only the clients of the stack's network graph
(components/network.py: config restd.allowedClients). A request that crashes slurmrestd ends this pod's container
alone, which Kubernetes restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from components import pods
from components.client_app import ClientApp, client_app, slurm_volumes
from components.keys import MUNGE_KEY_FILE
from components.slurm_files import SLURMRESTD_PORT

APP = "slurmrestd"
BACKEND = "127.0.0.1:6880"  # where slurmrestd itself listens, behind the gate (SLURMRESTD_BACKEND)
GATE_DIR = "/run/slurm-rest-gate"  # the gate's nginx.conf and its cache of checks (slurm-client-entrypoint)
# Ready once slurmrestd answers behind the gate (a TCP probe of 6820 would reach only the gate).
READY = ("bash", "-c", f"exec 3<>/dev/tcp/{BACKEND.replace(':', '/')} 4<>/dev/tcp/127.0.0.1/{SLURMRESTD_PORT}")


@dataclass
class SlurmRestdArgs:
    namespace: pulumi.Input[str]
    name: str  # Deployment and Service name
    image: pulumi.Input[str]  # slurm-client by digest
    config_map_name: pulumi.Input[str]
    munge_secret_name: pulumi.Input[str]
    directory_config_map: pulumi.Input[str]  # the user directory (X-SLURM-USER-NAME resolves through it)
    network_policy: k8s.networking.v1.NetworkPolicySpecArgs  # who may reach port 6820: components/network.py
    slurm_env: Mapping[str, str] = field(default_factory=dict)  # SlurmConfig.client_env
    replicas: int = 1
    directory_secret: Optional[pulumi.Input[str]] = None  # config `ldap`: nslcd.conf and the CA (Core.directory_secret)
    image_pull_secret: Optional[pulumi.Input[str]] = None  # components.registry.pull_secret()
    key_file: str = MUNGE_KEY_FILE  # the file of that Secret: munge.key, or an auth/slurm site's slurm.key


class SlurmRestd(pulumi.ComponentResource):
    """Outputs: `service_name`, `url` (in-cluster)."""

    def __init__(self, name: str, args: SlurmRestdArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmRestd", name, None, opts)
        volumes, mounts = slurm_volumes(args.config_map_name, args.munge_secret_name, args.key_file)
        service = client_app(name, ClientApp(
            app=APP, component="rest-api", name=args.name, namespace=args.namespace, container="slurmrestd",
            image=args.image, port=SLURMRESTD_PORT,
            readiness_probe=pods.exec_probe(READY, period=5, timeout=3),
            liveness_probe=pods.exec_probe(READY, period=20, timeout=3, initial_delay=30),
            # GET /jobs holds its whole answer: about 160 KB a job slurmctld knows (jobs end, then stay MinJobAge,
            # 300 s), 558 MB with 3500 (lib.sh slurmrestd_command); 512Mi ended it at about 1500 jobs.
            resources=pods.resources("100m", "128Mi", "1", "1Gi"),
            volumes=[*volumes, pods.directory_volume(args.directory_config_map, args.directory_secret),
                     # The REST gate's checks, keyed by users' tokens (slurm-rest-gate.conf): in memory, not on disk.
                     k8s.core.v1.VolumeArgs(name="rest-gate", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                         medium="Memory", size_limit="16Mi"))],
            volume_mounts=[*mounts, *pods.directory_mounts(home=False),
                           k8s.core.v1.VolumeMountArgs(name="rest-gate", mount_path=GATE_DIR)],
            network_policy=args.network_policy,
            env=pods.env({**args.slurm_env, "SLURMRESTD_BACKEND": BACKEND}),
            policy="clients", replicas=args.replicas, image_pull_secret=args.image_pull_secret,
        ), self)
        self.service_name = service.metadata.name
        self.url = pods.service_url(self.service_name, args.namespace, SLURMRESTD_PORT)
        self.register_outputs({"service_name": self.service_name, "url": self.url})
