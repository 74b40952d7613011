"""One source for the Slurm configuration: per-version facts and the rendered files.

Pure Python (no Pulumi import): the Pulumi components, the image tests and `scripts/bench` all call
`render_slurm_files()` and read `VERSIONS`, so a fact such as a path, a port or a plugin name is written here
(or in `configs/*.j2`) and nowhere else.

Default version
---------------
`DEFAULT_SLURM_VERSION = "24.11"`: it is the Slurm of Debian's current stable release (trixie), so its
packages get Debian security updates, and SchedMD still supports the 24.11 series. 22.05 (bookworm,
oldstable) is past SchedMD's support window and only serves the REST API up to v0.0.38; 26.05 comes from sid
(unstable), whose packages change under us and whose Release file is not even valid on this project's clocks.
Both stay selectable for sites that run them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional

import jinja2

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")

# Run-time paths shared by every image (dockerfiles/README.md is the contract that names them).
SLURM_CONF_DIR = "/etc/slurm"
JWT_KEY_PATH = "/etc/slurm/jwt_hs256.key"
STATE_DIR = "/var/lib/slurm-state"  # the single node's one volume
LOG_DIR = "/var/log/slurm"
RUN_DIR = "/run/slurm"

# Ports (dockerfiles/README.md). slurmd ports start at 6818 and skip the ports of the other daemons.
SLURMCTLD_PORT = 6817
SLURMD_FIRST_PORT = 6818
SLURMDBD_PORT = 6819
SLURMRESTD_PORT = 6820
MARIADB_PORT = 3306

# How long a user's Slurm JWT is valid at most, in seconds: the token service mints JupyterHub users' tokens for
# this long, and slurmctld refuses any user's request for a longer one (slurm.conf AuthAltParameters
# max_token_lifespan, Slurm 22.05+: `scontrol token`, in a terminal, a job, or with a JWT). Root and SlurmUser
# are exempt (Slurm's jwt.html). Why 15 minutes: dockerfiles/slurm-jupyter/slurm-token-service.
TOKEN_LIFETIME_S = 900
_RESERVED_PORTS = {SLURMCTLD_PORT, SLURMDBD_PORT, SLURMRESTD_PORT}

# slurm.conf AuthType of the stack's own Slurm (config `authType`): munge, or Slurm's own authentication (one
# slurm.key, no munged; the daemons serve their hosts' commands credentials through sack sockets: Slurm's
# authentication.html). Slurm has auth/slurm since 23.11; this project uses it from 25.05 on (issue 21), of its
# versions 26.05, the one tested (tests/images/test_site_auth_slurm.py, tests/e2e/test_10_distributed.py).
AUTH_MUNGE = "auth/munge"
AUTH_SLURM = "auth/slurm"
AUTH_TYPES = (AUTH_MUNGE, AUTH_SLURM)
AUTH_SLURM_SINCE = (25, 5)


def auth_slurm_supported(slurm_version: str) -> bool:
    """Does this project run auth/slurm with Slurm `slurm_version` ("26.05")? (AUTH_SLURM_SINCE)"""
    major, minor = (int(part) for part in slurm_version.split(".")[:2])
    return (major, minor) >= AUTH_SLURM_SINCE

# The slurm.conf keys render_slurm_files(throughput=True) sets for many short jobs, each away from Slurm's default
# (configs/slurm.conf.j2 says why, README "Job throughput" what it gains and costs).
THROUGHPUT_KEYS = ("Epilog", "SchedulerParameters")

# Files render_slurm_files() returns. Only slurmdbd.conf is secret (it holds the database password).
SECRET_FILES = ("slurmdbd.conf",)
CONFIG_FILES = ("slurm.conf", "cgroup.conf", "slurm-image.env")
GRES_CONF = "gres.conf"  # rendered beside them only with Distributed.gpus


@dataclass(frozen=True)
class SlurmVersion:
    """What differs between the Slurm versions this project supports (seen on Debian's packages)."""

    version: str  # "24.11": the Slurm release series
    debian_suite: str  # the Debian suite whose packages provide it (build arg DEBIAN_SUITE)
    rest_api_version: str  # the slurmrestd URL version clients use: /slurm/<this>/ping
    restd_plugins: str  # slurmrestd -s (OpenAPI plugins); names became unversioned in 23.11
    cgroup_plugin: Optional[str]  # CgroupPlugin= in cgroup.conf; None = leave the line out
    mail_prog: str  # MailProg=; 24.11+ refuse to start without an existing program
    mariadb_socket: str  # where this suite's MariaDB server and client library put/look for the socket
    sackd: bool  # the suite has sackd (Slurm 23.11+), which slurmrestd needs on a configless site (slurm-client image)
    # Dynamic nodes as the distributed deployment runs them (`slurmd -Z` registering into a NodeSet by Feature, the
    # nodes kept in slurmctld's state across its restarts): 23.02+. 22.05's dynamic nodes reach each other only through
    # the alias list (TreeWidth=65533, no NodeSet assignment at registration), which the deployment neither does nor
    # tests.
    dynamic_nodes: bool = True
    # slurmctld serves its own figures (Slurm 25.11+, slurm.conf MetricsType=metrics/openmetrics: GET /metrics/* on
    # its port), which the single node's slurm-exporter serves through; older versions: the exporter computes them.
    openmetrics: bool = False


# What else was seen of each version, for whoever debugs one:
# - 22.05.8 (bookworm; no longer supported by SchedMD): serves REST v0.0.36-38 and dbv0.0.36-38. REST answers
#   HTTP 500 (not 401) to a bad token; job_state is a string; the submit payload has 'script' beside 'job' and
#   'environment' as an object. A client with another munge key gets 'Zero Bytes were transmitted or received'
#   (24.11+: 'Protocol authentication error'). sacct shows JobName 'allocation' for batch jobs although slurmdbd
#   stored the name. A token-only client (SLURM_JWT, no munge): a refused token also gives 'Zero Bytes ...'
#   (sacct: 'auth_g_pack: protocol_version 6500 not supported', exit 239); srun gets as far as the task launch
#   and fails there with 'Zero Bytes ...'. A submission for an unknown name (uid 99): sbatch 'Invalid user id',
#   REST 'Invalid account or account/partition combination specified'.
# - 24.11.5 (trixie): serves REST v0.0.40-42. slurmdbd cannot create slurm_acct_db itself with Connector/C 3.4
#   (error 5027): the image creates it first. A wrong token gets HTTP 511 from /diag but HTTP 200 with
#   "pinged": "DOWN" from /ping; job_state is a list; submit answers a top-level job_id. A submission for a name
#   it cannot resolve is ACCEPTED and held as uid 99 unless AccountingStorageEnforce=associations, which refuses
#   it with 'Invalid account or account/partition combination specified' (2045; REST: HTTP 500). job_submit/lua
#   sees only user_id 99 (user_name nil), and the text of its slurm.log_user does not reach REST ('Unspecified
#   error'), so no plugin can name the user.
# - 26.05.5 (sid, Debian unstable): serves REST v0.0.42-45. MariaDB's socket moved to /run/mariadbd/. REST
#   behaves as 24.11's, except: a submission for an unknown name is refused even without enforcement, with
#   'Rejecting authentication of user nobody or group nobody' (6010); srun with a token says 'auth/jwt is not
#   supported for use with srun'.
VERSIONS: dict[str, SlurmVersion] = {
    v.version: v
    for v in (
        SlurmVersion(version="22.05", debian_suite="bookworm", rest_api_version="v0.0.38",
                     restd_plugins="openapi/v0.0.38,openapi/dbv0.0.38", cgroup_plugin=None, mail_prog="/bin/true",
                     mariadb_socket="/run/mysqld/mysqld.sock", sackd=False, dynamic_nodes=False),
        SlurmVersion(version="24.11", debian_suite="trixie", rest_api_version="v0.0.42",
                     restd_plugins="slurmctld,slurmdbd", cgroup_plugin="disabled", mail_prog="/bin/true",
                     mariadb_socket="/run/mysqld/mysqld.sock", sackd=True),
        SlurmVersion(version="26.05", debian_suite="sid", rest_api_version="v0.0.44",
                     restd_plugins="slurmctld,slurmdbd", cgroup_plugin="disabled", mail_prog="/bin/true",
                     mariadb_socket="/run/mariadbd/mysqld.sock", sackd=True, openmetrics=True),
    )
}

DEFAULT_SLURM_VERSION = "24.11"
DEFAULT_NODES = 2
# Each node runs the seed's examples/test.slurm (--mem=2300, one task) with room for its batch shell.
DEFAULT_CPUS_PER_NODE = 2
DEFAULT_MEMORY_MB_PER_NODE = 2560
MIN_MEMORY_MB_PER_NODE = 256  # a node must hold a job's shell, srun and slurmstepd with some room
MAX_NODES = 64  # config `nodes`' upper bound; the distributed deployment's MaxNodeCount (dynamic nodes)
# What Slurm keeps of a distributed node pod's memory for its own daemons (munged, slurmd, each step's slurmstepd:
# 5-20 MB each), slurm.conf MemSpecLimit: the pod's whole memory is RealMemory, jobs get RealMemory minus this.
DISTRIBUTED_MEM_SPEC_MB = 128
# A distributed node pod's terminationGracePeriodSeconds beyond config distributed.drainGraceSeconds: its preStop hook
# (distributed.sh drain) sets the node DOWN and deletes it after the grace (up to 50 s of timeouts), then munged and
# slurmd stop on SIGTERM.
DRAIN_MARGIN_S = 60
DYNAMIC_NODES_MISSING = ("its dynamic nodes (slurmd -Z) join a partition only through the alias list and "
                         "TreeWidth=65533, which this deployment does not do; use 24.11 or 26.05")


DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"  # the NVIDIA device plugin's whole GPUs: the only ones AutoDetect=nvidia counts
GRES_TYPE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # no ':' ',' '=' or space: Gres= and gres.conf split on them
_GRES_TYPE = re.compile(GRES_TYPE)
# gres.conf(5) File: a path with an optional numeric range suffix, /dev/nvidia[0-3].
_DEVICE_FILES = re.compile(r"^(/dev/[A-Za-z0-9_./-]+?)(\[([0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*)\])?$")


def device_file_count(file: str) -> int:
    """How many device files a gres.conf `File=` names: `/dev/nvidia0` 1, `/dev/nvidia[0-3]` 4,
    `/dev/dri/renderD[128,130-131]` 3. ValueError if it is not a /dev path with such a suffix."""
    match = _DEVICE_FILES.match(file) if isinstance(file, str) else None
    if not match or ".." in file:
        raise ValueError(f"bad device files {file!r}: give a /dev path, optionally with a range such as [0-3]")
    count = 0
    for part in (match.group(3) or "0").split(","):
        low, _, high = part.partition("-")
        if high and int(high) < int(low):
            raise ValueError(f"bad device files {file!r}: the range {part} runs backwards")
        count += int(high or low) - int(low) + 1
    return count


@dataclass(frozen=True)
class Gpus:
    """Each distributed node pod's GPUs (config node.gpus): Slurm's `gpu` GRES (slurm.schedmd.com/gres.html).

    - `count` (>= 1): the pod's request and limit of `resource`, and the `Gres=` (`gres`) its dynamic node registers
      with (`slurmd -Z --conf "... Gres=gpu:2"`, dynamic_nodes.html).
    - `resource`: the Kubernetes extended resource a device plugin serves, e.g. `nvidia.com/gpu`.
    - `type`: Slurm's GRES type (GRES_TYPE), which jobs may ask for (`--gres=gpu:a100:1`); with AutoDetect it must
      equal or be part of the model name slurmd detects (gres.html: `slurmd -C`, spaces made underscores).
    - `file`: gres.conf `File=`, the device files each pod gets, `count` of them (device_file_count()). None: gres.conf
      is `AutoDetect=nvidia`, which needs an `nvidia.com/` resource.

    What is rendered follows SchedMD's Slinky slurm-operator (docs/installation.md "With GPUs"): GresTypes=gpu in
    slurm.conf, a gres.conf of `AutoDetect=nvidia` that slurmctld serves configless, pods limited to `nvidia.com/gpu`
    registering `Gres=gpu:<type>:<count>`. AutoDetect=nvidia (Slurm 24.11+, gres.conf(5); no NVML library, no MIG)
    reads /proc/driver/nvidia/gpus, where the NVIDIA container runtime mounts only the pod's own GPUs
    (libnvidia-container nvc_mount.c), numbered as on their host: no File= line could be written ahead.
    """
    count: int
    resource: str = DEFAULT_GPU_RESOURCE
    type: Optional[str] = None
    file: Optional[str] = None

    @property
    def gres(self) -> str:
        """slurm.conf's Gres= of one node: `gpu[:type]:count`."""
        return ":".join(("gpu", *((self.type,) if self.type else ()), str(self.count)))


@dataclass(frozen=True)
class Distributed:
    """What slurm.conf needs of the distributed deployment (components/distributed.py)."""
    accounting_addr: str  # slurmdbd's Service DNS name (AccountingStorageHost)
    nodeset: str = "nodes"  # the NodeSet and Feature its node pods register with (`slurmd -Z --conf Feature=`)
    gpus: Optional[Gpus] = None  # each node pod's GPUs: GresTypes=gpu and gres.conf

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")  # ClusterName; also a MariaDB table-name prefix
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_SHORT_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_NODE_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,20}$")
# slurmdbd.conf has no quoting ('#' starts a comment, spaces split) and the image puts it into SQL.
_DB_PASSWORD = re.compile(r"^[A-Za-z0-9_.,:+=@%^~/-]{8,128}$")


def version_facts(slurm_version: str) -> SlurmVersion:
    """The facts of one supported version, or ValueError naming the supported ones."""
    try:
        return VERSIONS[str(slurm_version)]
    except KeyError:
        raise ValueError(f"unknown Slurm version {slurm_version!r}: supported are "
                         f"{', '.join(VERSIONS)} (default {DEFAULT_SLURM_VERSION})") from None


def node_names(nodes: int = DEFAULT_NODES, node_prefix: str = "c") -> list[str]:
    """The slurmd NodeNames render_slurm_files() uses: c1, c2, ..."""
    return [f"{node_prefix}{i}" for i in range(1, nodes + 1)]


def slurmd_ports(nodes: int) -> list[int]:
    """One slurmd port per node: 6818, then 6821, 6822, ... (skipping slurmdbd's and slurmrestd's)."""
    ports, port = [], SLURMD_FIRST_PORT
    while len(ports) < nodes:
        if port not in _RESERVED_PORTS:
            ports.append(port)
        port += 1
    return ports


_PAIR = re.compile(r'([A-Za-z][A-Za-z0-9_]*)\s*=\s*("[^"]*"|\S*)')
# Lines whose first pair names a thing and whose further pairs describe it (slurm.conf(5)).
_DESCRIBED = {"nodename", "partitionname", "nodeset", "downnodes", "frontendname", "switchname"}


def parse_slurm_conf(text: str) -> dict[str, str]:
    """The parameters of a slurm.conf as {key in lowercase: value} (slurm.conf(5): keys are case-insensitive).

    Every `Key=Value` of a line counts (a line may hold several), its value up to white space (or in double
    quotes); `#` starts a comment. A line such as `NodeName=c1 CPUs=2` gives only `nodename` (its further pairs
    describe that node). A key given twice keeps its first value (for SlurmctldHost, the primary controller).
    `Include` lines are not followed.
    """
    params: dict[str, str] = {}
    for line in text.splitlines():
        pairs = _PAIR.findall(line.split("#", 1)[0])
        if pairs and pairs[0][0].lower() in _DESCRIBED:
            pairs = pairs[:1]
        for key, value in pairs:
            params.setdefault(key.lower(), value.strip('"'))
    return params


def render_slurm_files(
    cluster_name: str,
    slurm_version: str = DEFAULT_SLURM_VERSION,
    nodes: int = DEFAULT_NODES,
    controller_host: str = "slurm-controller",
    controller_addr: Optional[str] = None,
    *,
    db_password: str,
    cpus_per_node: int = DEFAULT_CPUS_PER_NODE,
    memory_mb_per_node: int = DEFAULT_MEMORY_MB_PER_NODE,
    partition: str = "debug",
    node_prefix: str = "c",
    throughput: bool = True,
    distributed: Optional[Distributed] = None,
    auth_type: str = AUTH_MUNGE,
) -> dict[str, str]:
    """Render the Slurm files of one cluster; returns {file name: contents}.

    - `cluster_name`: Slurm ClusterName (lowercase letter, then letters, digits, '_' or '-'; <= 40).
    - `slurm_version`: a key of VERSIONS ("22.05", "24.11", "26.05").
    - `nodes`: how many slurmd the single node runs (>= 1); NodeNames c1..cN, each with its own Port.
    - `controller_host`: the single-node container's hostname (slurmctld only starts on a host of that
      name; set the container's/pod's hostname to it). A short name, no dots.
    - `controller_addr`: the DNS name or IP by which clients AND the single node itself reach the
      controller (a Kubernetes Service name, a podman network alias); default `controller_host`. It is
      SlurmctldHost's address, every node's NodeAddr and AccountingStorageHost, so the same slurm.conf works
      inside the single node and in every client container or pod.
    - `cpus_per_node`, `memory_mb_per_node`: each node's CPUs= and RealMemory= (MB as Slurm counts them,
      i.e. MiB; >= MIN_MEMORY_MB_PER_NODE); jobs without --mem get memory_mb_per_node // cpus_per_node per CPU.
    - `db_password`: the MariaDB password of slurmdbd (8-128 of `A-Za-z0-9_.,:+=@%^~/-`). It appears only
      in slurmdbd.conf: put that file in a Kubernetes Secret (SECRET_FILES), the others in a ConfigMap.
    - `distributed`: the distributed deployment's facts (Distributed): no NodeName lines (its node pods register
      themselves, `slurmd -Z`: dynamic nodes, each named by its pod's hostname), configless (node pods fetch the files
      from slurmctld), and slurmdbd at its own address. `nodes` is then only MaxNodeCount's floor. With its `gpus`
      (Gpus): GresTypes=gpu and gres.conf (GRES_CONF), which the node pods fetch with slurm.conf: slurmctld serves
      gres.conf from its directory to configless slurmd (slurm.schedmd.com/configless_slurm.html, "Supported
      configuration files").
    - `throughput`: slurm.conf's settings for many short jobs (THROUGHPUT_KEYS: a no-op Epilog and
      SchedulerParameters, README "Job throughput"); False leaves them at Slurm's defaults, for comparisons
      (scripts/bench).
    - `auth_type`: AuthType of slurm.conf and slurmdbd.conf (AUTH_TYPES); AUTH_SLURM (Slurm 25.05+:
      auth_slurm_supported) also sets CredType=cred/slurm, so one slurm.key signs both.

    Returns slurm.conf, cgroup.conf, slurmdbd.conf and slurm-image.env (the version facts the images read
    at start: slurmrestd plugins, REST API version, MariaDB socket), and gres.conf with `distributed.gpus`. Raises
    ValueError on bad input.
    """
    facts = version_facts(slurm_version)
    if not isinstance(cluster_name, str) or not _NAME.match(cluster_name):
        raise ValueError(f"bad cluster_name {cluster_name!r}: use a lowercase letter followed by up to 39 "
                         "lowercase letters, digits, '_' or '-'")
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= 64:
        raise ValueError(f"bad nodes {nodes!r}: give a whole number from 1 to 64")
    if not isinstance(controller_host, str) or not _SHORT_HOST.match(controller_host):
        raise ValueError(f"bad controller_host {controller_host!r}: give a short hostname (letters, digits, "
                         "'-', no dots), the single-node container's hostname")
    controller_addr = controller_host if controller_addr is None else controller_addr
    if not isinstance(controller_addr, str) or not _HOST.match(controller_addr):
        raise ValueError(f"bad controller_addr {controller_addr!r}: give a DNS name or IPv4 address")
    if not isinstance(db_password, str) or not _DB_PASSWORD.match(db_password):
        raise ValueError("bad db_password: use 8-128 characters of A-Z a-z 0-9 _ . , : + = @ % ^ ~ / - "
                         "(slurmdbd.conf cannot quote others)")
    for name, value, low in (("cpus_per_node", cpus_per_node, 1),
                             ("memory_mb_per_node", memory_mb_per_node, MIN_MEMORY_MB_PER_NODE)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"bad {name} {value!r}: give a whole number >= {low}")
    if auth_type not in AUTH_TYPES:
        raise ValueError(f"bad auth_type {auth_type!r}: give one of {', '.join(AUTH_TYPES)}")
    if auth_type == AUTH_SLURM and not auth_slurm_supported(facts.version):
        raise ValueError(f"Slurm {facts.version} does not run {AUTH_SLURM} here: use 26.05")
    if not isinstance(partition, str) or not _NAME.match(partition):
        raise ValueError(f"bad partition {partition!r}: use lowercase letters, digits, '_' or '-'")
    if not isinstance(node_prefix, str) or not _NODE_PREFIX.match(node_prefix):
        raise ValueError(f"bad node_prefix {node_prefix!r}: use a lowercase letter, then letters, digits, '-'")

    if distributed is not None:
        if not facts.dynamic_nodes:
            raise ValueError(f"Slurm {facts.version} cannot run the distributed deployment: {DYNAMIC_NODES_MISSING}")
        if not isinstance(distributed.accounting_addr, str) or not _HOST.match(distributed.accounting_addr):
            raise ValueError(f"bad accounting_addr {distributed.accounting_addr!r}: give a DNS name or IPv4 address")
        if not isinstance(distributed.nodeset, str) or not _NAME.match(distributed.nodeset):
            raise ValueError(f"bad nodeset {distributed.nodeset!r}: use lowercase letters, digits, '_' or '-'")
        if distributed.gpus is not None:
            _check_gpus(distributed.gpus)

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(CONFIG_DIR), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    context = dict(
        facts=facts, cluster_name=cluster_name, controller_host=controller_host,
        controller_addr=controller_addr, db_password=db_password, partition=partition,
        cpus=cpus_per_node, memory_mb=memory_mb_per_node, def_mem_per_cpu=memory_mb_per_node // cpus_per_node,
        nodes=list(zip(node_names(nodes, node_prefix), slurmd_ports(nodes), strict=True)),
        slurm_conf_dir=SLURM_CONF_DIR, jwt_key=JWT_KEY_PATH, state_dir=STATE_DIR, log_dir=LOG_DIR,
        run_dir=RUN_DIR, slurmctld_port=SLURMCTLD_PORT, slurmdbd_port=SLURMDBD_PORT,
        slurmrestd_port=SLURMRESTD_PORT, mariadb_port=MARIADB_PORT, token_lifetime=TOKEN_LIFETIME_S,
        throughput=bool(throughput), distributed=distributed, slurmd_port=SLURMD_FIRST_PORT,
        max_node_count=MAX_NODES, auth_type=auth_type, auth_slurm=auth_type == AUTH_SLURM,
        mem_spec_mb=DISTRIBUTED_MEM_SPEC_MB,
        def_mem_per_cpu_distributed=max(1, (memory_mb_per_node - DISTRIBUTED_MEM_SPEC_MB) // cpus_per_node),
    )
    gres = (GRES_CONF,) if distributed is not None and distributed.gpus is not None else ()
    return {name: env.get_template(name + ".j2").render(context)
            for name in ("slurm.conf", "cgroup.conf", "slurmdbd.conf", "slurm-image.env", *gres)}


def _check_gpus(gpus: Gpus) -> None:
    if isinstance(gpus.count, bool) or not isinstance(gpus.count, int) or gpus.count < 1:
        raise ValueError(f"bad GPU count {gpus.count!r}: give a whole number >= 1")
    if gpus.type is not None and not (isinstance(gpus.type, str) and _GRES_TYPE.match(gpus.type)):
        raise ValueError(f"bad GRES type {gpus.type!r}: use letters, digits, '_', '.', '-'")
    if gpus.file is None:
        if gpus.resource != DEFAULT_GPU_RESOURCE:
            raise ValueError(f"GPUs of {gpus.resource!r} need their device files: AutoDetect=nvidia finds whole "
                             f"NVIDIA GPUs ({DEFAULT_GPU_RESOURCE}), not MIG slices or shared GPUs")
    elif device_file_count(gpus.file) != gpus.count:
        raise ValueError(f"{gpus.file!r} names {device_file_count(gpus.file)} device files, not the {gpus.count} GPUs")
