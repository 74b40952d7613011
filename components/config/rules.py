"""The rules between keys of the stack configuration, checked by parse() once every key has passed its own check
(in the table, components/config/table.py): keys that need, exclude or must fit each other. Each refusal names the
key to change, the problem and the fix, as a key's own check does."""

from __future__ import annotations

from components import directory, site
from components.config import schema
from components.config.schema import ensure
from components.config.table import DAEMONS_CPU_MILLI, DAEMONS_MEMORY_MIB, StackConfig
from components.errors import ConfigError
from components.slurm_files import (
    AUTH_MUNGE,
    AUTH_SLURM,
    AUTH_SLURM_SINCE,
    DEFAULT_GPU_RESOURCE,
    DISTRIBUTED_MEM_SPEC_MB,
    DYNAMIC_NODES_MISSING,
    MIN_MEMORY_MB_PER_NODE,
    VERSIONS,
    auth_slurm_supported,
    device_file_count,
)

# The Slurm release auth/slurm runs from ("25.05"), and this project's versions that run it.
AUTH_SLURM_FROM = ".".join(f"{n:02d}" for n in AUTH_SLURM_SINCE)
AUTH_SLURM_VERSIONS = tuple(v for v in VERSIONS if auth_slurm_supported(v))


def how_to_set(dotted: str) -> str:
    return schema.how_to_set(StackConfig, dotted)


def check_rules(cfg: StackConfig) -> None:
    """Rules between keys (each key's own check is in the table)."""
    if cfg.images.password is not None:
        ensure(cfg.images.username, "images.username", "is missing while images.password is set",
               how_to_set("images.username"))
    ensure(not (cfg.kubernetes.kubeconfig and cfg.kubernetes.render_dir), "kubernetes.renderDir",
           "is set together with kubernetes.kubeconfig, but a rendering stack talks to no cluster",
           "remove one of them")
    components = cfg.components
    if components.jupyterhub:
        ensure(components.token_service, "components.tokenService", "is false while components.jupyterhub is true, "
               "but the hub's users get their Slurm tokens from it", "set components.tokenService to true")
        ensure(cfg.jupyterhub.chart_version, "jupyterhub.chartVersion", "is missing while components.jupyterhub "
               "is true", f"pin the chart: {how_to_set('jupyterhub.chartVersion')}")
    if cfg.existing_cluster:
        ensure(not components.single_node, "components.singleNode",
               "is true but existingCluster is set: the stack would deploy a second Slurm",
               "set components.singleNode to false, or remove existingCluster")
        _check_site_auth(cfg)
        ensure(cfg.auth_type in (AUTH_MUNGE, cfg.site.auth_type), "authType", f"is {cfg.auth_type}, but the "
               f"existing cluster's AuthType is {cfg.site.auth_type}", "remove it: the cluster's slurm.conf decides")
        if components.token_service:
            ensure(cfg.jwt_key is not None, "jwtKey", "is missing but the token service signs JupyterHub users' "
                   "Slurm tokens with the existing cluster's JWT key", how_to_set("jwtKey"))
        jwt_clients = tuple(name for name, on in (("slurmrestd", components.restd),
                                                  ("JupyterHub's users", components.jupyterhub)) if on)
        configless = cfg.existing_cluster.configless
        if configless and components.restd:
            ensure(VERSIONS[cfg.slurm_version].sackd, "existingCluster.configless", f"is true, but slurmrestd of "
                   f"Slurm {cfg.slurm_version} cannot run configless (it fetches the files through sackd, Slurm "
                   "23.11+)", "copy slurm.conf (configless false), or set components.restd to false")
        found = site.problems(cfg.site, jwt_clients=jwt_clients, configless=configless)
        ensure(not found, "existingCluster.slurmConf", "; ".join(found),
               "fix the cluster's slurm.conf (and copy it again), or change what the stack deploys")
    else:
        ensure(cfg.jwt_key is None, "jwtKey", "is set without existingCluster, whose key it would be",
               "remove it (the stack makes its own Slurm's key)")
        ensure(cfg.slurm_key is None, "slurmKey", "is set without existingCluster, whose key it would be (the stack "
               "makes its own Slurm's keys)", f"remove it (authType {AUTH_SLURM} has the stack make a slurm.key)")
        ensure(cfg.auth_type != AUTH_SLURM or cfg.munge_key is None, "mungeKey", f"is set but authType is "
               f"{AUTH_SLURM}, which uses no munge key", "remove it (the stack makes a slurm.key)")
        ensure(cfg.auth_type != AUTH_SLURM or auth_slurm_supported(cfg.slurm_version), "authType",
               f"is {AUTH_SLURM}, which this project runs from Slurm {AUTH_SLURM_FROM} on, but slurmVersion is "
               f"{cfg.slurm_version}",
               f"set slurmVersion to {' or '.join(AUTH_SLURM_VERSIONS)}, or authType to {AUTH_MUNGE}")
        if not (components.single_node or components.distributed) and (components.restd or components.jupyter or components.jupyterhub):
            raise ConfigError("components.singleNode", "is false and no existingCluster is set, so the clients have "
                              "no Slurm to talk to", "set components.singleNode to true, or set existingCluster.slurmConf")
    if components.distributed:
        _check_distributed(cfg)
    if cfg.node.gpus:
        _check_gpus(cfg)
    _check_nodes_fit(cfg)
    _check_directory(cfg)
    _check_metrics(cfg)
    if cfg.kubernetes.render_dir:
        ensure(not components.jupyterhub, "components.jupyterhub",
               "is true but kubernetes.renderDir is set: a Helm release needs a live cluster",
               "set components.jupyterhub to false for a render-only stack")


def _check_site_auth(cfg: StackConfig) -> None:
    """The existing cluster's key, of the kind its AuthType takes: munge's (mungeKey) or, for auth/slurm, its
    slurm.key (slurmKey), which the clients' sackd needs (Slurm 25.05+ here)."""
    auth_type = cfg.site.auth_type
    if auth_type == AUTH_SLURM:
        ensure(auth_slurm_supported(cfg.slurm_version), "slurmVersion", f"is {cfg.slurm_version}, but the "
               f"existing cluster's AuthType is {AUTH_SLURM}, which this project's clients use from Slurm "
               f"{AUTH_SLURM_FROM} on",
               f"set slurmVersion to the cluster's release ({', '.join(AUTH_SLURM_VERSIONS)})")
        ensure(cfg.slurm_key is not None, "slurmKey", f"is missing but the existing cluster's AuthType is "
               f"{AUTH_SLURM}, so the clients need its slurm.key", how_to_set("slurmKey"))
        ensure(cfg.munge_key is None, "mungeKey", f"is set but the existing cluster's AuthType is {AUTH_SLURM}, which "
               "uses no munge key", "remove it (the clients use slurmKey)")
    else:
        ensure(cfg.munge_key is not None, "mungeKey", "is missing but existingCluster needs the cluster's munge key",
               how_to_set("mungeKey"))
        ensure(cfg.slurm_key is None, "slurmKey", f"is set but the existing cluster's AuthType is {auth_type}, not "
               f"{AUTH_SLURM}", "remove it, or set the cluster's munge key as mungeKey")


def _check_ldap(cfg: StackConfig) -> None:
    """`ldap` replaces `users` and `groups`: one source of names and ids, so that no uid is given by two sources that
    preview cannot compare (the directory is read only by the pods). TLS needs the CA, and only TLS uses it."""
    ldap = cfg.ldap
    ensure(not cfg.users, "users", "is set together with ldap, but the directory is then the one source of users",
           "remove users and groups (add them to the directory), or remove ldap")
    ensure(not cfg.groups, "groups", "is set together with ldap, but the directory is then the one source of groups",
           "remove users and groups (add them to the directory), or remove ldap")
    ldaps = ldap.uri.split()[0].startswith("ldaps://")
    ensure(not (ldaps and ldap.start_tls), "ldap.startTls", "is true but ldap.uri is ldaps://, which is TLS already",
           "remove ldap.startTls, or use ldap:// with it")
    if ldap.settings.tls:
        ensure(ldap.ca_file, "ldap.caFile", "is missing but the directory is reached over TLS, whose server "
               "certificate is checked against the site's CA", how_to_set("ldap.caFile"))
    else:
        ensure(not ldap.ca_file, "ldap.caFile", "is set but ldap.uri is ldap:// without ldap.startTls, so no TLS "
               "would use it", "use ldaps://, or set ldap.startTls to true, or remove ldap.caFile")
    ensure(not (ldap.bind_dn and ldap.bind_password is None), "ldap.bindPassword", "is missing while ldap.bindDn "
           "is set", how_to_set("ldap.bindPassword"))
    ensure(not (ldap.bind_password is not None and not ldap.bind_dn), "ldap.bindDn", "is missing while "
           "ldap.bindPassword is set", how_to_set("ldap.bindDn"))
    if cfg.components.jupyter:
        ensure(cfg.jupyter.user, "jupyter.user", "is missing, but with ldap there is no first user of `users` to run "
               "JupyterLab as", how_to_set("jupyter.user"))


def _check_directory(cfg: StackConfig) -> None:
    components = cfg.components
    if cfg.ldap:
        _check_ldap(cfg)
    elif (components.jupyter or components.jupyterhub or components.token_service) and not cfg.users:
        raise ConfigError("users", "is empty, but JupyterLab and JupyterHub run only as users of the directory",
                          "pulumi config set --path 'users[0].name' alice && "
                          "pulumi config set --path 'users[0].uid' 2001")
    problems = directory.problems(cfg.directory, cfg.groups)
    ensure(not problems, "users", "; ".join(problems), "give each user and group its own name and id")
    if components.jupyter and not cfg.ldap:
        ensure(cfg.jupyter_user in {u.name for u in cfg.users}, "jupyter.user",
               f"'{cfg.jupyter_user}' is not in `users`", "name a user of the directory")
    home = cfg.home
    ensure(not (home.claim and home.volume), "home.volume", "is set together with home.claim, but the stack "
           "makes no claim when it is given one", "remove one of them")
    ensure(not (home.volume and home.class_name), "home.className", "is set together with home.volume, but a claim "
           "bound to a given volume has no class", "remove one of them")
    if cfg.existing_cluster:
        ensure(home.claim or home.volume, "home.claim", "is missing but existingCluster needs the site's shared home "
               "(the Slurm nodes must see the files Jupyter users write)",
               f"{how_to_set('home.claim')}, or name the site's PersistentVolume: {how_to_set('home.volume')}")


def _check_distributed(cfg: StackConfig) -> None:
    """The distributed deployment is the stack's one Slurm, on a version whose dynamic nodes it uses, with room in each
    node pod for Slurm's own daemons."""
    ensure(not cfg.components.single_node, "components.singleNode", "is true while components.distributed is true: "
           "the stack would deploy two Slurm clusters", "set components.singleNode to false")
    ensure(not cfg.existing_cluster, "components.distributed", "is true but existingCluster is set: the stack would "
           "deploy a second Slurm", "set components.distributed to false, or remove existingCluster")
    facts = VERSIONS[cfg.slurm_version]
    ensure(facts.dynamic_nodes, "slurmVersion", f"is {cfg.slurm_version} while components.distributed is true, but "
           f"Slurm {cfg.slurm_version} cannot run it: {DYNAMIC_NODES_MISSING}", "set slurmVersion to 24.11 or 26.05")
    need = MIN_MEMORY_MB_PER_NODE + DISTRIBUTED_MEM_SPEC_MB
    ensure(cfg.node.memory_mb >= need, "node.memoryMb", f"is {cfg.node.memory_mb} but a distributed node pod needs "
           f"at least {need} ({MIN_MEMORY_MB_PER_NODE} for jobs and the {DISTRIBUTED_MEM_SPEC_MB} Slurm keeps for its "
           "daemons)", f"raise node.memoryMb to {need} or more")
    request = cfg.distributed.node_cpu_request
    ensure(request is None or request <= cfg.node.cpus * 1000, "distributed.nodeCpuRequest",
           f"is {request}m, more than the node pod's limit, node.cpus = {cfg.node.cpus}",
           f"lower it to at most {cfg.node.cpus * 1000}m, or raise node.cpus")


def _check_gpus(cfg: StackConfig) -> None:
    """node.gpus is the distributed node pods' alone (each its own pod, so a device plugin's GPUs go to one slurmd);
    slurmd finds NVIDIA's GPUs itself, another vendor's are named, as many as the pod gets."""
    gpus = cfg.node.gpus
    ensure(cfg.components.distributed, "node.gpus", "is set but components.distributed is false: only the distributed "
           "deployment's node pods request GPUs (the single node's slurmd share one pod)",
           "set components.distributed to true and components.singleNode to false, or remove node.gpus")
    if gpus.file is None:
        ensure(gpus.resource == DEFAULT_GPU_RESOURCE, "node.gpus.file", f"is missing but node.gpus.resource "
               f"is {gpus.resource}: slurmd finds only whole NVIDIA GPUs ({DEFAULT_GPU_RESOURCE}) itself (gres.conf "
               "AutoDetect=nvidia; not MIG slices or shared GPUs)",
               f"name the device files each node pod gets: {how_to_set('node.gpus.file')}")
    else:
        files = device_file_count(gpus.file)
        ensure(files == gpus.count, "node.gpus.file", f"names {files} device file(s) but node.gpus.count is "
               f"{gpus.count} (gres.conf counts a GPU per file)", "name exactly node.gpus.count files, e.g. "
               "/dev/dri/renderD[128-129] for 2")


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


def _check_metrics(cfg: StackConfig) -> None:
    metrics = cfg.metrics
    if not metrics.enabled:
        ensure(not metrics.prometheus_operator, "metrics.prometheusOperator", "is true while metrics.enabled is "
               "false", "set metrics.enabled to true, or remove metrics.prometheusOperator")
    ensure(metrics.prometheus_operator or not metrics.monitor_labels, "metrics.monitorLabels",
           "is set while metrics.prometheusOperator is false, but only the operator's objects carry them",
           "set metrics.prometheusOperator to true, or remove metrics.monitorLabels")
