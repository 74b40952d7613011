"""SlurmRestd: slurmrestd (JWT authentication) from the slurm-client image, for the stack's Slurm.

The image's entrypoint with no command sets up munge and runs slurmrestd as an unprivileged user on
0.0.0.0:6820 (dockerfiles/README.md). A NetworkPolicy admits to that port only pods whose
app.kubernetes.io/name is in `allowed_clients`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import pods
from components.labels import labels, selector
from components.slurm_files import SLURMRESTD_PORT

APP = "slurmrestd"


@dataclass
class SlurmRestdArgs:
    namespace: pulumi.Input[str]
    name: str  # Deployment and Service name
    image: pulumi.Input[str]  # slurm-client by digest
    config_map_name: pulumi.Input[str]
    munge_secret_name: pulumi.Input[str]
    allowed_clients: Sequence[str]  # app.kubernetes.io/name values admitted to port 6820
    replicas: int = 1
    image_pull_secret: Optional[pulumi.Input[str]] = None  # SlurmImages.pull_secret_name


class SlurmRestd(pulumi.ComponentResource):
    """Outputs: `service_name`, `url` (in-cluster)."""

    def __init__(self, name: str, args: SlurmRestdArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmRestd", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = dict(name=args.name, namespace=args.namespace, labels=labels(APP, "rest-api"))

        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(**meta),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(APP)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels(APP, "rest-api")),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        image_pull_secrets=pods.pull_secrets(args.image_pull_secret),
                        enable_service_links=False,
                        security_context=pods.pod_security_context(),
                        containers=[k8s.core.v1.ContainerArgs(
                            name="slurmrestd",
                            image=args.image,
                            image_pull_policy="IfNotPresent",
                            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=SLURMRESTD_PORT,
                                                                 protocol="TCP")],
                            volume_mounts=pods.slurm_mounts(),
                            readiness_probe=pods.tcp_probe(SLURMRESTD_PORT, period=5),
                            liveness_probe=pods.tcp_probe(SLURMRESTD_PORT, period=20, initial_delay=30),
                            resources=pods.resources("100m", "128Mi", "1", "512Mi"),
                            security_context=pods.root_start_security_context(),
                        )],
                        volumes=[pods.config_volume(args.config_map_name), pods.keys_volume(args.munge_secret_name)],
                    ),
                ),
            ),
            opts=child,
        )
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(**meta),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector(APP),
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=SLURMRESTD_PORT, target_port=SLURMRESTD_PORT,
                                                   protocol="TCP")],
            ),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-clients",
            metadata=k8s.meta.v1.ObjectMetaArgs(**meta),
            # No allowed clients: the policy admits nothing.
            spec=pods.ingress_policy(selector(APP), [pods.ingress_rule([SLURMRESTD_PORT], args.allowed_clients)]
                                     if args.allowed_clients else []),
            opts=child,
        )
        self.service_name = service.metadata.name
        self.url = pods.service_url(self.service_name, args.namespace, SLURMRESTD_PORT)
        self.register_outputs({"service_name": self.service_name, "url": self.url})
