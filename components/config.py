"""The stack configuration as one declarative table: every key's name, type, default, meaning and check.

The table is the dataclasses below. Each field declared with `key(default, meaning, check)` is a config key:
its camelCase name is the key (`cluster_name` -> `clusterName`), its annotation the type (`TYPES`), and a
field whose type is another of these dataclasses is an object key with fields declared the same way. From
this table come `parse()` (raw config values in, a `StackConfig` out; pure, so tested directly), `KEYS` (keys
not listed are rejected as typos) and the README's configuration table (`python -m components.config
--readme` rewrites it and the README's list of the chart settings the program owns, `chart_values.OWNED`; a unit
test holds the README to them). Adding a key is adding one field.

`load()` reads the running Pulumi stack's configuration and calls `parse()`. A bad value raises
`ConfigError`, whose message names the key, what is wrong and how to fix it; `pulumi preview` prints it
without a stack trace.
"""

import base64
import binascii
import difflib
import json
import os
import re
import sys
import typing
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, NewType, Optional

import pulumi
import pulumi.runtime.config as runtime_config

from components import directory, site
from components.chart_values import load_chart, owned_list, read_user_values
from components.errors import PROJECT, ConfigError
from components.jupyterhub import check_user_values
from components.slurm_files import (
    DEFAULT_CPUS_PER_NODE,
    DEFAULT_MEMORY_MB_PER_NODE,
    DEFAULT_NODES,
    DEFAULT_SLURM_VERSION,
    MIN_MEMORY_MB_PER_NODE,
    VERSIONS,
)

README = Path(__file__).resolve().parents[1] / "README.md"
MUNGE_KEY_MIN_BYTES = 32  # munged refuses shorter keys
JWT_KEY_MIN_BYTES = 32  # RFC 7518 3.2: an HS256 key has at least the hash's 256 bits
REQUIRED = MISSING  # the default of a key that must be set

# What the single node needs beside its nodes' CPUs and memory: its daemons (measured RSS: MariaDB about 130 MB,
# slurmctld, slurmdbd, each slurmd, slurmrestd and munged 5-20 MB), page cache, and what a job allocates beyond
# its share before Slurm's once-a-second sample kills it (README "Node resources").
DAEMONS_CPU_MILLI = 500
DAEMONS_MEMORY_MIB = 1024

LocalPath = NewType("LocalPath", str)  # a path on this machine, ~ and $VARS expanded
FileText = NewType("FileText", str)  # set as a path relative to the project; the value is the file's text
MemoryMiB = NewType("MemoryMiB", int)  # set as a Kubernetes quantity (8Gi, 6000Mi); the value is in MiB
CpuMilli = NewType("CpuMilli", int)  # set as a Kubernetes quantity (4, 1500m); the value is in millicores


class Invalid(Exception):
    """Raised by a check or a type's conversion: what is wrong and the fix (`parse()` adds the key)."""

    def __init__(self, problem: str, fix: str):
        super().__init__(problem)
        self.problem, self.fix = problem, fix


Check = Callable[[Any], None]  # takes a key's converted value; raises Invalid if it is wrong


def key(default: Any, meaning: str, check: Optional[Check] = None, example: str = "VALUE") -> Any:
    """One row of the table, as a dataclass field. `default`: REQUIRED, a value, or (for an object key) the
    object's dataclass, meaning "every field at its default". `example` is the value fix hints suggest."""
    meta = {"meaning": meaning, "check": check, "example": example}
    if isinstance(default, type):  # an object key: its dataclass
        return field(default_factory=default, metadata=meta)
    if isinstance(default, dict):  # a free-form object: a fresh copy for each StackConfig
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


# Checks used by the table.

def matches(pattern: str, what: str, fix: str) -> Check:
    regex = re.compile(pattern)

    def check(value: Any) -> None:
        if not (isinstance(value, str) and regex.match(value)):
            raise Invalid(f"'{value}' is not {what}", fix)
    return check


def one_of(choices: typing.Iterable[str], what: str) -> Check:
    def check(value: str) -> None:
        if value not in choices:
            raise Invalid(f"'{value}' is not {what}", f"use one of {', '.join(choices)}")
    return check


def between(low: int, high: int) -> Check:
    def check(value: int) -> None:
        if not low <= value <= high:
            raise Invalid(f"{value} is out of range", f"use a number from {low} to {high}")
    return check


def each(check: Check) -> Check:
    def check_all(values: tuple) -> None:
        for value in values:
            check(value)
    return check_all


def base64_key(min_bytes: int, needs: str, file: str) -> Check:
    """A check of a base64 key of at least `min_bytes` bytes (`needs`: who needs that many; `file`: where it is)."""
    def check(text: str) -> None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("is not base64 text", f"set it from base64 -w0 {file}") from None
        if len(raw) < min_bytes:
            raise Invalid(f"decodes to {len(raw)} bytes, {needs} at least {min_bytes}",
                          f"use the cluster's real {file}")
    return check


check_munge_key = base64_key(MUNGE_KEY_MIN_BYTES, "munged needs", "/etc/munge/munge.key")
check_jwt_key = base64_key(JWT_KEY_MIN_BYTES, "an HS256 key needs", "jwt_hs256.key")


def check_slurm_conf(text: str) -> None:
    try:
        site.describe(text)
    except ValueError as e:
        raise Invalid(f"is not a usable slurm.conf: {e}", "copy the cluster's real /etc/slurm/slurm.conf") from None


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_LABEL_FIX = "use lowercase letters, digits and '-', at most 63 characters"
SIZE = matches(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$", "a Kubernetes quantity", "use a size such as 10Gi")


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


@dataclass(frozen=True, kw_only=True)
class Node:
    cpus: int = key(DEFAULT_CPUS_PER_NODE, "CPUs of each slurmd node (slurm.conf `CPUs=`)", between(1, 256))
    memory_mb: int = key(DEFAULT_MEMORY_MB_PER_NODE,
                         "memory of each slurmd node in MB as Slurm counts them (MiB; `RealMemory=`); a job "
                         "without `--mem` gets memoryMb / cpus per CPU (`DefMemPerCPU=`)",
                         between(MIN_MEMORY_MB_PER_NODE, 4 * 1024 * 1024))


@dataclass(frozen=True, kw_only=True)
class SingleNodePod:
    cpu: Optional[CpuMilli] = key(
        None, f"its CPU limit (default: nodes x node.cpus + {DAEMONS_CPU_MILLI}m for the daemons; it requests only "
              f"the daemons' {DAEMONS_CPU_MILLI}m)", example="4")
    memory: Optional[MemoryMiB] = key(
        None, f"its memory request and limit (default: nodes x node.memoryMb MiB + {DAEMONS_MEMORY_MIB}Mi for the "
              "daemons)", example="8Gi")


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


@dataclass(frozen=True, kw_only=True)
class User:
    name: str = key(REQUIRED, "login name: the JupyterHub user and the Slurm user", check_user_name, example="alice")
    uid: int = key(REQUIRED, f"user id ({directory.MIN_ID}-{directory.MAX_ID}; an existing cluster's own)", IDS,
                   example="2001")
    gid: Optional[int] = key(None, "id of the user's private group, named like the user (default: the uid)", IDS)
    groups: tuple[str, ...] = key((), "further groups, by name (see `groups`)", each(check_user_name))


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
    namespace: str = key("slurm", "Kubernetes namespace to deploy into",
                         matches(DNS_LABEL, "a valid Kubernetes namespace", DNS_LABEL_FIX))
    nodes: int = key(DEFAULT_NODES, "slurmd nodes in slurm-single-node", between(1, 64))
    node: Node = key(Node, "each slurmd node of slurm-single-node")
    images: Images = key(REQUIRED, "where the images are pushed and pulled from")
    components: Components = key(Components, "which parts to deploy")
    existing_cluster: Optional[ExistingCluster] = key(
        None, "an existing Slurm cluster to connect to: only the clients are deployed (needs `mungeKey` and "
              "`components.singleNode` false)")
    munge_key: Optional[pulumi.Output[str]] = key(
        None, "base64 munge key of an existing cluster, instead of a generated one", check_munge_key,
        example='"$(base64 -w0 /etc/munge/munge.key)"')
    jwt_key: Optional[pulumi.Output[str]] = key(
        None, "base64 JWT key (AuthAltParameters jwt_key) of an existing cluster: JupyterHub users' tokens are signed "
              "with it (needs `existingCluster`)", check_jwt_key, example='"$(base64 -w0 /etc/slurm/jwt_hs256.key)"')
    key_rotation: str = key("1", "any string; changing it generates new munge and JWT keys, JupyterLab token and "
                                 "hub password (new Secrets, so pods roll)")
    kubernetes: Kubernetes = key(Kubernetes, "the cluster to deploy to")
    jupyterhub: JupyterHub = key(JupyterHub, "the JupyterHub chart")
    restd: Restd = key(Restd, "slurmrestd")
    storage: Storage = key(Storage, "the single node's state volume")
    single_node: SingleNodePod = key(SingleNodePod, "the slurm-single-node pod's resources")
    users: tuple[User, ...] = key(
        (), "the user directory: who may use Slurm through Jupyter (required with JupyterLab or JupyterHub); "
            "every pod resolves exactly these names and ids", example='[{"name": "alice", "uid": 2001}]')
    groups: dict = key({}, "further groups of the directory: name to gid", check_groups,
                       example='{"physics": 3000}')
    home: Home = key(Home, "the shared home volume, mounted at /home in the Slurm nodes and the Jupyter pods")
    jupyter: Jupyter = key(Jupyter, "JupyterLab (`components.jupyter`)")

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


def _rules(cfg: StackConfig) -> None:
    """Rules between keys (each key's own check is in the table)."""
    if cfg.images.password is not None:
        _check(cfg.images.username, "images.username", "is missing while images.password is set",
               how_to_set("images.username"))
    _check(not (cfg.kubernetes.kubeconfig and cfg.kubernetes.render_dir), "kubernetes.renderDir",
           "is set together with kubernetes.kubeconfig, but a rendering stack talks to no cluster",
           "remove one of them")
    components = cfg.components
    if components.jupyterhub:
        _check(components.token_service, "components.tokenService", "is false while components.jupyterhub is true, "
               "but the hub's users get their Slurm tokens from it", "set components.tokenService to true")
        _check(cfg.jupyterhub.chart_version, "jupyterhub.chartVersion", "is missing while components.jupyterhub "
               "is true", f"pin the chart: {how_to_set('jupyterhub.chartVersion')}")
    if cfg.existing_cluster:
        _check(not components.single_node, "components.singleNode",
               "is true but existingCluster is set: the stack would deploy a second Slurm",
               "set components.singleNode to false, or remove existingCluster")
        _check(cfg.munge_key is not None, "mungeKey", "is missing but existingCluster needs the cluster's munge key",
               how_to_set("mungeKey"))
        if components.token_service:
            _check(cfg.jwt_key is not None, "jwtKey", "is missing but the token service signs JupyterHub users' "
                   "Slurm tokens with the existing cluster's JWT key", how_to_set("jwtKey"))
        jwt_clients = tuple(name for name, on in (("slurmrestd", components.restd),
                                                  ("JupyterHub's users", components.jupyterhub)) if on)
        configless = cfg.existing_cluster.configless
        if configless and components.restd:
            _check(VERSIONS[cfg.slurm_version].sackd, "existingCluster.configless", f"is true, but slurmrestd of "
                   f"Slurm {cfg.slurm_version} cannot run configless (it fetches the files through sackd, Slurm "
                   "23.11+)", "copy slurm.conf (configless false), or set components.restd to false")
        found = site.problems(cfg.site, jwt_clients=jwt_clients, configless=configless)
        _check(not found, "existingCluster.slurmConf", "; ".join(found),
               "fix the cluster's slurm.conf (and copy it again), or change what the stack deploys")
    else:
        _check(cfg.jwt_key is None, "jwtKey", "is set without existingCluster, whose key it would be",
               "remove it (the stack makes its own Slurm's key)")
        if not components.single_node and (components.restd or components.jupyter or components.jupyterhub):
            raise ConfigError("components.singleNode", "is false and no existingCluster is set, so the clients have "
                              "no Slurm to talk to", "set components.singleNode to true, or set existingCluster.slurmConf")
    _check_nodes_fit(cfg)
    _check_directory(cfg)
    if cfg.kubernetes.render_dir:
        _check(not components.jupyterhub, "components.jupyterhub",
               "is true but kubernetes.renderDir is set: a Helm release needs a live cluster",
               "set components.jupyterhub to false for a render-only stack")


def _check_directory(cfg: StackConfig) -> None:
    components = cfg.components
    if (components.jupyter or components.jupyterhub or components.token_service) and not cfg.users:
        raise ConfigError("users", "is empty, but JupyterLab and JupyterHub run only as users of the directory",
                          "pulumi config set --path 'users[0].name' alice && "
                          "pulumi config set --path 'users[0].uid' 2001")
    problems = directory.problems(cfg.directory, cfg.groups)
    _check(not problems, "users", "; ".join(problems), "give each user and group its own name and id")
    if components.jupyter:
        _check(cfg.jupyter_user in {u.name for u in cfg.users}, "jupyter.user",
               f"'{cfg.jupyter_user}' is not in `users`", "name a user of the directory")
    home = cfg.home
    _check(not (home.claim and home.volume), "home.volume", "is set together with home.claim, but the stack "
           "makes no claim when it is given one", "remove one of them")
    _check(not (home.volume and home.class_name), "home.className", "is set together with home.volume, but a claim "
           "bound to a given volume has no class", "remove one of them")
    if cfg.existing_cluster:
        _check(home.claim or home.volume, "home.claim", "is missing but existingCluster needs the site's shared home "
               "(the Slurm nodes must see the files Jupyter users write)",
               f"{how_to_set('home.claim')}, or name the site's PersistentVolume: {how_to_set('home.volume')}")


def _check_nodes_fit(cfg: StackConfig) -> None:
    """singleNode.memory and singleNode.cpu, when set, must hold every node plus the daemons."""
    pod = cfg.single_node
    need_mib = cfg.nodes * cfg.node.memory_mb + DAEMONS_MEMORY_MIB
    if pod.memory is not None and pod.memory < need_mib:
        raise ConfigError("singleNode.memory", f"{pod.memory}Mi cannot hold nodes x node.memoryMb = {cfg.nodes} x "
                          f"{cfg.node.memory_mb} MiB plus the daemons' {DAEMONS_MEMORY_MIB} MiB ({need_mib} MiB)",
                          f"raise singleNode.memory to at least {need_mib}Mi, or lower node.memoryMb or nodes")
    need_milli = cfg.nodes * cfg.node.cpus * 1000 + DAEMONS_CPU_MILLI
    if pod.cpu is not None and pod.cpu < need_milli:
        raise ConfigError("singleNode.cpu", f"{pod.cpu}m cannot hold nodes x node.cpus = {cfg.nodes} x "
                          f"{cfg.node.cpus} CPUs plus the daemons' {DAEMONS_CPU_MILLI}m ({need_milli}m)",
                          f"raise singleNode.cpu to at least {need_milli}m, or lower node.cpus or nodes")


# Types: what each annotation accepts and how the README names it.

def _json(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            pass
    return raw


def _string(raw: Any, _project_dir: str) -> str:
    if isinstance(raw, (dict, list)):
        raise Invalid(f"{json.dumps(raw)} is not a single value", "give a string")
    return str(raw)


def _integer(raw: Any, _project_dir: str) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise Invalid(f"'{raw}' is not a whole number", "use a whole number") from None


def _boolean(raw: Any, _project_dir: str) -> bool:
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if not isinstance(raw, bool):
        raise Invalid(f"'{raw}' is not true or false", "use true or false")
    return raw


def _list(raw: Any, _project_dir: str) -> tuple:
    value = _json(raw)
    if not isinstance(value, list):
        raise Invalid(f"{raw!r} is not a list", "give a list: pulumi config set --path KEY[0] VALUE")
    return tuple(value)


def _object(raw: Any, _project_dir: str) -> dict:
    value = _json(raw)
    if not isinstance(value, dict):
        raise Invalid("must be an object", "set its fields with pulumi config set --path KEY.FIELD VALUE")
    return value


def _local_path(raw: Any, project_dir: str) -> str:
    path = os.path.expanduser(os.path.expandvars(_string(raw, project_dir)))
    if "$" in path:
        raise Invalid(f"'{path}' names an unset environment variable",
                      "export it (scripts/env.sh sets SCI_CACHE) or give a plain path")
    return path


def _file_text(raw: Any, project_dir: str) -> str:
    path = _string(raw, project_dir)
    try:
        with open(os.path.join(project_dir, path), encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise Invalid(f"cannot read '{path}': {e.strerror}", "give the file's path relative to the project") from None


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {"": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


def _quantity(raw: Any, fix: str) -> float:
    """A Kubernetes quantity (a number with an optional suffix) as a plain number."""
    match = _QUANTITY.match(str(raw).strip())
    if not match or float(match.group(1)) <= 0:
        raise Invalid(f"'{raw}' is not a positive Kubernetes quantity", fix)
    return float(match.group(1)) * _FACTORS[match.group(2) or ""]


def _memory(raw: Any, _project_dir: str) -> int:
    fix = "give a memory size such as 8Gi or 6000Mi"
    if str(raw).strip().endswith("m"):
        raise Invalid(f"'{raw}' is in thousandths of a byte", fix)
    return int(_quantity(raw, fix) // 2 ** 20)


def _cpu(raw: Any, _project_dir: str) -> int:
    return round(_quantity(raw, "give CPUs such as 4 or 1500m") * 1000)


# annotation -> (name in the README, conversion of the raw value, what the README says of it if not obvious);
# an object key's dataclass is "object".
TYPES: dict[Any, tuple[str, Callable[[Any, str], Any], str]] = {
    str: ("string", _string, ""),
    int: ("integer", _integer, ""),
    bool: ("boolean", _boolean, ""),
    tuple: ("list", _list, ""),
    dict: ("object", _object, ""),  # free-form: passed through as given
    LocalPath: ("path", _local_path, "`~` and `$VARS` are expanded"),
    FileText: ("file", _file_text, "a path relative to the project, read when the stack runs"),
    MemoryMiB: ("memory", _memory, "a Kubernetes quantity such as `8Gi`"),
    CpuMilli: ("cpu", _cpu, "a Kubernetes quantity such as `4` or `1500m`"),
    pulumi.Output: ("secret string", _string, "set it with `pulumi config set --secret`"),
}


def _element(f: Field) -> Optional[type]:
    """The dataclass of a list of objects (tuple[User, ...]), else None."""
    args = typing.get_args(f.type)
    return args[0] if _type(f) is tuple and args and is_dataclass(args[0]) else None


def _type(f: Field) -> Any:
    """The type a field's annotation names: Optional[X] -> X, tuple[str, ...] -> tuple, a dataclass as is."""
    hint = f.type
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _fields(cls: type) -> dict[str, Field]:
    """An object's fields by config name."""
    return {_camel(f.name): f for f in fields(cls) if "meaning" in f.metadata}


def _required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


KEYS = {name: f.metadata["meaning"] for name, f in _fields(StackConfig).items()}


def how_to_set(dotted: str) -> str:
    """The `pulumi config set` command for a key such as `images.registry` (for an object key: for its first
    required field), with the table's example value."""
    cls, f = StackConfig, None
    for name in dotted.split("."):
        f = _fields(cls)[name.split("[")[0]]  # users[0] -> users
        cls = _element(f) if "[" in name else _type(f)
    if is_dataclass(cls):
        first = next((name for name, sub in _fields(cls).items() if _required(sub)), None)
        return how_to_set(f"{dotted}.{first}") if first else f"pulumi config set --path {dotted}.FIELD VALUE"
    flags = "--secret " * (cls is pulumi.Output) + "--path " * ("." in dotted)
    return f"pulumi config set {flags}{dotted} {f.metadata['example']}"


# Parsing.

def load(project_dir: str = ".") -> StackConfig:
    """Read and check the running stack's configuration."""
    prefix = f"{PROJECT}:"
    values = {k[len(prefix):]: v for k, v in _all_config().items() if k.startswith(prefix)}
    env_secrets = set(runtime_config.get_config_secret_keys_env())
    secret = {k for k in values if runtime_config.is_config_secret(prefix + k) or prefix + k in env_secrets}
    return parse(values, secret, project_dir)


def _all_config() -> dict[str, Any]:
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def parse(values: dict[str, Any], secret_keys: typing.AbstractSet[str] = frozenset(),
          project_dir: str = ".") -> StackConfig:
    """Check raw config values (strings, or JSON strings for objects) and build a StackConfig.

    `secret_keys`: the keys set with --secret; `project_dir`: what file paths are relative to. With
    `components.jupyterhub`, the chart values are checked against the pinned chart (jupyterhub.check_user_values),
    whose default values and schema the result carries for the Release."""
    cfg = _parse_object(StackConfig, values, "", secret_keys, project_dir)
    hub = cfg.jupyterhub
    cfg = replace(cfg, jupyterhub=replace(
        hub, values=read_user_values(hub.values, hub.values_file, project_dir),
        values_secret="jupyterhub" in secret_keys))
    _rules(cfg)
    if cfg.components.jupyterhub:
        chart = load_chart(cfg.jupyterhub.chart_version, cfg.jupyterhub.chart_repo)
        check_user_values(chart, cfg.jupyterhub.values, cfg.directory)
        cfg = replace(cfg, jupyterhub=replace(cfg.jupyterhub, chart=chart))
    return cfg


def _parse_object(cls: type, obj: dict, prefix: str, secret_keys: typing.AbstractSet[str], project_dir: str) -> Any:
    known = _fields(cls)
    for name in obj:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            what = "field" if prefix else "key"
            fix = f"did you mean '{prefix}{close[0]}'?" if close else f"remove it; known {what}s: {', '.join(known)}"
            raise ConfigError(f"{prefix}{name}", f"unknown {what}", fix)
    return cls(**{f.name: _parse_value(f, obj.get(name), prefix + name, secret_keys, project_dir)
                  for name, f in known.items()})


def _parse_value(f: Field, raw: Any, dotted: str, secret_keys: typing.AbstractSet[str], project_dir: str) -> Any:
    kind = _type(f)
    if raw is None or raw == "":
        _check(not _required(f), dotted, "is missing", how_to_set(dotted))
        if not is_dataclass(kind) or f.default_factory is MISSING:
            return f.default if f.default_factory is MISSING else f.default_factory()
        raw = {}  # an object key left out: every field at its default
    try:
        if is_dataclass(kind):
            return _parse_object(kind, _object(raw, project_dir), dotted + ".", secret_keys, project_dir)
        if _element(f):
            return tuple(_parse_object(_element(f), _object(item, project_dir), f"{dotted}[{i}].", secret_keys,
                                       project_dir) for i, item in enumerate(_list(raw, project_dir)))
        if kind is pulumi.Output and dotted.split(".")[0] not in secret_keys:
            raise Invalid("is stored in plain text in the stack file", how_to_set(dotted))
        value = TYPES[kind][1](raw, project_dir)
        if f.metadata["check"]:
            f.metadata["check"](value)
    except Invalid as e:
        raise ConfigError(dotted, e.problem, e.fix.replace("KEY", dotted)) from None
    return pulumi.Output.secret(value) if kind is pulumi.Output else value


def _check(ok: Any, dotted: str, problem: str, fix: str) -> None:
    if not ok:
        raise ConfigError(dotted, problem, fix)


# The README's generated sections.

def rows(cls: Optional[type] = None, prefix: str = "") -> typing.Iterator[tuple[str, Field]]:
    """Every key and field of the table as (dotted name, dataclass field), in the table's order."""
    for name, f in _fields(cls or StackConfig).items():
        yield prefix + name, f
        if is_dataclass(_type(f)):
            yield from rows(_type(f), f"{prefix}{name}.")
        elif _element(f):
            yield from rows(_element(f), f"{prefix}{name}[].")


def type_name(f: Field) -> str:
    kind = _type(f)
    return "object" if is_dataclass(kind) else "list of objects" if _element(f) else TYPES[kind][0]


def readme_table() -> str:
    """The Markdown table of every key and field."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {type_name(f)} | {_show_default(f)} | {f.metadata['meaning']} |" for name, f in rows()]
    lines += ["", "Types: " + " ".join(f"`{name}`: {doc}." for name, _, doc in TYPES.values() if doc)]
    return "\n".join(lines)


def _show_default(f: Field) -> str:
    if _required(f):
        return "required"
    if f.default is None or is_dataclass(f.default_factory):
        return ""
    value = f.default if f.default_factory is MISSING else f.default_factory()
    return f"`{value}`" if isinstance(value, str) else f"`{json.dumps(value)}`"


# (name, the module it is made from, what makes it): each lies between its markers (readme_markers()).
README_SECTIONS = (("config table", "components/config.py", readme_table),
                   ("owned chart settings", "components/chart_values.py", owned_list))


def readme_markers(name: str, source: str) -> tuple[str, str]:
    return (f"<!-- BEGIN {name}: made from {source} by `python -m components.config --readme` -->",
            f"<!-- END {name} -->")


def readme_with_tables(text: str) -> str:
    """`text` (the README) with each of README_SECTIONS made anew between its markers."""
    for name, source, make in README_SECTIONS:
        begin, end = readme_markers(name, source)
        start, stop = text.index(begin) + len(begin), text.index(end)
        text = f"{text[:start]}\n{make()}\n{text[stop:]}"
    return text


if __name__ == "__main__":
    if sys.argv[1:] != ["--readme"]:
        sys.exit("usage: python -m components.config --readme   (rewrites README.md's generated sections)")
    README.write_text(readme_with_tables(README.read_text()))
