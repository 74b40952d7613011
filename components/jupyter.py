"""SlurmJupyter: one JupyterLab (slurm-jupyter image, jupyterlab-slurm) that submits to the stack's Slurm.

Its token is generated (pulumi-random), kept in a Kubernetes Secret and reaches the container through a
secretKeyRef (JUPYTER_TOKEN, which the image's entrypoint requires); the stack exports it as a secret.

With the site's LDAP directory (config `ldap`) the pod resolves it through an nslcd beside JupyterLab
(pods.nslcd_sidecar(native=True): the only container that gets the directory's Secret, with the bind password; an
emptyDir shares /run/nslcd). It is a native sidecar, whose startup probe passes once nslcd listens: JupyterLab's
container starts only then, so its entrypoint finds `user` (NB_USER) in the directory at start, runs JupyterLab as
them, and `id`, `ls -l` and Slurm's commands in its terminal show the directory's names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import pods
from components.client_app import ClientApp, client_app, slurm_volumes
from components.keys import MUNGE_KEY_FILE
from components.labels import labels

APP = "slurm-jupyter"
PORT = 8888
TOKEN_LENGTH = 48  # the entrypoint refuses tokens under 16 characters or with white space
TOKEN_KEY = "token"
TOKEN_ENV = "JUPYTER_TOKEN"
USER_ENV = "NB_USER"  # the directory user the entrypoint runs JupyterLab as (dockerfiles/README.md)


@dataclass
class SlurmJupyterArgs:
    namespace: pulumi.Input[str]
    name: str  # Deployment and Service name
    image: pulumi.Input[str]  # slurm-jupyter by digest
    config_map_name: pulumi.Input[str]
    munge_secret_name: pulumi.Input[str]
    directory_config_map: pulumi.Input[str]
    home_claim: pulumi.Input[str]  # the shared home (ReadWriteMany), mounted at /home
    user: str  # a directory user: JupyterLab runs as them, in /home/<user>
    rotation: str  # changing it generates a new token
    network_policy: k8s.networking.v1.NetworkPolicySpecArgs  # who may reach it: components/network.py
    slurm_env: Mapping[str, str] = field(default_factory=dict)  # SlurmConfig.client_env
    image_pull_secret: Optional[pulumi.Input[str]] = None  # components.registry.pull_secret()
    key_file: str = MUNGE_KEY_FILE  # the file of that Secret: munge.key, or an auth/slurm site's slurm.key
    directory_secret: Optional[pulumi.Input[str]] = None  # config `ldap`: Core.directory_secret, for its nslcd
    nslcd_image: Optional[pulumi.Input[str]] = None  # with it: slurm-client by digest, the nslcd sidecar's


class SlurmJupyter(pulumi.ComponentResource):
    """Outputs: `token` (secret), `service_name`, `url` (in-cluster JupyterLab URL)."""

    def __init__(self, name: str, args: SlurmJupyterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmJupyter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        token = random.RandomPassword(f"{name}-token", length=TOKEN_LENGTH, special=False,
                                      keepers={"rotation": args.rotation}, opts=child)
        self.token = pulumi.Output.secret(token.result)
        token_secret = k8s.core.v1.Secret(
            f"{name}-token",
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=args.namespace, labels=labels(APP, "notebook")),
            type="Opaque",
            string_data={TOKEN_KEY: self.token},
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])),
        )

        volumes, mounts = slurm_volumes(args.config_map_name, args.munge_secret_name, args.key_file)
        volumes += [pods.directory_volume(args.directory_config_map), pods.home_volume(args.home_claim)]
        mounts += pods.directory_mounts(home=True)
        init_containers = []
        if args.directory_secret is not None:
            nslcd = pods.nslcd_sidecar(args.nslcd_image, args.directory_config_map, args.directory_secret, native=True)
            volumes += nslcd.volumes
            mounts.append(nslcd.mount)
            init_containers.append(nslcd.container)
        service = client_app(name, ClientApp(
            app=APP, component="notebook", name=args.name, namespace=args.namespace, container="jupyterlab",
            image=args.image, port=PORT,
            # GET /api answers without authentication (server version only). Each second until it first answers,
            # so the pod is Ready within a second of JupyterLab (up to 120 s for a slow start); then every 5 s.
            startup_probe=pods.http_probe("/api", PORT, period=1, failures=120),
            readiness_probe=pods.http_probe("/api", PORT, period=5),
            liveness_probe=pods.http_probe("/api", PORT, period=20, initial_delay=30),
            resources=pods.resources("250m", "512Mi", "2", "4Gi"),
            volumes=volumes, volume_mounts=mounts, init_containers=init_containers,
            network_policy=args.network_policy, policy="ingress",
            env=[k8s.core.v1.EnvVarArgs(
                name=TOKEN_ENV,
                value_from=k8s.core.v1.EnvVarSourceArgs(secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                    name=token_secret.metadata.name, key=TOKEN_KEY))),
                k8s.core.v1.EnvVarArgs(name=USER_ENV, value=args.user), *pods.env(args.slurm_env)],
            strategy="Recreate",  # one JupyterLab at a time
            image_pull_secret=args.image_pull_secret,
        ), self)
        self.service_name = service.metadata.name
        self.url = pods.service_url(self.service_name, args.namespace, PORT, "/lab")
        self.register_outputs({"token": self.token, "service_name": self.service_name, "url": self.url})
