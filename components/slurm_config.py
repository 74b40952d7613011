"""SlurmConfig: the rendered Slurm files of this stack, as one ConfigMap (+ one Secret for slurmdbd.conf).

Every consumer (slurm-single-node, slurmrestd, JupyterLab, JupyterHub's notebooks) mounts these same files,
so they cannot drift apart. The files come from `components/slurm_files.render_slurm_files()`; for an
existing cluster the ConfigMap holds that cluster's slurm.conf instead, or, for a configless one, no slurm.conf:
the clients fetch it from the cluster's controller, named by `client_env` (Slurm's SLURM_CONF_SERVER).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import site
from components.labels import labels
from components.slurm_files import AUTH_MUNGE, SECRET_FILES, Distributed, parse_slurm_conf, render_slurm_files

DB_PASSWORD_LENGTH = 32
# The non-secret files do not depend on the database password, so they are rendered with this stand-in
# and never from the secret itself (a secret is not turned back into plain text). build() checks the
# stand-in shows up in no ConfigMap file, so a template that started using the password there would fail.
_NO_PASSWORD = "stand-in-not-the-db-password"


@dataclass
class SlurmConfigArgs:
    namespace: pulumi.Input[str]
    cluster_name: str
    slurm_version: str
    nodes: int
    cpus_per_node: int
    memory_mb_per_node: int  # MiB, Slurm's MB
    controller_host: Optional[str] = None  # the single node pod's hostname (SlurmctldHost)
    controller_addr: Optional[str] = None  # its Service DNS name (clients and the node itself use it)
    existing_slurm_conf: Optional[str] = None  # slurm.conf text of an existing cluster (then no render)
    configless: bool = False  # with existing_slurm_conf: the clients fetch slurm.conf from its controller
    distributed: Optional[Distributed] = None  # the distributed deployment's (components/distributed.py)
    auth_type: str = AUTH_MUNGE  # slurm.conf's AuthType (config authType; not with existing_slurm_conf)


class SlurmConfig(pulumi.ComponentResource):
    """Outputs: `config_map_name`; `secret_name` (slurmdbd.conf, None for an existing cluster) and
    `secret_files`; `files` (the non-secret files' text, {name: text}); `client_env` (environment every Slurm
    client container gets, {name: value})."""

    def __init__(self, name: str, args: SlurmConfigArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmConfig", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = dict(namespace=args.namespace, labels=labels("slurm-config", "config"))

        self.secret_name: Optional[pulumi.Output[str]] = None
        self.secret_files: tuple[str, ...] = ()
        self.client_env: dict[str, str] = {}
        if args.existing_slurm_conf is not None:
            self.files = existing_cluster_image_env(args.existing_slurm_conf, args.cluster_name, args.slurm_version)
            if args.configless:
                self.client_env["SLURM_CONF_SERVER"] = site.describe(args.existing_slurm_conf).conf_server
            else:
                self.files["slurm.conf"] = args.existing_slurm_conf
        else:
            if not args.controller_host or not args.controller_addr:
                raise ValueError("SlurmConfig needs controller_host and controller_addr unless existing_slurm_conf is set")

            def render(db_password: str) -> dict[str, str]:
                return render_slurm_files(args.cluster_name, args.slurm_version, args.nodes,
                                          args.controller_host, args.controller_addr, db_password=db_password,
                                          cpus_per_node=args.cpus_per_node,
                                          memory_mb_per_node=args.memory_mb_per_node,
                                          distributed=args.distributed, auth_type=args.auth_type)

            plain = render(_NO_PASSWORD)
            self.files = {f: text for f, text in plain.items() if f not in SECRET_FILES}  # CONFIG_FILES (+ gres.conf)
            leaked = [f for f, text in self.files.items() if _NO_PASSWORD in text]
            if leaked:
                raise ValueError(f"{leaked} would hold the database password: only {SECRET_FILES} may")

            password = random.RandomPassword(f"{name}-db-password", length=DB_PASSWORD_LENGTH, special=False,
                                             opts=child)
            secret_text = pulumi.Output.secret(password.result).apply(
                lambda pw: {f: render(pw)[f] for f in SECRET_FILES})
            secret = k8s.core.v1.Secret(
                f"{name}-secret",
                metadata=k8s.meta.v1.ObjectMetaArgs(**meta),
                type="Opaque",
                string_data=secret_text,
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])),
            )
            self.secret_name = secret.metadata.name
            self.secret_files = SECRET_FILES

        # Auto-named: a changed file makes a new ConfigMap, so every pod that mounts it rolls.
        config_map = k8s.core.v1.ConfigMap(f"{name}-files", metadata=k8s.meta.v1.ObjectMetaArgs(**meta),
                                           data=self.files, opts=child)
        self.config_map_name = config_map.metadata.name
        self.register_outputs({"config_map_name": self.config_map_name, "secret_name": self.secret_name,
                               "files": self.files})


def existing_cluster_image_env(slurm_conf: str, cluster_name: str, slurm_version: str) -> dict[str, str]:
    """slurm-image.env (the version facts the images read) for an existing cluster's slurm.conf.

    render_slurm_files() renders it with the other files; here only it is kept, filled with the cluster's
    own ClusterName and SlurmctldHost where the renderer accepts them.
    """
    found = parse_slurm_conf(slurm_conf)
    host = (found.get("slurmctldhost") or found.get("controlmachine") or "slurmctld").split("(")[0]
    errors = []
    for name in dict.fromkeys((found.get("clustername", cluster_name), cluster_name)):
        try:
            rendered = render_slurm_files(name, slurm_version, 1, host.split(".")[0], db_password=_NO_PASSWORD)
            return {"slurm-image.env": rendered["slurm-image.env"]}
        except ValueError as e:
            errors.append(str(e))
    raise ValueError(f"cannot describe the existing cluster's slurm.conf for the images: {'; '.join(errors)}")
