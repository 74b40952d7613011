"""The skeleton every client app shares: a Deployment of one container that serves HTTP on one port with its
volumes (the Slurm files and the munge key: `slurm_volumes()`, the user directory, ...) mounted, a ClusterIP
Service in front of it and a NetworkPolicy for its pods (its spec from the stack's network graph,
components/network.py).

Each app (SlurmRestd, SlurmJupyter, TokenService) is a small `ClientApp` spec and `client_app()` makes the three objects from
it on the pod base of components/pods.py (`pod_template()`, `container()`), so labels, selector, security contexts,
mounts and the pull Secret are written once (as Slinky's slurm-operator does with its common builder,
internal/builder/common).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import pods
from components.keys import MUNGE_KEY_FILE
from components.labels import labels, selector


@dataclass
class ClientApp:
    app: str  # app.kubernetes.io/name: what the Service and the NetworkPolicy select
    component: str  # app.kubernetes.io/component
    name: str  # Kubernetes name of the Deployment, Service and NetworkPolicy
    namespace: pulumi.Input[str]
    container: str  # the container's name
    image: pulumi.Input[str]  # by digest
    port: int  # the container's and the Service's one port, named "http"
    readiness_probe: k8s.core.v1.ProbeArgs
    liveness_probe: k8s.core.v1.ProbeArgs
    resources: k8s.core.v1.ResourceRequirementsArgs
    volumes: Sequence[k8s.core.v1.VolumeArgs]
    volume_mounts: Sequence[k8s.core.v1.VolumeMountArgs]
    network_policy: k8s.networking.v1.NetworkPolicySpecArgs  # components/network.py Graph.ingress()
    policy: str  # the NetworkPolicy's Pulumi name is `{name}-{policy}`
    env: Sequence[k8s.core.v1.EnvVarArgs] = ()
    command: Optional[Sequence[str]] = None  # instead of the image's ENTRYPOINT
    run_as: Optional[int] = None  # a non-root uid (also the pod's fsGroup, so it reads its Secrets); None: the
    #                               image starts as root and drops to other users itself
    pod_labels: Optional[dict] = None  # beside the app's own
    pod_annotations: Optional[dict] = None  # e.g. components.metrics.scrape_annotations()
    extra_ports: Sequence[tuple[str, int]] = ()  # (name, port) the container serves beside `port`, not the Service
    replicas: int = 1
    strategy: Optional[str] = None  # the Deployment's strategy type (None: Kubernetes' RollingUpdate)
    image_pull_secret: Optional[pulumi.Input[str]] = None  # components.registry.pull_secret()
    startup_probe: Optional[k8s.core.v1.ProbeArgs] = None  # e.g. the readiness check at a short period
    sidecars: Sequence[k8s.core.v1.ContainerArgs] = ()  # after the app's container, e.g. pods.nslcd_sidecar()
    init_containers: Sequence[k8s.core.v1.ContainerArgs] = ()  # before it, e.g. a native pods.nslcd_sidecar()


def slurm_volumes(config_map_name: pulumi.Input[str], munge_secret_name: pulumi.Input[str],
                  key_file: str = MUNGE_KEY_FILE
                  ) -> tuple[list[k8s.core.v1.VolumeArgs], list[k8s.core.v1.VolumeMountArgs]]:
    """The volumes and mounts of a Slurm client: the Slurm files and the munge key, or `key_file` (an auth/slurm
    site's slurm.key), from SlurmConfig's and SlurmKeys' Secrets."""
    return ([pods.config_volume(config_map_name), pods.keys_volume(munge_secret_name, key_file=key_file)],
            pods.slurm_mounts())


def client_app(name: str, spec: ClientApp, parent: pulumi.Resource) -> k8s.core.v1.Service:
    """Makes `{name}-deployment`, `{name}-service` and `{name}-{spec.policy}` as children of `parent` (the app's
    component, whose name is `name`); returns the Service."""
    child = pulumi.ResourceOptions(parent=parent)
    meta = k8s.meta.v1.ObjectMetaArgs(name=spec.name, namespace=spec.namespace, labels=labels(spec.app, spec.component))
    k8s.apps.v1.Deployment(
        f"{name}-deployment",
        metadata=meta,
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=spec.replicas,
            strategy=k8s.apps.v1.DeploymentStrategyArgs(type=spec.strategy) if spec.strategy else None,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(spec.app)),
            template=pods.pod_template(
                spec.app, spec.component, extra_labels=spec.pod_labels, image_pull_secret=spec.image_pull_secret,
                fs_group=spec.run_as, annotations=spec.pod_annotations,
                containers=[pods.container(
                    spec.container, spec.image, run_as=spec.run_as,
                    command=list(spec.command) if spec.command else None,
                    ports=[k8s.core.v1.ContainerPortArgs(name=name, container_port=port, protocol="TCP")
                           for name, port in (("http", spec.port), *spec.extra_ports)],
                    env=list(spec.env) or None,
                    volume_mounts=list(spec.volume_mounts),
                    startup_probe=spec.startup_probe,
                    readiness_probe=spec.readiness_probe,
                    liveness_probe=spec.liveness_probe,
                    resources=spec.resources,
                ), *spec.sidecars],
                volumes=spec.volumes,
                init_containers=list(spec.init_containers) or None,
            ),
        ),
        # One at a time (Recreate): replaced, not updated, when its pod changes, so that `pulumi up` returns only
        # once the new pod is ready. Updated in place, `pulumi up` once returned while the new JupyterLab pod was
        # still starting (tests/e2e/test_06_update.py); the provider's create await is sound (see single_node.py).
        opts=child if spec.strategy != "Recreate" else pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
            replace_on_changes=["spec.template"], delete_before_replace=True)),
    )
    service = k8s.core.v1.Service(
        f"{name}-service",
        # Not awaited (the Kubernetes provider's skipAwait): its Service await returns only once the Endpoints have
        # not changed for 10 s (pulumi-kubernetes provider/pkg/await/service.go, "settled"), which held the `pulumi
        # up` that makes the Service 10 s past the pods' readiness. The Deployment's await waits for those pods.
        metadata=k8s.meta.v1.ObjectMetaArgs(name=spec.name, namespace=spec.namespace,
                                            labels=labels(spec.app, spec.component),
                                            annotations={"pulumi.com/skipAwait": "true"}),
        spec=k8s.core.v1.ServiceSpecArgs(
            type="ClusterIP",
            selector=selector(spec.app),
            ports=[k8s.core.v1.ServicePortArgs(name="http", port=spec.port, target_port=spec.port, protocol="TCP")],
        ),
        opts=child,
    )
    k8s.networking.v1.NetworkPolicy(f"{name}-{spec.policy}", metadata=meta, spec=spec.network_policy, opts=child)
    return service
