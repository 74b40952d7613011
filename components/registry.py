"""The registry pull Secret: the stack's registry credentials as a kubernetes.io/dockerconfigjson Secret in the
namespace, which every pod (JupyterHub's chart included) names in its imagePullSecrets."""

from __future__ import annotations

import base64
import json
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.config import Images
from components.labels import labels


def docker_config_json(registry: str, username: str, password: str) -> str:
    """The `.dockerconfigjson` of a kubernetes.io/dockerconfigjson Secret for `registry` (host[:port][/path])."""
    host = registry.split("/", 1)[0]
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"username": username, "password": password, "auth": auth}}})


def pull_secret(name: str, images: Images, namespace: pulumi.Input[str],
                opts: Optional[pulumi.ResourceOptions] = None) -> Optional[pulumi.Output[str]]:
    """The Secret `name` holding images.username and images.password (kept secret); returns its Kubernetes name,
    or None without credentials (a public registry, or nodes that already have access: nothing is made)."""
    if images.password is None:
        return None
    config = pulumi.Output.secret(images.password).apply(
        lambda password: docker_config_json(images.registry, images.username, password))
    secret = k8s.core.v1.Secret(
        name,
        metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels("slurm-images", "registry")),
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": config},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])),
    )
    return secret.metadata.name
