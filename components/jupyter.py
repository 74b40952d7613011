"""SlurmJupyter: one JupyterLab (slurm-jupyter image, jupyterlab-slurm) that submits to the stack's Slurm.

Its token is generated (pulumi-random), kept in a Kubernetes Secret and reaches the container through a
secretKeyRef (JUPYTER_TOKEN, which the image's entrypoint requires); the stack exports it as a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import pods
from components.labels import labels, selector

APP = "slurm-jupyter"
PORT = 8888
TOKEN_LENGTH = 48  # the entrypoint refuses tokens under 16 characters or with white space
TOKEN_KEY = "token"
TOKEN_ENV = "JUPYTER_TOKEN"


@dataclass
class SlurmJupyterArgs:
    namespace: pulumi.Input[str]
    name: str  # Deployment and Service name
    image: pulumi.Input[str]  # slurm-jupyter by digest
    config_map_name: pulumi.Input[str]
    munge_secret_name: pulumi.Input[str]
    rotation: str  # changing it generates a new token
    slurm_apps: Sequence[str] = ()  # app.kubernetes.io/name of Slurm pods that may connect back (srun)
    image_pull_secret: Optional[pulumi.Input[str]] = None  # SlurmImages.pull_secret_name


class SlurmJupyter(pulumi.ComponentResource):
    """Outputs: `token` (secret), `service_name`, `url` (in-cluster JupyterLab URL)."""

    def __init__(self, name: str, args: SlurmJupyterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmJupyter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = dict(namespace=args.namespace, labels=labels(APP, "notebook"))

        token = random.RandomPassword(f"{name}-token", length=TOKEN_LENGTH, special=False,
                                      keepers={"rotation": args.rotation}, opts=child)
        self.token = pulumi.Output.secret(token.result)
        token_secret = k8s.core.v1.Secret(
            f"{name}-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(**meta),
            type="Opaque",
            string_data={TOKEN_KEY: self.token},
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])),
        )

        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, **meta),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),  # one JupyterLab at a time
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(APP)),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels(APP, "notebook")),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        image_pull_secrets=pods.pull_secrets(args.image_pull_secret),
                        enable_service_links=False,
                        security_context=pods.pod_security_context(),
                        containers=[k8s.core.v1.ContainerArgs(
                            name="jupyterlab",
                            image=args.image,
                            image_pull_policy="IfNotPresent",
                            ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=PORT, protocol="TCP")],
                            env=[k8s.core.v1.EnvVarArgs(
                                name=TOKEN_ENV,
                                value_from=k8s.core.v1.EnvVarSourceArgs(secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                                    name=token_secret.metadata.name, key=TOKEN_KEY)))],
                            volume_mounts=pods.slurm_mounts(),
                            # GET /api answers without authentication (server version only).
                            readiness_probe=pods.http_probe("/api", PORT, period=5),
                            liveness_probe=pods.http_probe("/api", PORT, period=20, initial_delay=30),
                            resources=pods.resources("250m", "512Mi", "2", "4Gi"),
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
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, **meta),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="ClusterIP",
                selector=selector(APP),
                ports=[k8s.core.v1.ServicePortArgs(name="http", port=PORT, target_port=PORT, protocol="TCP")],
            ),
            opts=child,
        )
        # JupyterLab (token-protected) from anywhere; any port from the Slurm nodes (srun's step connections).
        rules = [pods.ingress_rule([PORT])]
        if args.slurm_apps:
            rules.append(pods.ingress_rule((), args.slurm_apps))
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, **meta),
            spec=pods.ingress_policy(selector(APP), rules),
            opts=child,
        )
        self.service_name = service.metadata.name
        self.url = pods.service_url(self.service_name, args.namespace, PORT, "/lab")
        self.register_outputs({"token": self.token, "service_name": self.service_name, "url": self.url})
