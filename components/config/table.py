"""The key table of the stack configuration: every key's name, type, default, meaning and check, declared once.

This is the one place a new key goes: add a field to the dataclass it belongs to (StackConfig for a top-level key)
with `key(default, meaning, check)`. Its camelCase name is the key (`cluster_name` -> `clusterName`), its
annotation the type (schema.TYPES: str, int, bool, a list, LocalPath, FileText, MemoryMiB, CpuMilli, a secret
`pulumi.Output[str]`), and a field whose type is another of these dataclasses is an object key with fields declared
the same way. From the table come parsing (parsing.parse(): unknown keys are refused as typos), the fix hints and
the README's configuration table (readme.py: `python -m components.config --readme`). A rule between keys goes in
rules.py; a key's own check is written here, from schema's (matches, one_of, between, each, base64_key).
"""

import re
from dataclasses import dataclass, field
from typing import Optional

import pulumi

from components import directory, ldap, site
from components.config.schema import (
    REQUIRED,
    CpuMilli,
    FileText,
    Invalid,
    LocalPath,
    MemoryMiB,
    base64_key,
    between,
    each,
    key,
    keys_of,
    matches,
    one_of,
)
from components.slurm_files import (
    AUTH_MUNGE,
    AUTH_TYPES,
    DEFAULT_CPUS_PER_NODE,
    DEFAULT_GPU_RESOURCE,
    DEFAULT_MEMORY_MB_PER_NODE,
    DEFAULT_NODES,
    DEFAULT_SLURM_VERSION,
    DISTRIBUTED_MEM_SPEC_MB,
    DRAIN_MARGIN_S,
    GRES_TYPE,
    MAX_NODES,
    MIN_MEMORY_MB_PER_NODE,
    VERSIONS,
    Gpus,
    device_file_count,
)

MUNGE_KEY_MIN_BYTES = 32  # munged refuses shorter keys
JWT_KEY_MIN_BYTES = 32  # RFC 7518 3.2: an HS256 key has at least the hash's 256 bits
SLURM_KEY_MIN_BYTES = 32  # auth/slurm signs its credentials with HS256 too (Slurm's authentication.html)

# What the single node needs beside its nodes' CPUs and memory: its daemons (measured RSS: MariaDB about 130 MB,
# slurmctld, slurmdbd, each slurmd, slurmrestd and munged 5-20 MB), page cache, and what a job allocates beyond
# its share before Slurm's once-a-second sample kills it (README "Node resources").
DAEMONS_CPU_MILLI = 500
DAEMONS_MEMORY_MIB = 1024


# Checks of the table's own (from schema's), each raising schema.Invalid with the problem and the fix.

check_munge_key = base64_key(MUNGE_KEY_MIN_BYTES, "munged needs", "/etc/munge/munge.key")
check_jwt_key = base64_key(JWT_KEY_MIN_BYTES, "an HS256 key needs", "jwt_hs256.key")
check_slurm_key = base64_key(SLURM_KEY_MIN_BYTES, "auth/slurm's HS256 signatures need", "/etc/slurm/slurm.key")


def check_slurm_conf(text: str) -> None:
    try:
        site.describe(text)
    except ValueError as e:
        raise Invalid(f"is not a usable slurm.conf: {e}", "copy the cluster's real /etc/slurm/slurm.conf") from None


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_LABEL_FIX = "use lowercase letters, digits and '-', at most 63 characters"
SIZE = matches(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$", "a Kubernetes quantity", "use a size such as 10Gi")


def check_groups(groups: dict) -> None:
    for name, gid in groups.items():
        check_user_name(name)
        if not isinstance(gid, int) or isinstance(gid, bool) or not directory.MIN_ID <= gid <= directory.MAX_ID:
            raise Invalid(f"group {name}'s gid {gid!r} is not a whole number from {directory.MIN_ID} to "
                          f"{directory.MAX_ID}", "give each group its numeric gid: {\"physics\": 3000}")


def check_user_name(name: str) -> None:
    matches(directory.NAME_PATTERN, "a valid name", "use lowercase letters, digits and single '-' inside, "
            "starting with a letter")(name)
    if len(name) > directory.NAME_MAX:
        raise Invalid(f"'{name}' is longer than {directory.NAME_MAX} characters", "use a shorter name")
    if name in directory.RESERVED_NAMES:
        raise Invalid(f"'{name}' is a name the images already have", "use another name")


IDS = between(directory.MIN_ID, directory.MAX_ID)


# The table.

@dataclass(frozen=True, kw_only=True)
class Images:
    registry: str = key(REQUIRED, "host[:port][/path] to push the images to and pull them from, no scheme",
                        matches(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9._/-]+)?$", "a registry host",
                                "give host[:port][/path] without a scheme, e.g. ghcr.io/acme"),
                        example="127.0.0.1:5000")
    repository: str = key("slurm-cloud-integration", "path under the registry: REGISTRY/REPOSITORY/IMAGE:TAG",
                          matches(r"^[a-z0-9]+([._/-][a-z0-9]+)*$", "a valid repository",
                                  "use lowercase letters, digits and . _ - / separators"))
    tag: str = key("latest", "tag the images are pushed with (pods pull them by digest)",
                   matches(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", "a valid image tag",
                           "use letters, digits, '_', '.', '-' (at most 128)"))
    username: Optional[str] = key(None, "registry user, with `images.password`", example="USER")
    password: Optional[pulumi.Output[str]] = key(
        None, "registry password or token; with `images.username` also the pods' pull Secret", example="TOKEN")

    def name(self, image: str) -> str:
        return f"{self.registry}/{self.repository}/{image}:{self.tag}"


@dataclass(frozen=True, kw_only=True)
class Components:
    single_node: bool = key(True, "deploy slurm-single-node (slurmctld, slurmdbd, slurmd nodes, slurmrestd)")
    distributed: bool = key(False, "deploy Slurm distributed instead: slurmctld, accounting (slurmdbd with MariaDB) and "
                                   "`nodes` node pods, each its own workload (README \"Distributed deployment\"; "
                                   "needs `components.singleNode` false)")

    @property
    def slurm(self) -> bool:
        """The stack deploys a Slurm of its own (and so its slurm-exporter)."""
        return self.single_node or self.distributed
    restd: bool = key(True, "deploy slurmrestd, the Slurm REST API")
    jupyter: bool = key(True, "deploy JupyterLab with the Slurm extension")
    jupyterhub: bool = key(True, "deploy JupyterHub (the official chart) with the notebook image")
    token_service: bool = key(True, "deploy the service that mints each JupyterHub user a Slurm JWT (needed by "
                                    "`components.jupyterhub`; also serves a hub you run yourself)")


@dataclass(frozen=True, kw_only=True)
class ExistingCluster:
    slurm_conf: FileText = key(REQUIRED, "path, relative to the project, of the cluster's slurm.conf (the stack reads "
                                         "the controller's address and ports from it)", check_slurm_conf,
                               example="configs/existing/slurm.conf")
    configless: bool = key(False, "the clients fetch the configuration from the cluster's slurmctld (Slurm's "
                                  "configless mode, `SlurmctldParameters=enable_configless`) instead of getting a "
                                  "copy of `slurmConf`")


@dataclass(frozen=True, kw_only=True)
class Kubernetes:
    context: Optional[str] = key(None, "kubeconfig context (default: the current one)")
    kubeconfig: Optional[LocalPath] = key(None, "kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    render_dir: Optional[LocalPath] = key(None, "render the objects as YAML into this directory, instead of applying")


@dataclass(frozen=True, kw_only=True)
class JupyterHub:
    chart_version: Optional[str] = key(
        None, "exact chart version (required with `components.jupyterhub`)",
        matches(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$", "a chart version",
                "use an exact version such as 4.3.3 (ranges would make deployments drift)"),
        example="4.3.3")
    chart_repo: str = key("https://hub.jupyter.org/helm-chart/", "Helm repository of the chart")
    values_file: Optional[str] = key(
        None, "YAML file of chart values (what z2jh users put in a config.yaml), relative to the project",
        example="jupyterhub-values.yaml")
    values: dict = key({}, "chart values over `valuesFile` and the program's, merged as Helm does; checked against "
                           "the chart's schema at preview; settings the program owns are refused (see below)",
                       example="{}")
    # Not keys: filled in by parse() (`values` then holds the file and the object combined).
    values_secret: bool = field(default=False)  # `jupyterhub` is a Pulumi secret, so are the chart values
    chart: Optional[tuple[dict, dict]] = field(default=None, repr=False)  # with components.jupyterhub: load_chart()


@dataclass(frozen=True, kw_only=True)
class Restd:
    allowed_clients: tuple[str, ...] = key(
        ("slurm-jupyter", "jupyterhub"), "app.kubernetes.io/name values admitted to slurmrestd by its NetworkPolicy "
        "(`jupyterhub`: the chart's user pods, not its hub or proxy)",
        each(matches(DNS_LABEL, "an app.kubernetes.io/name value", DNS_LABEL_FIX)))


@dataclass(frozen=True, kw_only=True)
class Storage:
    size: str = key("10Gi", "its size", SIZE)
    class_name: Optional[str] = key(None, "its StorageClass (default: the cluster's default class)")


# A Kubernetes extended resource: a DNS-subdomain prefix outside kubernetes.io, '/', a name (kubernetes.io "Assign
# Extended Resources to a Container": example.com/foo).
EXTENDED_RESOURCE = (r"^(?!requests\.)(?![a-z0-9.-]*kubernetes\.io/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*"
                     r"[a-z0-9])?)*/[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def check_device_files(text: str) -> None:
    try:
        device_file_count(text)
    except ValueError as e:
        raise Invalid(str(e), "give the device files as gres.conf's File=, e.g. /dev/dri/renderD[128-129]") from None


@dataclass(frozen=True, kw_only=True)
class NodeGpus:
    count: int = key(REQUIRED, "GPUs of each node pod: its request and limit of `resource`, and the "
                               "`Gres=gpu[:type]:count` its slurmd registers with", between(1, 64), example="1")
    resource: str = key(DEFAULT_GPU_RESOURCE, "the Kubernetes extended resource the node pods request, a device plugin's",
                        matches(EXTENDED_RESOURCE, "a Kubernetes extended resource name", "give DOMAIN/NAME outside "
                                "kubernetes.io, as the device plugin serves it, e.g. nvidia.com/gpu"))
    type: Optional[str] = key(None, "Slurm's GRES type, which jobs may ask for (`--gres=gpu:TYPE:1`): part of the model "
                                    "name slurmd detects (`slurmd -C`; e.g. `a100` of `nvidia_a100-sxm4-80gb`)",
                              matches(GRES_TYPE, "a Slurm GRES type", "use letters, digits, '_', '.', '-'"),
                              example="a100")
    file: Optional[str] = key(None, "gres.conf `File=`: the device files each node pod gets, `count` of them "
                                    "(e.g. `/dev/dri/renderD[128-129]`, the same in every pod); required for a "
                                    "`resource` other than `nvidia.com/gpu` (whole NVIDIA GPUs slurmd finds itself: "
                                    "`AutoDetect=nvidia`)",
                              check_device_files, example="/dev/dri/renderD[128-129]")

    @property
    def settings(self) -> Gpus:
        return Gpus(count=self.count, resource=self.resource, type=self.type, file=self.file)


@dataclass(frozen=True, kw_only=True)
class Node:
    cpus: int = key(DEFAULT_CPUS_PER_NODE, "CPUs of each slurmd node (slurm.conf `CPUs=`); distributed: also its "
                                           "pod's CPU limit", between(1, 256))
    memory_mb: int = key(DEFAULT_MEMORY_MB_PER_NODE,
                         "memory of each slurmd node in MB as Slurm counts them (MiB; `RealMemory=`); a job "
                         "without `--mem` gets memoryMb / cpus per CPU (`DefMemPerCPU=`). Distributed: also its pod's "
                         f"memory request and limit, of which Slurm keeps {DISTRIBUTED_MEM_SPEC_MB} for its daemons "
                         "(`MemSpecLimit=`)",
                         between(MIN_MEMORY_MB_PER_NODE, 4 * 1024 * 1024))
    gpus: Optional[NodeGpus] = key(None, "GPUs of each node pod, distributed only (README \"Distributed deployment\"): "
                                         "the pods request them, Slurm schedules them (`GresTypes=gpu`, gres.conf)")


@dataclass(frozen=True, kw_only=True)
class SingleNodePod:
    cpu: Optional[CpuMilli] = key(
        None, f"its CPU limit (default: nodes x node.cpus + {DAEMONS_CPU_MILLI}m for the daemons; it requests only "
              f"the daemons' {DAEMONS_CPU_MILLI}m)", example="4")
    memory: Optional[MemoryMiB] = key(
        None, f"its memory request and limit (default: nodes x node.memoryMb MiB + {DAEMONS_MEMORY_MIB}Mi for the "
              "daemons)", example="8Gi")



@dataclass(frozen=True, kw_only=True)
class Distributed:
    node_cpu_request: Optional[CpuMilli] = key(
        None, "each node pod's CPU request (default: node.cpus, its whole limit, so that Kubernetes reserves what "
              "Slurm hands out); lower only where node pods may share CPUs, e.g. a trial on one machine", example="250m")
    drain_grace_seconds: int = key(
        300, "seconds a node pod that stops (`nodes` lowered, pod deleted or evicted) waits, drained, for its running "
             "jobs to finish before its Slurm node is set DOWN, ending them NODE_FAIL (requeued if they may be), and "
             "deleted (README \"Distributed deployment\"); its pod's terminationGracePeriodSeconds is this plus "
             f"{DRAIN_MARGIN_S}", between(0, 7 * 24 * 3600))
    control_node_selector: dict = key(
        {}, "labels of the Kubernetes nodes that slurmctld's and the accounting pod run on (their nodeSelector; "
            "default: any node), e.g. nodes that are never preempted or scaled away; the node pods go anywhere, "
            "spread", lambda labels: labels and check_labels(labels), example='{"node-role/slurm-control": "true"}')


@dataclass(frozen=True, kw_only=True)
class User:
    name: str = key(REQUIRED, "login name: the JupyterHub user and the Slurm user", check_user_name, example="alice")
    uid: int = key(REQUIRED, f"user id ({directory.MIN_ID}-{directory.MAX_ID}; an existing cluster's own)", IDS,
                   example="2001")
    gid: Optional[int] = key(None, "id of the user's private group, named like the user (default: the uid)", IDS)
    groups: tuple[str, ...] = key((), "further groups, by name (see `groups`)", each(check_user_name))


def check_ldap_uri(text: str) -> None:
    problem = ldap.uri_problem(text)
    if problem:
        raise Invalid(problem, "give ldaps://HOST[:PORT] (or ldap://), several separated by spaces")


CHECK_DN = matches(ldap.DN.pattern, "a distinguished name", "write it as the directory does, e.g. "
                   "dc=example,dc=org (escape ',' '+' '\\' '\"' '<' '>' ';' in a value with '\\')")


def check_ldap_filter(text: str) -> None:
    problem = ldap.filter_problem(text)
    if problem:
        raise Invalid(f"'{text}' {problem}", "give one LDAP filter, e.g. (!(loginShell=/usr/sbin/nologin))")


def check_one_line(text: str) -> None:
    if "\n" in text or "\r" in text:
        raise Invalid("spans lines", "give it on one line")


def check_pem_certificate(text: str) -> None:
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise Invalid("holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                      "give the CA's certificate in PEM, e.g. from openssl x509 -in ca.der -inform der")


@dataclass(frozen=True, kw_only=True)
class Ldap:
    uri: str = key(REQUIRED, "its server: `ldaps://HOST[:PORT]` or `ldap://HOST[:PORT]`; several, separated by "
                             "spaces, are tried in order (JupyterHub's logins use the first alone)", check_ldap_uri, example="ldaps://ldap.example.org")
    base_dn: str = key(REQUIRED, "where its users and groups are searched", CHECK_DN, example="dc=example,dc=org")
    bind_dn: Optional[str] = key(None, "the read-only account the images' nslcd and the hub's user lookups bind "
                                       "as (default: anonymous)",
                                 CHECK_DN, example="cn=nslcd,ou=services,dc=example,dc=org")
    bind_password: Optional[pulumi.Output[str]] = key(None, "that account's password (with `ldap.bindDn`)",
                                                      check_one_line, example="PASSWORD")
    start_tls: bool = key(False, "StartTLS on an `ldap://` URI (`ldaps://` is TLS already)")
    ca_file: Optional[FileText] = key(None, "the site CA's certificate (PEM) that the server's is checked against; "
                                            "required with TLS (`ldaps://` or `ldap.startTls`)", check_pem_certificate,
                                      example="site-ldap-ca.pem")
    user_filter: Optional[str] = key(None, "an LDAP filter users must also match, besides "
                                           "`(objectClass=posixAccount)`", check_ldap_filter,
                                     example="'(!(loginShell=/usr/sbin/nologin))'")
    group_filter: Optional[str] = key(None, "an LDAP filter groups must also match, besides "
                                            "`(objectClass=posixGroup)`", check_ldap_filter,
                                      example="'(cn=hpc*)'")
    login_group: Optional[str] = key(None, "only members of this directory group may log in to JupyterHub (default: "
                                           "every user the directory resolves)", check_user_name, example="hpcusers")

    @property
    def settings(self) -> ldap.Settings:
        return ldap.Settings(uri=self.uri, base_dn=self.base_dn, bind_dn=self.bind_dn, start_tls=self.start_tls,
                             ca=self.ca_file, user_filter=self.user_filter, group_filter=self.group_filter)


@dataclass(frozen=True, kw_only=True)
class Home:
    size: str = key("10Gi", "size of the claim the stack makes", SIZE)
    class_name: Optional[str] = key(
        None, "StorageClass of that claim; it must offer ReadWriteMany (default: the cluster's default class)",
        example="local-path-shared")
    claim: Optional[str] = key(
        None, "an existing ReadWriteMany claim in the namespace to use instead (e.g. bound to the site's NFS "
              "export); with `existingCluster` this or `home.volume` is required",
        matches(DNS_LABEL, "a valid claim name", DNS_LABEL_FIX), example="site-home")
    volume: Optional[str] = key(
        None, "an existing PersistentVolume (e.g. of the site's NFS export) that the claim the stack makes binds to, "
              "instead of a new volume of `home.className`",
        matches(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", "a valid volume name",
                "use lowercase letters, digits, '-' and '.'"), example="site-home")


@dataclass(frozen=True, kw_only=True)
class Jupyter:
    user: Optional[str] = key(None, "the directory user JupyterLab runs as (default: the first of `users`)",
                              example="alice")


def check_labels(labels: dict) -> None:
    """Kubernetes label names and values (a label selector's matchLabels)."""
    if not labels:
        raise Invalid("is empty, which would select every pod", 'name the scraper\'s pods: {"app.kubernetes.io/name": '
                      '"prometheus"}')
    for name, value in labels.items():
        if not (isinstance(value, str) and LABEL_NAME.match(name) and LABEL_VALUE.match(value)):
            raise Invalid(f"{name}={value!r} is not a Kubernetes label", "give label names and string values, as "
                          'in metadata.labels: {"app.kubernetes.io/name": "prometheus"}')


LABEL_NAME = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
CIDR = matches(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$|^[0-9a-fA-F:]+/[0-9]{1,3}$", "an address range",
               "give a CIDR such as 10.0.0.5/32")


@dataclass(frozen=True, kw_only=True)
class Scraper:
    namespace: str = key("monitoring", "namespace of the Prometheus pods (kube-prometheus-stack's usual one)",
                         matches(DNS_LABEL, "a valid Kubernetes namespace", DNS_LABEL_FIX))
    pod_labels: dict = key({"app.kubernetes.io/name": "prometheus"},
                           "labels of the Prometheus pods (the Prometheus Operator's and the prometheus chart's "
                           "carry this one)", check_labels, example='{"app.kubernetes.io/name": "prometheus"}')
    cidr: Optional[str] = key(None, "instead of pods, the addresses of a Prometheus outside the cluster (a "
                                    "NetworkPolicy ipBlock)", CIDR, example="10.0.0.5/32")


@dataclass(frozen=True, kw_only=True)
class Metrics:
    enabled: bool = key(True, "serve Prometheus metrics (slurm-exporter, the token service's, the hub's "
                              "/hub/metrics) to the scraper only, with discovery and alert rules (README "
                              "\"Metrics and alerts\")")
    scraper: Scraper = key(Scraper, "who scrapes: the NetworkPolicies admit these pods (or addresses) to the "
                                    "metrics ports, and no one else")
    prometheus_operator: bool = key(False, "the cluster runs the Prometheus Operator: PodMonitors and a "
                                           "PrometheusRule instead of scrape annotations and a rules ConfigMap "
                                           "(its CRDs must exist)")
    monitor_labels: dict = key({}, "labels of the PodMonitors and PrometheusRule, for the operator's selectors "
                                   "(kube-prometheus-stack selects `release: <its release>`)",
                               lambda labels: labels and check_labels(labels),
                               example='{"release": "kube-prometheus-stack"}')
    pending_alert_minutes: int = key(30, "minutes a job may wait pending on Resources before the alert "
                                         "SlurmJobsPendingOnResources fires", between(1, 7 * 24 * 60))


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    cluster_name: str = key(REQUIRED, "Slurm ClusterName and prefix of Kubernetes names",
                            matches(r"^[a-z][a-z0-9]{0,19}$", "a valid name", "use 1-20 lowercase letters and "
                                    "digits starting with a letter (Slurm and Kubernetes both accept it)"),
                            example="mycluster")
    slurm_version: str = key(DEFAULT_SLURM_VERSION, "Slurm version of the images: " + ", ".join(
        f"`{v}` ({f.debian_suite})" for v, f in VERSIONS.items()) + "; see `components/slurm_files.py`. With "
        "`existingCluster`: the cluster's own release (its slurmctld refuses newer clients, and older ones past Slurm's "
        "compatibility window)",
        one_of(VERSIONS, "a supported Slurm version"))
    auth_type: str = key(AUTH_MUNGE, "AuthType of the stack's own Slurm: `auth/munge` (munged, a generated munge key) "
                         "or `auth/slurm` (Slurm's own: a generated slurm.key, no munged; `slurmVersion` 26.05). An "
                         "existing cluster's is its slurm.conf's", one_of(AUTH_TYPES, "an AuthType"))
    namespace: str = key("slurm", "Kubernetes namespace to deploy into",
                         matches(DNS_LABEL, "a valid Kubernetes namespace", DNS_LABEL_FIX))
    nodes: int = key(DEFAULT_NODES, "slurmd nodes: in slurm-single-node, or node pods of `components.distributed`",
                     between(1, MAX_NODES))
    node: Node = key(Node, "each slurmd node")
    images: Images = key(REQUIRED, "where the images are pushed and pulled from")
    components: Components = key(Components, "which parts to deploy")
    existing_cluster: Optional[ExistingCluster] = key(
        None, "an existing Slurm cluster to connect to: only the clients are deployed (needs `mungeKey`, or "
              "`slurmKey` for a cluster with `AuthType=auth/slurm`, and `components.singleNode` false)")
    munge_key: Optional[pulumi.Output[str]] = key(
        None, "base64 munge key of an existing cluster, instead of a generated one", check_munge_key,
        example='"$(base64 -w0 /etc/munge/munge.key)"')
    jwt_key: Optional[pulumi.Output[str]] = key(
        None, "base64 JWT key (AuthAltParameters jwt_key) of an existing cluster: JupyterHub users' tokens are signed "
              "with it (needs `existingCluster`)", check_jwt_key, example='"$(base64 -w0 /etc/slurm/jwt_hs256.key)"')
    slurm_key: Optional[pulumi.Output[str]] = key(
        None, "base64 slurm.key of an existing cluster whose `AuthType` is `auth/slurm` (Slurm 25.05+: `slurmVersion` "
              "26.05), instead of `mungeKey`: the clients run sackd with it, no munged", check_slurm_key,
        example='"$(base64 -w0 /etc/slurm/slurm.key)"')
    key_rotation: str = key("1", "any string; changing it generates new munge (or slurm.key) and JWT keys, JupyterLab "
                                 "token and hub password (new Secrets, so pods roll)")
    kubernetes: Kubernetes = key(Kubernetes, "the cluster to deploy to")
    jupyterhub: JupyterHub = key(JupyterHub, "the JupyterHub chart")
    restd: Restd = key(Restd, "slurmrestd")
    storage: Storage = key(Storage, "the state volumes: the single node's, or (distributed) slurmctld's and the "
                                    "accounting database's, each of this size and class")
    single_node: SingleNodePod = key(SingleNodePod, "the slurm-single-node pod's resources")
    distributed: Distributed = key(Distributed, "the distributed deployment (`components.distributed`)")
    users: tuple[User, ...] = key(
        (), "the user directory: who may use Slurm through Jupyter (required with JupyterLab or JupyterHub, "
            "unless `ldap`); every pod resolves exactly these names and ids", example='[{"name": "alice", "uid": 2001}]')
    groups: dict = key({}, "further groups of the directory: name to gid", check_groups,
                       example='{"physics": 3000}')
    ldap: Optional[Ldap] = key(
        None, "the site's LDAP directory as the source of users and groups, instead of `users` and `groups`: every "
              "pod that runs as root at its start resolves it (nslcd), and the stack's Slurm (the single node or the "
              "distributed deployment) follows it (README \"Users, homes and identity\")")
    home: Home = key(Home, "the shared home volume, mounted at /home in the Slurm nodes and the Jupyter pods")
    jupyter: Jupyter = key(Jupyter, "JupyterLab (`components.jupyter`)")
    metrics: Metrics = key(Metrics, "Prometheus metrics and alerts")

    @property
    def directory(self) -> tuple[directory.User, ...]:
        return tuple(directory.User(name=u.name, uid=u.uid, gid=u.gid or u.uid, groups=u.groups) for u in self.users)

    @property
    def site(self) -> Optional[site.Site]:
        """The existing cluster's facts (None without `existingCluster`)."""
        return site.describe(self.existing_cluster.slurm_conf) if self.existing_cluster else None

    @property
    def jupyter_user(self) -> str:
        return self.jupyter.user or self.users[0].name

    @property
    def debian_suite(self) -> str:
        return VERSIONS[self.slurm_version].debian_suite

    @property
    def single_node_memory_mib(self) -> int:
        """The single node pod's memory request and limit, MiB."""
        return self.single_node.memory or self.nodes * self.node.memory_mb + DAEMONS_MEMORY_MIB

    @property
    def single_node_cpu_milli(self) -> tuple[int, int]:
        """The single node pod's CPU (request, limit), millicores. CPU is compressible, so the request is only
        what the daemons need: the pod schedules where the nodes' CPUs are shared, and jobs are throttled, never
        killed, when they are."""
        return DAEMONS_CPU_MILLI, self.single_node.cpu or self.nodes * self.node.cpus * 1000 + DAEMONS_CPU_MILLI

    @property
    def node_pod_cpu_milli(self) -> tuple[int, int]:
        """A distributed node pod's CPU (request, limit), millicores: the limit is its Slurm CPUs."""
        limit = self.node.cpus * 1000
        return self.distributed.node_cpu_request or limit, limit


# Every top-level key with its meaning.
KEYS = {name: f.metadata["meaning"] for name, f in keys_of(StackConfig).items()}
