"""Wires the components together from one StackConfig; returns the stack outputs."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.config import StackConfig
from components.images import SlurmImages, SlurmImagesArgs
from components.keys import SlurmKeys, SlurmKeysArgs
from components.labels import labels


def build(cfg: StackConfig) -> dict[str, pulumi.Input]:
    provider = k8s.Provider(
        "kubernetes",
        context=cfg.kubernetes.context,
        render_yaml_to_directory=cfg.kubernetes.render_dir,
    )
    k8s_opts = pulumi.ResourceOptions(provider=provider)
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=cfg.namespace, labels=labels(cfg.namespace, "namespace")),
        opts=k8s_opts,
    ).metadata.name

    keys = SlurmKeys(
        "slurm-keys",
        SlurmKeysArgs(namespace=namespace, rotation=cfg.key_rotation, munge_key=cfg.munge_key,
                      jwt=cfg.existing_cluster is None),
        opts=k8s_opts,
    )
    images = SlurmImages("images", SlurmImagesArgs.from_config(cfg))

    outputs: dict[str, pulumi.Input] = {
        "namespace": namespace,
        "slurmVersion": cfg.slurm_version,
        "images": images.refs,
        "mungeSecret": keys.munge_secret_name,
    }
    return outputs
