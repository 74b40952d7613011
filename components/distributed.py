"""SlurmDistributed: Slurm with each daemon its own workload (config `components.distributed`, issue 21).

- **slurmctld**: a StatefulSet of one (`<name>-slurmctld-0`: slurm.conf's SlurmctldHost), its StateSaveLocation on a
  claim of its own, `SlurmctldParameters=enable_configless`; with `metrics`, slurm-exporter beside it (as in the
  single node: its own uid, no key, slurm.conf alone and the credential socket's directory).
- **accounting**: a StatefulSet of one running MariaDB and slurmdbd, the database on a claim of its own; it registers
  the cluster and the directory's users (associations) before slurmctld starts.
- **nodes**: a StatefulSet of `nodes` pods, one slurmd each, configless (`slurmd --conf-server`), a dynamic node
  (`slurmd -Z`) named by its pod's hostname, so a replaced pod registers again as the same Slurm node; its CPUs and
  memory are the pod's limits (`--conf "CPUs= RealMemory= MemSpecLimit= Feature="`, node_conf()). The shared home is
  mounted: users' jobs run from their homes. Spread over Kubernetes nodes (topology spread constraints). With GPUs
  (config node.gpus, slurm_files.Gpus), each requests and limits `count` of its device plugin's resource and
  registers them as `Gres=`. A node pod that stops (`nodes` lowered, pod deleted or evicted) drains its Slurm node
  in its preStop hook (distributed.sh drain), waits for its jobs up to `drain_grace_s` (config
  distributed.drainGraceSeconds; its grace period is that plus DRAIN_MARGIN_S), then deletes the node: a removed node
  leaves no DOWN node behind, a replaced one registers again.

Every pod runs the slurm-single-node image with the entrypoint mode of its role (dockerfiles/slurm-single-node/
distributed.sh): one image, one set of Slurm packages and scripts for both deployments (README "Distributed
deployment" says why). Each gets only the keys it needs: the node pods the cluster's key alone (munge.key, or with
config authType auth/slurm the slurm.key: no munged anywhere, each daemon serves its pod's commands, and the
controller's pod runs sackd for its commands before slurmctld); slurmdbd.conf (the database password) only the
accounting pod. Services give slurmctld and slurmdbd their stable DNS names (service()).

With the site's LDAP directory (config `ldap`, `directory_secret`) each role's Slurm container gets its nslcd.conf
(the bind password) in its directory volume, as the single node does, and its entrypoint mode runs nslcd: slurmctld
and slurmdbd resolve the directory's users, slurmd and slurmstepd a job's. Each follows the directory where the same
work is done for the static list: the accounting pod its users' associations, the node pods (which mount the shared
home as root) their homes (distributed.sh, directory.sh). slurm-exporter, beside slurmctld, never gets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import pods
from components.keys import MUNGE_KEY_FILE
from components.labels import labels, selector
from components.single_node import CAPABILITIES as NODE_CAPABILITIES
from components.single_node import credential_socket, exporter_container, exporter_volumes, pod_annotations
from components.slurm_files import (
    DISTRIBUTED_MEM_SPEC_MB,
    DRAIN_MARGIN_S,
    RUN_DIR,
    SLURMCTLD_PORT,
    SLURMD_FIRST_PORT,
    SLURMDBD_PORT,
    STATE_DIR,
    Gpus,
)

CONTROLLER_APP = "slurmctld"
ACCOUNTING_APP = "slurmdbd"
NODE_APP = "slurmd"
SLURMD_PORT = SLURMD_FIRST_PORT  # slurm.conf SlurmdPort: one slurmd per pod
NODESET = "nodes"  # the NodeSet and Feature of the node pods (slurm.conf, node_conf())
ENTRYPOINT = "/usr/local/lib/slurm-single-node/distributed.sh"
READY_FILE = f"{RUN_DIR}/ready"  # each mode touches it once its daemons answer
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"


def names(cluster_name: str) -> dict[str, str]:
    """Each role's StatefulSet and Service name."""
    return {role: f"{cluster_name}-{role}" for role in ("slurmctld", "accounting", "node")}


def controller_host(cluster_name: str) -> str:
    """slurmctld's pod hostname (SlurmctldHost): a StatefulSet names its pods `<name>-<ordinal>`."""
    return f"{names(cluster_name)['slurmctld']}-0"


def controller_addr(cluster_name: str, namespace: str) -> str:
    return pods.service_host(names(cluster_name)["slurmctld"], namespace)


def accounting_addr(cluster_name: str, namespace: str) -> str:
    return pods.service_host(names(cluster_name)["accounting"], namespace)


def node_conf(cpus: int, memory_mb: int, gpus: Optional[Gpus] = None) -> str:
    """What each node pod registers with (`slurmd -Z --conf`): its pod's CPU and memory limits as Slurm's CPUs and
    RealMemory, MemSpecLimit what Slurm keeps for its own daemons, its GPUs as `Gres=gpu[:type]:count`, and the
    NodeSet's Feature (slurm.conf puts the NodeSet in the partition)."""
    gres = f" Gres={gpus.gres}" if gpus else ""
    return f"CPUs={cpus} RealMemory={memory_mb} MemSpecLimit={DISTRIBUTED_MEM_SPEC_MB}{gres} Feature={NODESET}"


@dataclass
class SlurmDistributedArgs:
    namespace: pulumi.Input[str]
    cluster_name: str  # names every object (names())
    image: pulumi.Input[str]  # slurm-single-node by digest
    nodes: int
    node_cpus: int  # each node pod's CPU limit and Slurm CPUs
    node_cpu_request_milli: int  # its CPU request (StackConfig.node_pod_cpu_milli)
    node_memory_mb: int  # its memory request and limit, MiB, and Slurm RealMemory
    config_map_name: pulumi.Input[str]
    config_secret_name: pulumi.Input[str]  # slurmdbd.conf: the accounting pod's alone
    config_secret_files: tuple[str, ...]
    munge_secret_name: pulumi.Input[str]
    jwt_secret_name: pulumi.Input[str]  # slurmctld and slurmdbd check users' tokens with it
    directory_config_map: pulumi.Input[str]
    home_claim: pulumi.Input[str]
    storage_size: str
    storage_class: Optional[str]
    controller_policy: k8s.networking.v1.NetworkPolicySpecArgs  # components/network.py Graph.ingress()
    accounting_policy: k8s.networking.v1.NetworkPolicySpecArgs
    node_policy: k8s.networking.v1.NetworkPolicySpecArgs
    image_pull_secret: Optional[pulumi.Input[str]] = None
    metrics: bool = False  # slurm-exporter beside slurmctld
    annotate: bool = False  # its scrape annotations (no Prometheus Operator)
    gpus: Optional[Gpus] = None  # each node pod's (config node.gpus)
    drain_grace_s: int = 300  # config distributed.drainGraceSeconds: a stopping node pod's wait for its jobs
    control_node_selector: Optional[dict] = None  # config distributed.controlNodeSelector: slurmctld's, accounting's
    directory_secret: Optional[pulumi.Input[str]] = None  # config `ldap`: nslcd.conf and the CA (Core.directory_secret)
    key_file: str = MUNGE_KEY_FILE  # the file of munge_secret_name's Secret: munge.key, or slurm.key (auth/slurm)


def state_claim(app: str, size: str, storage_class: Optional[str]) -> k8s.core.v1.PersistentVolumeClaimArgs:
    return k8s.core.v1.PersistentVolumeClaimArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(name="state", labels=labels(app, "state")),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteOnce"], storage_class_name=storage_class,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": size})))


def ready_probe(period: int, failures: int = 3) -> k8s.core.v1.ProbeArgs:
    """Passes once the mode's daemons answered (READY_FILE) and still run (the mode's own check)."""
    return pods.exec_probe([ENTRYPOINT, "ready"], period=period, timeout=10, failures=failures)


def controller_container(args: SlurmDistributedArgs) -> k8s.core.v1.ContainerArgs:
    return pods.container(
        "slurm", args.image, command=[ENTRYPOINT, "controller"],
        ports=[k8s.core.v1.ContainerPortArgs(name="slurmctld", container_port=SLURMCTLD_PORT, protocol="TCP")],
        volume_mounts=[*pods.slurm_mounts(), *pods.directory_mounts(home=False),
                       k8s.core.v1.VolumeMountArgs(name="state", mount_path=STATE_DIR),
                       *([credential_socket(args.key_file)] if args.metrics else [])],
        # Each 2 s until it first passes (the first start waits for the accounting pod's new database), then 15 s.
        startup_probe=ready_probe(period=2, failures=300),
        readiness_probe=ready_probe(period=15),
        liveness_probe=pods.tcp_probe(SLURMCTLD_PORT, period=20, failures=3),
        resources=pods.resources("100m", "256Mi", "1", "512Mi"),
    )


def accounting_container(args: SlurmDistributedArgs) -> k8s.core.v1.ContainerArgs:
    return pods.container(
        "slurm", args.image, command=[ENTRYPOINT, "accounting"],
        ports=[k8s.core.v1.ContainerPortArgs(name="slurmdbd", container_port=SLURMDBD_PORT, protocol="TCP")],
        volume_mounts=[*pods.slurm_mounts(), *pods.directory_mounts(home=False),
                       k8s.core.v1.VolumeMountArgs(name="state", mount_path=STATE_DIR)],
        startup_probe=ready_probe(period=2, failures=300),
        readiness_probe=ready_probe(period=15),
        liveness_probe=pods.tcp_probe(SLURMDBD_PORT, period=20, failures=3),
        # MariaDB's 128 MB buffer pool and about 130 MB of its own, slurmdbd, munged (with auth/munge).
        resources=pods.resources("100m", "512Mi", "1", "768Mi"),
    )


def node_grace_s(drain_grace_s: int) -> int:
    """A node pod's terminationGracePeriodSeconds: its preStop hook's wait for the jobs, then its DOWN, delete and
    the daemons' stop (DRAIN_MARGIN_S)."""
    return drain_grace_s + DRAIN_MARGIN_S


def node_timeouts(nodes: int, drain_grace_s: int) -> pulumi.CustomTimeouts:
    """How long `pulumi up` and `destroy` wait for the node StatefulSet: its rolling update replaces the pods one at a
    time, each after its drain (node_grace_s()), so `nodes` of them beyond the provider's 10 minutes."""
    seconds = 600 + nodes * node_grace_s(drain_grace_s)
    return pulumi.CustomTimeouts(create=f"{seconds}s", update=f"{seconds}s", delete=f"{seconds}s")


def node_container(args: SlurmDistributedArgs, conf_server: pulumi.Input[str]) -> k8s.core.v1.ContainerArgs:
    memory = f"{args.node_memory_mb}Mi"
    gpus = {args.gpus.resource: str(args.gpus.count)} if args.gpus else {}
    return pods.container(
        "slurmd", args.image, command=[ENTRYPOINT, "node"], capabilities=NODE_CAPABILITIES,
        env=pods.env({"SLURM_CONF_SERVER": conf_server,
                      "SLURMD_NODE_CONF": node_conf(args.node_cpus, args.node_memory_mb, args.gpus),
                      "SLURM_DRAIN_GRACE_S": str(args.drain_grace_s)}),
        ports=[k8s.core.v1.ContainerPortArgs(name="slurmd", container_port=SLURMD_PORT, protocol="TCP")],
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="slurm-keys", mount_path=pods.KEYS_MOUNT, read_only=True),
                       *pods.directory_mounts(home=True)],
        startup_probe=ready_probe(period=1, failures=600),
        readiness_probe=ready_probe(period=15),
        liveness_probe=pods.tcp_probe(SLURMD_PORT, period=20, failures=3),
        # Before SIGTERM (pod removed by a lower `nodes`, deleted, evicted): drain the Slurm node, wait up to the grace
        # for its jobs, then delete it (distributed.sh drain); the pod's grace period covers it (node_grace_s()).
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(exec_=k8s.core.v1.ExecActionArgs(command=[ENTRYPOINT, "drain"]))),
        # Memory request = limit = RealMemory: what Slurm hands out is reserved by the scheduler and is all the pod
        # may use. The CPU limit is its Slurm CPUs; the request that too unless distributed.nodeCpuRequest lowers it.
        # GPUs: request = limit, as Kubernetes requires of extended resources.
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": f"{args.node_cpu_request_milli}m", "memory": memory, **gpus},
            limits={"cpu": str(args.node_cpus), "memory": memory, **gpus}),
    )


class SlurmDistributed(pulumi.ComponentResource):
    """Outputs: `controller_addr` (slurmctld's DNS name), `node_statefulset` (the node pods' StatefulSet name)."""

    def __init__(self, name: str, args: SlurmDistributedArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmDistributed", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Replaced, not updated, when the pod changes, as the single node (components/single_node.py says why); their
        # claims stay. The node pods roll instead: replacing their StatefulSet would end every job at once.
        replaced = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
            replace_on_changes=["spec.template"], delete_before_replace=True))
        n = names(args.cluster_name)
        ctld_addr = pods.service_host(n["slurmctld"], args.namespace)

        def service(role: str, app: str, port_name: str, port: int, headless: bool = False) -> k8s.core.v1.Service:
            # Endpoints published before the pods are ready: the pods reach each other while they start. slurmctld's
            # and slurmdbd's names are ClusterIP Services: their DNS name answers from the Service's creation on. A
            # headless name answers only once its pod has an address, and a lookup before that (every node pod's,
            # while slurmctld's claim is provisioned) is cached as NXDOMAIN for CoreDNS's `ttl` (30 s in kubeadm's
            # Corefile): 24 s of 42 s of `pulumi up` were that wait. Not awaited by the provider (its Service await
            # holds `pulumi up` until the Endpoints stand still for 10 s; the StatefulSets' awaits cover the pods).
            return k8s.core.v1.Service(
                f"{name}-{role}-service",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=n[role], namespace=args.namespace, labels=labels(app, role),
                    annotations=None if headless else {"pulumi.com/skipAwait": "true"}),
                spec=k8s.core.v1.ServiceSpecArgs(
                    cluster_ip="None" if headless else None, publish_not_ready_addresses=True, selector=selector(app),
                    ports=[k8s.core.v1.ServicePortArgs(name=port_name, port=port, target_port=port, protocol="TCP")]),
                opts=child)

        def own_name(role: str) -> list[k8s.core.v1.HostAliasArgs]:
            """The role's own Service name as loopback in its pod: its daemon's own clients (sacctmgr at start, the
            probes, slurm-exporter) stay in the pod, as with the single node, and need no NetworkPolicy edge to
            itself through the Service's address."""
            return [k8s.core.v1.HostAliasArgs(ip="127.0.0.1",
                                              hostnames=[pods.service_host(n[role], args.namespace)])]

        def policy(role: str, app: str, spec: k8s.networking.v1.NetworkPolicySpecArgs) -> None:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{role}-clients",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=n[role], namespace=args.namespace, labels=labels(app, role)),
                spec=spec, opts=child)

        def statefulset(role: str, app: str, svc: k8s.core.v1.Service, replicas: int,
                        template: k8s.core.v1.PodTemplateSpecArgs, claim: bool,
                        opts: pulumi.ResourceOptions) -> k8s.apps.v1.StatefulSet:
            return k8s.apps.v1.StatefulSet(
                f"{name}-{role}-statefulset",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=n[role], namespace=args.namespace, labels=labels(app, role)),
                spec=k8s.apps.v1.StatefulSetSpecArgs(
                    replicas=replicas,
                    pod_management_policy="Parallel",  # as the single node: a broken pod never blocks a fixed one
                    service_name=svc.metadata.name,
                    selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(app)),
                    template=template,
                    volume_claim_templates=[state_claim(app, args.storage_size, args.storage_class)] if claim else None),
                opts=opts)

        # --- accounting: MariaDB + slurmdbd, the database on its claim ---------------------------------------------
        accounting_svc = service("accounting", ACCOUNTING_APP, "slurmdbd", SLURMDBD_PORT)
        accounting = statefulset("accounting", ACCOUNTING_APP, accounting_svc, 1, pods.pod_template(
            ACCOUNTING_APP, "accounting", image_pull_secret=args.image_pull_secret,
            termination_grace_period_seconds=30, host_aliases=own_name("accounting"),
            node_selector=args.control_node_selector or None,
            containers=[accounting_container(args)],
            volumes=[pods.config_volume(args.config_map_name, args.config_secret_name, args.config_secret_files),
                     pods.keys_volume(args.munge_secret_name, args.jwt_secret_name, args.key_file),
                     pods.directory_volume(args.directory_config_map, args.directory_secret)]), claim=True, opts=replaced)
        policy("accounting", ACCOUNTING_APP, args.accounting_policy)

        # --- slurmctld, its state on its claim ----------------------------------------------------------------------
        ctld_svc = service("slurmctld", CONTROLLER_APP, "slurmctld", SLURMCTLD_PORT)
        controller = statefulset("slurmctld", CONTROLLER_APP, ctld_svc, 1, pods.pod_template(
            CONTROLLER_APP, "controller", image_pull_secret=args.image_pull_secret,
            termination_grace_period_seconds=60,  # slurmctld saves its state on SIGTERM
            host_aliases=own_name("slurmctld"), node_selector=args.control_node_selector or None,
            annotations=pod_annotations(args.metrics, args.annotate),
            containers=[controller_container(args),
                        *([exporter_container(args.image, args.key_file)] if args.metrics else [])],
            volumes=[pods.config_volume(args.config_map_name),  # no slurmdbd.conf: the accounting pod's alone
                     pods.keys_volume(args.munge_secret_name, args.jwt_secret_name, args.key_file),
                     pods.directory_volume(args.directory_config_map, args.directory_secret),
                     *(exporter_volumes(args.config_map_name, args.key_file) if args.metrics else [])]),
            claim=True, opts=replaced)
        policy("slurmctld", CONTROLLER_APP, args.controller_policy)

        # --- the node pods --------------------------------------------------------------------------------------
        node_svc = service("node", NODE_APP, "slurmd", SLURMD_PORT, headless=True)  # governs the pods; unused by name
        nodes = statefulset("node", NODE_APP, node_svc, args.nodes, pods.pod_template(
            NODE_APP, "node", image_pull_secret=args.image_pull_secret,
            termination_grace_period_seconds=node_grace_s(args.drain_grace_s),
            containers=[node_container(args, pulumi.Output.concat(ctld_addr, f":{SLURMCTLD_PORT}"))],
            volumes=[pods.keys_volume(args.munge_secret_name, key_file=args.key_file),  # the cluster's key alone
                     pods.directory_volume(args.directory_config_map, args.directory_secret),
                     pods.home_volume(args.home_claim)],
            # Spread over Kubernetes nodes as evenly as they allow; ScheduleAnyway: a replacement pod still starts
            # while its own Kubernetes node is gone (DoNotSchedule would leave it pending, its Slurm node DOWN).
            topology_spread_constraints=[k8s.core.v1.TopologySpreadConstraintArgs(
                max_skew=1, topology_key=HOSTNAME_TOPOLOGY, when_unsatisfiable="ScheduleAnyway",
                label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector(NODE_APP)))]),
            claim=False, opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                custom_timeouts=node_timeouts(args.nodes, args.drain_grace_s))))
        policy("node", NODE_APP, args.node_policy)

        self.controller_addr = pods.service_host(ctld_svc.metadata.name, args.namespace)
        self.node_statefulset = nodes.metadata.name
        self.controller_statefulset = controller.metadata.name
        self.accounting_statefulset = accounting.metadata.name
        self.register_outputs({"controller_addr": self.controller_addr, "node_statefulset": self.node_statefulset})
