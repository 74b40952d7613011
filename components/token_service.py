"""TokenService: mints each JupyterHub user a short-lived Slurm JWT, so user pods hold no cluster key.

`slurm-token-service` of the notebook image (dockerfiles/README.md) with the JWT key mounted, as a non-root
user. A user's server asks it with its own JupyterHub API token (`slurm-token`, which the Slurm commands'
wrapper calls); the service asks the hub whose token that is and answers a JWT for that user only, if they are
in the directory. Only the hub's user pods may reach it (NetworkPolicy); it reaches the hub through the chart's
hub NetworkPolicy, which admits pods labelled `hub.jupyter.org/network-access-hub`.

With `metrics` it also serves its Prometheus figures (tokens issued, refused by reason, answer time) on
TOKEN_METRICS_PORT, a container port of its own named `metrics` that only the metrics scraper may reach (the
network graph), announced by scrape annotations with `annotate` (no Prometheus Operator: components/monitoring.py).

With the site's LDAP directory (config `ldap`) it checks each request's user through NSS (SLURM_TOKEN_DIRECTORY=nss),
which an nslcd beside it answers (pods.nslcd_sidecar(): the only container that gets the directory's Secret, with
the bind password), so a user removed from the directory gets no new token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import pods
from components.client_app import ClientApp, client_app
from components.directory import EXTRAUSERS_DIR
from components.keys import JWT_KEY_FILE
from components.metrics import TOKEN_METRICS_PORT, scrape_annotations
from components.slurm_files import TOKEN_LIFETIME_S

APP = "slurm-token"
PORT = 8090
RUN_AS = 65534  # nobody: the service needs no identity of its own
COMMAND = ("/opt/jupyter/bin/python", "/usr/local/bin/slurm-token-service")
METRICS_PORT_NAME = "metrics"  # the container port of TOKEN_METRICS_PORT (a PodMonitor names it)
HUB_API = "http://hub:8081/hub/api"  # the chart's hub Service (z2jh 4.3.3 templates/hub/service.yaml), same namespace


@dataclass
class TokenServiceArgs:
    namespace: pulumi.Input[str]
    name: str  # Deployment and Service name
    image: pulumi.Input[str]  # slurm-jupyter-notebook by digest
    jwt_secret_name: pulumi.Input[str]  # SlurmKeys'
    directory_config_map: pulumi.Input[str]
    network_policy: k8s.networking.v1.NetworkPolicySpecArgs  # who may ask (the hub's user pods): components/network.py
    image_pull_secret: Optional[pulumi.Input[str]] = None
    metrics: bool = False  # serve its figures on TOKEN_METRICS_PORT (config metrics.enabled)
    annotate: bool = False  # with the scrape annotations (no Prometheus Operator)
    directory_secret: Optional[pulumi.Input[str]] = None  # config `ldap`: Core.directory_secret, for its nslcd
    nslcd_image: Optional[pulumi.Input[str]] = None  # with it: slurm-client by digest, the nslcd sidecar's


class TokenService(pulumi.ComponentResource):
    """Outputs: `url` (in-cluster, of the /token endpoint)."""

    def __init__(self, name: str, args: TokenServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:TokenService", name, None, opts)
        env = {"SLURM_JWT_KEY_FILE": f"{pods.KEYS_MOUNT}/{JWT_KEY_FILE}", "JUPYTERHUB_API_URL": HUB_API,
               "SLURM_TOKEN_DIRECTORY": f"{EXTRAUSERS_DIR}/passwd", "SLURM_TOKEN_PORT": str(PORT),
               "SLURM_TOKEN_LIFETIME": str(TOKEN_LIFETIME_S)}
        if args.metrics:
            env["SLURM_TOKEN_METRICS_PORT"] = str(TOKEN_METRICS_PORT)
        volumes = [pods.keys_volume(None, args.jwt_secret_name), pods.directory_volume(args.directory_config_map)]
        mounts = [k8s.core.v1.VolumeMountArgs(name="slurm-keys", mount_path=pods.KEYS_MOUNT, read_only=True),
                  *pods.directory_mounts(home=False)]
        sidecars = []
        if args.directory_secret is not None:
            env["SLURM_TOKEN_DIRECTORY"] = "nss"
            nslcd = pods.nslcd_sidecar(args.nslcd_image, args.directory_config_map, args.directory_secret)
            volumes += nslcd.volumes
            mounts.append(nslcd.mount)
            sidecars.append(nslcd.container)
        service = client_app(name, ClientApp(
            app=APP, component="tokens", name=args.name, namespace=args.namespace, container="slurm-token",
            image=args.image, port=PORT, command=COMMAND, run_as=RUN_AS,
            pod_labels={"hub.jupyter.org/network-access-hub": "true"},
            pod_annotations=scrape_annotations(TOKEN_METRICS_PORT) if args.metrics and args.annotate else None,
            extra_ports=((METRICS_PORT_NAME, TOKEN_METRICS_PORT),) if args.metrics else (),
            readiness_probe=pods.http_probe("/health", PORT, period=5),
            liveness_probe=pods.http_probe("/health", PORT, period=20, initial_delay=10),
            resources=pods.resources("50m", "96Mi", "500m", "256Mi"),
            volumes=volumes, volume_mounts=mounts, sidecars=sidecars,
            env=pods.env(env),
            network_policy=args.network_policy, policy="clients",
            image_pull_secret=args.image_pull_secret,
        ), self)
        self.url = pods.service_url(service.metadata.name, args.namespace, PORT, "/token")
        self.register_outputs({"url": self.url})
