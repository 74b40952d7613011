"""SlurmSingleNode: the whole Slurm (munged, MariaDB, slurmdbd, slurmctld, N x slurmd, slurmrestd) in one pod.

A StatefulSet of one, so the pod's hostname is stable (`<name>-0`, slurm.conf's SlurmctldHost) and its state
volume (/var/lib/slurm-state) survives restarts; a headless Service `<name>` whose DNS name
(`controller_addr()`, slurm.conf's SlurmctldHost address, NodeAddr and AccountingStorageHost) resolves to the
pod itself, also while it is not ready yet (slurmctld must reach its own slurmd through it to become ready).

With `metrics`, a second container of the same image runs slurm-exporter (dockerfiles/slurm-single-node/
slurm-exporter: Slurm's figures on metrics.EXPORTER_PORT, GET /metrics) as its own unprivileged user, with no
capability, no key and no slurmdbd.conf: only slurm.conf and munged's socket directory, an emptyDir both
containers mount (the single node's entrypoint makes it munge's, 0755, as munged requires); with auth/slurm (config
authType: no munged) the directory of the daemons' credential socket instead (credential_socket()).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import metrics, pods
from components.keys import MUNGE_KEY_FILE
from components.labels import labels, selector
from components.slurm_files import RUN_DIR, SLURMCTLD_PORT, SLURMDBD_PORT, STATE_DIR, slurmd_ports

APP = "slurm-single-node"
HEALTHCHECK = "/usr/local/bin/slurm-healthcheck"
# SYS_PTRACE besides what every root-start image keeps: slurmstepd (root) samples each task's memory and CPU from
# /proc/PID/{stat,io} (jobacct_gather/linux, common_jag.c), and the kernel lets it read a task of another uid's
# io only with CAP_SYS_PTRACE (ptrace_may_access); without it the sampler drops every record of a user's job, so
# sacct/sstat show no MaxRSS and OverMemoryKill never fires. Jobs get none of it (their capability sets are empty).
# It puts the pod outside Pod Security Standards "baseline" (README "Node resources").
CAPABILITIES = (*pods.ROOT_START_CAPABILITIES, "SYS_PTRACE")

# slurm-exporter: its command in the image, and the uid the image gives its user `slurm-exporter` (Dockerfile, from
# dockerfiles/lib/facts.sh). A user of its own rather than root, munge or SlurmUser: it only needs to be some user
# for munge (any uid may get a credential), and Slurm shows an unprivileged user everything it reports while
# PrivateData is unset. Below 1000, so the single node's accounting sync never makes it a Slurm user
# (image_facts.ACCOUNTING_UIDS), and not one Debian allocates to its packages' system users (from 999 down).
EXPORTER = "/usr/local/bin/slurm-exporter"
EXPORTER_UID = 341
EXPORTER_PORT_NAME = "metrics"
# Its (cpu, memory) requests and limits. A scrape runs up to five Slurm commands at once beside Python with
# prometheus_client (about 30 MiB); the largest by far is the job list, squeue --json (24.11, 22.05: every job
# slurmctld holds, finished ones for MinJobAge, 300 s, so a finished 1000-task array leaves 1000 records; 25.11+:
# pending jobs only), whose JSON the exporter then parses. Measured with 1000 held jobs (tests/images/
# test_slurm_exporter.py test_a_thousand_jobs_fit_the_pods_limits): Slurm 24.11 squeue's RSS 157 MiB (about
# 150 KiB a job), the exporter's 76 MiB, the container's peak 198 MiB, a scrape 1.7 s at 250m CPU, 0.9 s at 500m;
# 26.05 (pending only): 153, 85, 189 MiB, 1.0 s at 500m; 22.05: 50, 41, 71 MiB, 0.3 s. So 512Mi holds about 2500
# jobs, and 500m keeps a scrape of up to about 3500 within the commands' 4 s timeout (past either the job figures
# are left out, slurm_exporter_source_up{source="squeue"} 0, while slurmctld_up, from scontrol ping, stays right).
EXPORTER_REQUESTS = ("10m", "128Mi")
EXPORTER_LIMITS = ("500m", "512Mi")
MUNGE_SOCKET_DIR = "/run/munge"  # munged's socket directory, shared by the two containers
# With auth/slurm the exporter's commands ask the credential socket (sack.socket) of the images' run directory, the
# first a command tries (dockerfiles/lib/lib.sh says which daemon serves which): slurmd's in the single node, sackd's
# beside slurmctld in the distributed one, so its figures of slurmdbd do not hang on slurmctld. The entrypoints make
# the directory root's, 0755: the exporter cannot put a socket of its own there.


def credential_socket(key_file: str, read_only: Optional[bool] = None) -> k8s.core.v1.VolumeMountArgs:
    """Where the exporter and the daemons' container share the socket the exporter's commands get their credentials
    from: munged's directory, or with the cluster's key a slurm.key (auth/slurm) the run directory's (an emptyDir
    of exporter_volumes())."""
    if key_file == MUNGE_KEY_FILE:
        return k8s.core.v1.VolumeMountArgs(name="munge-socket", mount_path=MUNGE_SOCKET_DIR, read_only=read_only)
    return k8s.core.v1.VolumeMountArgs(name="sack-socket", mount_path=RUN_DIR, read_only=read_only)


def controller_host(name: str) -> str:
    """The pod's hostname: a StatefulSet names its pods `<name>-<ordinal>`."""
    return f"{name}-0"


def controller_addr(name: str, namespace: str) -> str:
    """The headless Service's DNS name, which resolves to the pod."""
    return pods.service_host(name, namespace)


def ports(nodes: int) -> dict[str, int]:
    """Every port the single node serves to other pods, by Service port name: slurmctld's and slurmdbd's (every
    Slurm client), then each slurmd's (srun's task launch). Its slurmrestd listens on a unix socket only (for its
    health check): other pods use the stack's slurmrestd Deployment, so no request of theirs can end the pod."""
    return {"slurmctld": SLURMCTLD_PORT, "slurmdbd": SLURMDBD_PORT,
            **{f"slurmd-{i}": p for i, p in enumerate(slurmd_ports(nodes), start=1)}}


@dataclass
class SlurmSingleNodeArgs:
    namespace: pulumi.Input[str]
    name: str  # StatefulSet and Service name; fixes the hostname and DNS name in slurm.conf
    image: pulumi.Input[str]  # slurm-single-node by digest
    nodes: int
    config_map_name: pulumi.Input[str]
    config_secret_name: pulumi.Input[str]  # slurmdbd.conf
    config_secret_files: tuple[str, ...]
    munge_secret_name: pulumi.Input[str]
    jwt_secret_name: pulumi.Input[str]
    directory_config_map: pulumi.Input[str]  # its entrypoint makes each user's home and accounting user
    home_claim: pulumi.Input[str]  # the shared home (ReadWriteMany), mounted at /home
    storage_size: str  # Kubernetes quantity
    storage_class: Optional[str]  # None: the cluster's default class
    cpu_milli: tuple[int, int]  # the pod's CPU (request, limit), millicores: StackConfig.single_node_cpu_milli
    memory_mib: int  # its memory request and limit, MiB: StackConfig.single_node_memory_mib
    network_policy: k8s.networking.v1.NetworkPolicySpecArgs  # who may reach it: components/network.py
    image_pull_secret: Optional[pulumi.Input[str]] = None  # components.registry.pull_secret()
    metrics: bool = False  # run slurm-exporter beside the daemons (config metrics.enabled)
    directory_secret: Optional[pulumi.Input[str]] = None  # config `ldap`: nslcd.conf and the CA (Core.directory_secret)
    annotate: bool = False  # with the scrape annotations (no Prometheus Operator)
    key_file: str = MUNGE_KEY_FILE  # the file of munge_secret_name's Secret: munge.key, or slurm.key (auth/slurm)


def exporter_container(image: pulumi.Input[str], key_file: str = MUNGE_KEY_FILE) -> k8s.core.v1.ContainerArgs:
    """slurm-exporter: same image, its own uid from the start (no capability, read-only root), slurm.conf alone
    (exporter_volumes()) and the credential socket's directory (credential_socket()); a TCP liveness probe (a scrape
    runs Slurm commands, too costly to probe with) and no readiness probe: the pod's readiness is its daemons', so
    monitoring that fails never takes Slurm's Service (or the controller's, components/distributed.py) away."""
    return pods.container(
        "slurm-exporter", image, run_as=EXPORTER_UID, command=[EXPORTER],
        env=pods.env({"SLURM_EXPORTER_PORT": str(metrics.EXPORTER_PORT), "SLURM_CONF": f"{pods.CONFIG_MOUNT}/slurm.conf",
                      "SLURM_EXPORTER_METRICS_URL": f"http://127.0.0.1:{SLURMCTLD_PORT}"}),
        ports=[k8s.core.v1.ContainerPortArgs(name=EXPORTER_PORT_NAME, container_port=metrics.EXPORTER_PORT,
                                             protocol="TCP")],
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="exporter-config", mount_path=pods.CONFIG_MOUNT,
                                                   read_only=True),
                       credential_socket(key_file, read_only=True)],
        liveness_probe=pods.tcp_probe(metrics.EXPORTER_PORT, period=20, failures=3),
        resources=pods.resources(*EXPORTER_REQUESTS, *EXPORTER_LIMITS),
    )


def pod_annotations(with_exporter: bool, annotate: bool) -> Optional[dict[str, str]]:
    """With the exporter: `kubectl exec`/`logs` go to the daemons' container unless told otherwise (kubectl's
    default-container annotation), and with `annotate` the scrape annotations of its port."""
    if not with_exporter:
        return None
    return {"kubectl.kubernetes.io/default-container": "slurm",
            **(metrics.scrape_annotations(metrics.EXPORTER_PORT) if annotate else {})}


def exporter_volumes(config_map_name: pulumi.Input[str],
                     key_file: str = MUNGE_KEY_FILE) -> list[k8s.core.v1.VolumeArgs]:
    """The exporter's slurm.conf (the ConfigMap's one file: never slurmdbd.conf, which is in the Secret) and the
    credential socket's directory (an emptyDir: credential_socket())."""
    return [k8s.core.v1.VolumeArgs(name="exporter-config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=config_map_name, items=[k8s.core.v1.KeyToPathArgs(key="slurm.conf", path="slurm.conf")],
                default_mode=pods.CONFIG_MODE)),
            k8s.core.v1.VolumeArgs(name=credential_socket(key_file).name,
                                   empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs())]


class SlurmSingleNode(pulumi.ComponentResource):
    """Outputs: `service_name`, `controller_addr` (DNS name)."""

    def __init__(self, name: str, args: SlurmSingleNodeArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmSingleNode", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        all_ports = ports(args.nodes)

        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=args.namespace,
                                                labels=labels(APP, "controller")),
            spec=k8s.core.v1.ServiceSpecArgs(
                cluster_ip="None",
                publish_not_ready_addresses=True,
                selector=selector(APP),
                ports=[k8s.core.v1.ServicePortArgs(name=n, port=p, target_port=p, protocol="TCP")
                       for n, p in all_ports.items()],
            ),
            opts=child,
        )

        container = pods.container(
            "slurm", args.image, capabilities=CAPABILITIES,
            ports=[k8s.core.v1.ContainerPortArgs(name=n[:15], container_port=p, protocol="TCP")
                   for n, p in all_ports.items()],
            volume_mounts=[*pods.slurm_mounts(), *pods.directory_mounts(home=True),
                           k8s.core.v1.VolumeMountArgs(name="state", mount_path=STATE_DIR),
                           *([credential_socket(args.key_file)] if args.metrics else [])],
            # The healthcheck each second until it first passes, so the pod is Ready within a second of Slurm (a
            # readiness probe alone would first pass up to its period later); up to 300 failures, as the first
            # start makes the database and slurmdbd its tables; liveness counts only after it. Then readiness each
            # 15 s.
            startup_probe=pods.exec_probe([HEALTHCHECK], period=1, timeout=20, failures=300),
            readiness_probe=pods.exec_probe([HEALTHCHECK], period=15, timeout=20),
            liveness_probe=pods.tcp_probe(SLURMCTLD_PORT, period=20, failures=3),
            # Memory request = limit: the nodes' RealMemory is promised to jobs, so the scheduler must reserve it.
            resources=pods.resources(f"{args.cpu_milli[0]}m", f"{args.memory_mib}Mi",
                                     f"{args.cpu_milli[1]}m", f"{args.memory_mib}Mi"),
        )
        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=args.namespace,
                                                labels=labels(APP, "controller")),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                replicas=1,
                # Parallel: an update replaces the pod even while it is not ready (OrderedReady would wait for a
                # crash-looping pod of the old revision forever, so a fixed image could never roll out).
                pod_management_policy="Parallel",
                service_name=service.metadata.name,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(APP)),
                template=pods.pod_template(
                    APP, "controller", image_pull_secret=args.image_pull_secret,
                    termination_grace_period_seconds=60,  # slurmctld saves its state on SIGTERM
                    annotations=pod_annotations(args.metrics, args.annotate),
                    containers=[container, *([exporter_container(args.image, args.key_file)] if args.metrics else [])],
                    volumes=[
                        pods.config_volume(args.config_map_name, args.config_secret_name, args.config_secret_files),
                        pods.keys_volume(args.munge_secret_name, args.jwt_secret_name, args.key_file),
                        pods.directory_volume(args.directory_config_map, args.directory_secret),
                        pods.home_volume(args.home_claim),
                        *(exporter_volumes(args.config_map_name, args.key_file) if args.metrics else []),
                    ],
                ),
                volume_claim_templates=[k8s.core.v1.PersistentVolumeClaimArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(name="state", labels=labels(APP, "state")),
                    spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                        access_modes=["ReadWriteOnce"],
                        storage_class_name=args.storage_class,
                        resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": args.storage_size}),
                    ),
                )],
            ),
            # Replaced, not updated, when its pod changes, so that `pulumi up` returns only once the new pod is
            # ready: the Kubernetes provider's StatefulSet update await (the newest its Go module proxy serves here,
            # v4.0.0-20260115033456-f47bc2d6f199) reads the old status as ready before the controller has seen the
            # change (pulumi-kubernetes issue 3329, fixed later by pull request 4094); its create await is sound.
            # One pod either way, and the state volume stays (a StatefulSet's claims outlive it).
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                replace_on_changes=["spec.template"], delete_before_replace=True)),
        )

        # Its own traffic to itself (through the headless name) never leaves the pod, so needs no edge.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-clients",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=args.namespace,
                                                labels=labels(APP, "controller")),
            spec=args.network_policy,
            opts=child,
        )

        self.service_name = service.metadata.name
        self.controller_addr = pods.service_host(self.service_name, args.namespace)
        self.statefulset_name = statefulset.metadata.name
        self.register_outputs({"service_name": self.service_name, "controller_addr": self.controller_addr})
