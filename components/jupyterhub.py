"""JupyterHub: the official chart (zero-to-jupyterhub-k8s) whose notebooks are slurm-jupyter-notebook.

`jupyterhub_values()` is pure (plain values or Pulumi Inputs in, the chart's values out), so tests validate
it against the chart's own values schema. The notebook pods get the stack's non-secret Slurm files and the
munge key through the chart's `singleuser.extraFiles` (the chart keeps them in a Kubernetes Secret), at the
paths of the image contract (dockerfiles/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import chart_values, pods
from components.keys import MUNGE_KEY_FILE
from components.labels import PART_OF
from components.slurm_files import CONFIG_FILES, SLURMCTLD_PORT, SLURMDBD_PORT, parse_slurm_conf

APP = "jupyterhub"  # app.kubernetes.io/name of the notebook pods (restd.allowedClients default lists it)
CHART = "jupyterhub"
RELEASE = "jupyterhub"
PROXY_SERVICE = "proxy-public"  # the chart's fixed name (fullnameOverride "")
NOTEBOOK_CMD = "jupyterhub-singleuser"
ROOT_UID = 0  # the notebook entrypoint starts as root, then runs the server as jovyan (uid 1000, gid 100)
FS_GID = 0  # user pods' fsGroup: not a group of jovyan, so the munge key stays root-only (jupyterhub_values)
PASSWORD_LENGTH = 32


def split_image_ref(ref: str, tag: str) -> tuple[str, str]:
    """`registry/repo/image@sha256:...` -> (`registry/repo/image`, `<tag>@sha256:...`).

    The chart has no digest field: it joins `name:tag` (hub's KubeSpawner config and the image pullers alike),
    so the digest rides in the tag. `name:tag@sha256:...` is a valid reference; the runtime pulls the digest.
    """
    name, at, digest = ref.partition("@")
    if not at or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ValueError(f"image reference {ref!r} is not pinned by a sha256 digest")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:  # drop a tag already in the reference: the tag comes from `tag`
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name, f"{tag}@{digest}"


def slurm_egress(*, single_node_ports: Sequence[int] = (), single_node_app: str = "",
                 restd_app: str = "", restd_port: int = 0, existing_ports: Sequence[int] = ()) -> list[dict]:
    """NetworkPolicy egress rules the notebooks need beyond the chart's defaults (which block private IPs)."""
    rules: list[dict] = []
    tcp = lambda ports: [{"protocol": "TCP", "port": p} for p in ports]  # noqa: E731
    if single_node_ports:
        rules.append({"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": single_node_app}}}],
                      "ports": tcp(single_node_ports)})
    if restd_app:
        rules.append({"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": restd_app}}}],
                      "ports": tcp([restd_port])})
    if existing_ports:  # an existing cluster's controller and slurmdbd: addresses unknown here, ports known
        rules.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": tcp(existing_ports)})
    return rules


def existing_cluster_ports(slurm_conf: str) -> list[int]:
    """slurmctld's and slurmdbd's ports of an existing cluster's slurm.conf (Slurm's defaults if unset)."""
    conf = parse_slurm_conf(slurm_conf)
    low, _, high = (conf.get("slurmctldport") or str(SLURMCTLD_PORT)).partition("-")
    ports = list(range(int(low), int(high or low) + 1))
    if "slurmdbd" in conf.get("accountingstoragetype", ""):
        ports.append(int(conf.get("accountingstorageport") or SLURMDBD_PORT))
    return ports


def jupyterhub_values(*, image_name: pulumi.Input[str], image_tag: pulumi.Input[str],
                      config_files: Mapping[str, str], munge_key_base64: pulumi.Input[str],
                      hub_password: pulumi.Input[str], egress: Sequence[dict],
                      image_pull_secret: Optional[pulumi.Input[str]] = None) -> dict[str, Any]:
    """The chart values: notebook image by digest, Slurm files + munge key as extraFiles, tight defaults.

    How the chart and KubeSpawner use them (z2jh 4.3.3 files/hub/jupyterhub_config.py, kubespawner 7.0.0
    spawner.py and objects.py make_pod):
    - `singleuser.uid` and `fsGid` become KubeSpawner's `uid` (container runAsUser) and `fs_gid` (pod fsGroup)
      unless None; the chart's values.yaml defaults them to 1000 and 100. A null here never reaches Helm
      (see components/chart_values.py), so the chart's fsGid 100 stays (what issue 9 saw): be explicit.
    - The kubelet gives every file of the pod's volumes the fsGroup as group (owner kept) and ORs the mode
      with 0440 (read-only volumes: Secrets) or 0660, directories also setgid (kubernetes pkg/volume/
      volume_linux.go SetVolumeOwnership). fsGid 0 keeps the munge key root:root 0440: the entrypoint runs
      the server as jovyan with jovyan's own groups only (setpriv --init-groups), so group 0 does not reach
      it. The home PVC gets group 0 too, and the entrypoint (as root) gives its top directory to jovyan, who
      then writes it as owner.
    - `extraFiles` become items of one Secret volume `files` (item mode = `mode`, decimal) mounted by subPath.
    - `cmd` becomes the container's args (KubeSpawner `cmd` + the spawner's args), so the image's ENTRYPOINT
      (jupyter-entrypoint, which must start as root) always runs.
    """
    extra_files: dict[str, Any] = {
        f"slurm-config-{re.sub(r'[^a-z0-9]+', '-', name.lower())}": {
            "mountPath": f"{pods.CONFIG_MOUNT}/{name}", "stringData": text, "mode": pods.CONFIG_MODE}
        for name, text in sorted(config_files.items())
    }
    extra_files["munge-key"] = {"mountPath": f"{pods.KEYS_MOUNT}/{MUNGE_KEY_FILE}",
                                "binaryData": munge_key_base64, "mode": pods.KEY_MODE}
    values: dict[str, Any] = {
        "hub": {"config": {
            # Any user name with the generated password (not the chart's default "dummy" authenticator, whose
            # password is deprecated since JupyterHub 5.3, jupyterhub/auth.py). allow_all is set for this
            # authenticator only: choosing another one does not let in everyone it can identify.
            "JupyterHub": {"authenticator_class": "shared-password"},
            "SharedPasswordAuthenticator": {"user_password": hub_password, "allow_all": True},
        }},
        # Not on a public load balancer by default: reach it with kubectl port-forward or your own Ingress.
        "proxy": {"service": {"type": "ClusterIP"}},
        "singleuser": {
            "image": {"name": image_name, "tag": image_tag, "pullPolicy": "IfNotPresent"},
            "cmd": NOTEBOOK_CMD,
            "uid": ROOT_UID,
            "fsGid": FS_GID,
            "extraFiles": extra_files,
            "extraLabels": {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": PART_OF},
            "networkPolicy": {"egress": list(egress)},
            # The singleuser NetworkPolicy (enabled, cloudMetadataServer: false by default) already blocks the
            # metadata server; the chart's iptables way adds a privileged init container to every user pod.
            "cloudMetadata": {"blockWithIptables": False},
        },
    }
    if image_pull_secret is not None:  # the chart adds it to every pod it makes, the users' pods included
        values["imagePullSecrets"] = [image_pull_secret]
    return values


def check_user_values(chart: tuple[dict, dict], user_values: Mapping[str, Any]) -> None:
    """Raises ConfigError if the user's chart values (config jupyterhub.values(File)) set what the program owns
    or fail the chart's schema (`chart`: load_chart()'s defaults and schema). stack.build() calls it before it
    makes any resource, so that `pulumi up` without a preview creates nothing either; the values here stand in
    for the program's Outputs, JupyterHub merges the real ones."""
    program = jupyterhub_values(image_name="image", image_tag="tag", config_files=dict.fromkeys(CONFIG_FILES, ""),
                                munge_key_base64="", hub_password="", egress=[])
    chart_values.with_user_values(program, user_values, *chart)


@dataclass
class JupyterHubArgs:
    namespace: pulumi.Input[str]
    chart_repo: str
    chart_version: str
    chart: tuple[dict, dict]  # the chart's default values and values schema (chart_values.load_chart)
    notebook_image: pulumi.Input[str]  # slurm-jupyter-notebook by digest
    image_tag: str  # the tag the images were pushed with (the digest is what pins them)
    config_files: Mapping[str, str]  # non-secret Slurm files (SlurmConfig.files)
    munge_key_base64: pulumi.Input[str]  # secret
    egress: Sequence[dict]
    rotation: str
    image_pull_secret: Optional[pulumi.Input[str]] = None  # components.registry.pull_secret()
    user_values: Mapping[str, Any] = field(default_factory=dict)  # config jupyterhub.values(File)
    values_secret: bool = False  # the user's values came from a secret config key


class JupyterHub(pulumi.ComponentResource):
    """Outputs: `url` (in-cluster), `password` (secret; any user name), `release_name`."""

    def __init__(self, name: str, args: JupyterHubArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:JupyterHub", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        password = random.RandomPassword(f"{name}-password", length=PASSWORD_LENGTH, special=False,
                                         keepers={"rotation": args.rotation}, opts=child)
        self.password = pulumi.Output.secret(password.result)
        image = pulumi.Output.from_input(args.notebook_image).apply(lambda ref: split_image_ref(ref, args.image_tag))
        program = jupyterhub_values(
            image_name=image[0], image_tag=image[1], config_files=args.config_files,
            munge_key_base64=pulumi.Output.secret(args.munge_key_base64), hub_password=self.password,
            egress=args.egress, image_pull_secret=args.image_pull_secret)
        values = chart_values.with_user_values(program, args.user_values, *args.chart)
        if args.values_secret:
            values = pulumi.Output.secret(values)
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE,
            namespace=args.namespace,
            chart=CHART,
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.chart_repo),
            values=values,
            timeout=900,  # first start pulls the notebook image on every node (the chart's pre-puller)
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(additional_secret_outputs=["values"])),
        )
        self.release_name = release.name
        self.url = pods.service_url(PROXY_SERVICE, args.namespace)
        self.register_outputs({"url": self.url, "password": self.password, "release_name": self.release_name})
