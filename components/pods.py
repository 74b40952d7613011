"""The pod base every workload builds on, and the pieces they share: the mounts of the image contract, security
contexts, probes.

`pod_template()` and `container()` hold the pod and container defaults (as Slinky's slurm-operator builds each role's
pod from one base, internal/builder/common): a workload gives only what is its own, so a default is set here once
and no workload can drift from it. The paths are those of dockerfiles/README.md (the images' run-time contract);
the components only call these helpers, so a path or a mode is written here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import ldap
from components.directory import EXTRAUSERS_DIR, HOME_ROOT
from components.keys import JWT_KEY_FILE, MUNGE_KEY_FILE
from components.labels import labels

CONFIG_MOUNT = "/etc/slurm-config"  # rendered Slurm files (dockerfiles/README.md)
KEYS_MOUNT = "/etc/slurm-keys"  # munge.key (+ jwt_hs256.key on the single node)
KEY_MODE = 0o400  # root-owned key files; the notebooks' fsGroup 0 makes theirs 0440 root:root (jupyterhub.py)
CONFIG_MODE = 0o644
CLUSTER_DOMAIN = "cluster.local"  # the kubelet's default --cluster-domain

# The images start as root on purpose (munged runs as `munge`, MariaDB as `mysql`, slurmctld as `slurm`,
# slurmrestd and JupyterLab as unprivileged users: the entrypoints switch users themselves). Everything else
# of root is dropped: these are what switching users, installing keys with their owners and signalling
# children of other users need (a subset of the container runtimes' default set, which the images were
# tested with).
ROOT_START_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID")


def pod_template(app: str, component: str, *, containers: Sequence[k8s.core.v1.ContainerArgs],
                 volumes: Sequence[k8s.core.v1.VolumeArgs], image_pull_secret: Optional[pulumi.Input[str]],
                 fs_group: Optional[int] = None, extra_labels: Optional[Mapping[str, str]] = None,
                 annotations: Optional[Mapping[str, str]] = None, **spec: Any) -> k8s.core.v1.PodTemplateSpecArgs:
    """A workload's pod: the app's labels (and `extra_labels`), no service account token, no Service environment
    variables, the registry pull Secret (components.registry.pull_secret(), if any), the pod security context
    (`fs_group`: pod_security_context()), the pod's `annotations` if any; `spec`: the workload's own PodSpec fields
    (a restart policy, a grace period), over these."""
    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(labels={**labels(app, component), **(extra_labels or {})},
                                            annotations=dict(annotations) if annotations else None),
        spec=k8s.core.v1.PodSpecArgs(**{
            "automount_service_account_token": False,
            "enable_service_links": False,
            "image_pull_secrets": pull_secrets(image_pull_secret),
            "security_context": pod_security_context(fs_group),
            "containers": list(containers),
            "volumes": list(volumes),
            **spec}))


def container(name: str, image: pulumi.Input[str], *, run_as: Optional[int] = None,
              capabilities: Sequence[str] = ROOT_START_CAPABILITIES, **fields: Any) -> k8s.core.v1.ContainerArgs:
    """A workload's container: its image (by digest) pulled only if not present; a container that fails says why in
    the pod's status, and so in `pulumi up`'s wait (FallbackToLogsOnError: its log's tail when it wrote no
    termination message); the security context of how it starts (`run_as`: a non-root uid from the start,
    non_root_security_context(); None: as root, keeping `capabilities`, root_start_security_context()). `fields`:
    the container's own (ports, probes, mounts, resources ...), over these."""
    return k8s.core.v1.ContainerArgs(**{
        "name": name,
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "termination_message_policy": "FallbackToLogsOnError",
        "security_context": (root_start_security_context(capabilities) if run_as is None
                             else non_root_security_context(run_as)),
        **fields})


def config_volume(config_map_name: pulumi.Input[str], secret_name: Optional[pulumi.Input[str]] = None,
                  secret_files: Sequence[str] = ()) -> k8s.core.v1.VolumeArgs:
    """/etc/slurm-config: the ConfigMap's files, plus `secret_files` of `secret_name` (mode 0400)."""
    sources = [k8s.core.v1.VolumeProjectionArgs(config_map=k8s.core.v1.ConfigMapProjectionArgs(name=config_map_name))]
    if secret_name is not None and secret_files:
        sources.append(k8s.core.v1.VolumeProjectionArgs(secret=k8s.core.v1.SecretProjectionArgs(
            name=secret_name,
            items=[k8s.core.v1.KeyToPathArgs(key=f, path=f, mode=KEY_MODE) for f in secret_files])))
    return k8s.core.v1.VolumeArgs(
        name="slurm-config",
        projected=k8s.core.v1.ProjectedVolumeSourceArgs(sources=sources, default_mode=CONFIG_MODE))


def keys_volume(munge_secret_name: Optional[pulumi.Input[str]],
                jwt_secret_name: Optional[pulumi.Input[str]] = None,
                key_file: str = MUNGE_KEY_FILE) -> k8s.core.v1.VolumeArgs:
    """/etc/slurm-keys: munge.key (or `key_file`: an auth/slurm site's slurm.key) and/or jwt_hs256.key from
    SlurmKeys' Secrets, each file mode 0400."""
    sources = [_key_source(secret, file) for secret, file in ((munge_secret_name, key_file),
                                                                (jwt_secret_name, JWT_KEY_FILE)) if secret is not None]
    return k8s.core.v1.VolumeArgs(
        name="slurm-keys",
        projected=k8s.core.v1.ProjectedVolumeSourceArgs(sources=sources, default_mode=KEY_MODE))


def _key_source(secret_name: pulumi.Input[str], file: str) -> k8s.core.v1.VolumeProjectionArgs:
    return k8s.core.v1.VolumeProjectionArgs(secret=k8s.core.v1.SecretProjectionArgs(
        name=secret_name, items=[k8s.core.v1.KeyToPathArgs(key=file, path=file, mode=KEY_MODE)]))


def directory_volume(config_map_name: pulumi.Input[str],
                     ldap_secret_name: Optional[pulumi.Input[str]] = None) -> k8s.core.v1.VolumeArgs:
    """The user directory's passwd and group (components/directory.py), read by the images' libnss-extrausers; with
    `ldap_secret_name` (config `ldap`) also that Secret's nslcd.conf (root's alone: it holds the bind password) and
    the site's CA, with which the image entrypoints that start as root run nslcd (components/ldap.py)."""
    if ldap_secret_name is None:
        return k8s.core.v1.VolumeArgs(name="users", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
            name=config_map_name, default_mode=CONFIG_MODE))
    return k8s.core.v1.VolumeArgs(name="users", projected=k8s.core.v1.ProjectedVolumeSourceArgs(
        default_mode=CONFIG_MODE,
        sources=[k8s.core.v1.VolumeProjectionArgs(config_map=k8s.core.v1.ConfigMapProjectionArgs(name=config_map_name)),
                 k8s.core.v1.VolumeProjectionArgs(secret=k8s.core.v1.SecretProjectionArgs(
                     name=ldap_secret_name,
                     items=[k8s.core.v1.KeyToPathArgs(key=ldap.NSLCD_CONF_FILE, path=ldap.NSLCD_CONF_FILE, mode=KEY_MODE),
                            k8s.core.v1.KeyToPathArgs(key=ldap.CA_FILE, path=ldap.CA_FILE, mode=CONFIG_MODE)]))]))


NSLCD_SOCKET_DIR = "/run/nslcd"  # libnss-ldapd's socket directory (compiled in)
NSLCD_VOLUME, NSLCD_SOCKET_VOLUME = "users-ldap", "nslcd"  # the sidecar's directory volume, the shared socket's
NSLCD_STARTUP_S = 30  # a native sidecar's nslcd must listen within this, or the kubelet restarts it


@dataclass(frozen=True)
class NslcdSidecar:
    """What a pod whose own containers run as users needs to resolve the site's directory (config `ldap`)."""
    volumes: list[k8s.core.v1.VolumeArgs]  # the directory with the Secret (nslcd's alone) and the socket's emptyDir
    mount: k8s.core.v1.VolumeMountArgs  # for the pod's other containers: the socket directory, nothing else
    container: k8s.core.v1.ContainerArgs  # among the containers, or (native) the init containers


def nslcd_sidecar(image: pulumi.Input[str], directory_config_map: pulumi.Input[str],
                  directory_secret: pulumi.Input[str], *, native: bool = False) -> NslcdSidecar:
    """nslcd for a pod whose own containers run as users (config `ldap`): slurm-client's `nslcd` command, started as
    root (it drops to its user), the only container given the directory volume with the site's Secret (nslcd.conf
    with the bind password; directory_volume()); an emptyDir at NSLCD_SOCKET_DIR, which the other containers mount
    (`mount`) to resolve the directory through its socket. `native`: a Kubernetes native sidecar (an init container
    with restartPolicy Always, Kubernetes 1.29+) whose startup probe passes once nslcd listens, so the pod's
    containers start only then: for an entrypoint that resolves its user at start (JupyterLab's). Otherwise a
    container beside the others, for a service that asks at each request (the token service's)."""
    socket = f"{NSLCD_SOCKET_DIR}/socket"
    listens = ["test", "-S", socket]
    directory = directory_volume(directory_config_map, directory_secret)
    container_fields = dict(
        args=["nslcd"],
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name=NSLCD_VOLUME, mount_path=EXTRAUSERS_DIR, read_only=True),
                       k8s.core.v1.VolumeMountArgs(name=NSLCD_SOCKET_VOLUME, mount_path=NSLCD_SOCKET_DIR)],
        readiness_probe=exec_probe(listens, period=10, timeout=2),
        resources=resources("10m", "16Mi", "100m", "64Mi"))
    if native:
        container_fields.update(restart_policy="Always",
                                startup_probe=exec_probe(listens, period=1, timeout=2, failures=NSLCD_STARTUP_S))
    return NslcdSidecar(
        volumes=[k8s.core.v1.VolumeArgs(name=NSLCD_VOLUME, projected=directory.projected),
                 k8s.core.v1.VolumeArgs(name=NSLCD_SOCKET_VOLUME, empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs())],
        mount=k8s.core.v1.VolumeMountArgs(name=NSLCD_SOCKET_VOLUME, mount_path=NSLCD_SOCKET_DIR),
        container=container("nslcd", image, **container_fields))


def home_volume(claim_name: pulumi.Input[str]) -> k8s.core.v1.VolumeArgs:
    """The shared home claim (ReadWriteMany): /home/<user> of every directory user."""
    return k8s.core.v1.VolumeArgs(
        name="home", persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=claim_name))


def directory_mounts(home: bool) -> list[k8s.core.v1.VolumeMountArgs]:
    """Mounts of directory_volume() (and of home_volume() if `home`)."""
    mounts = [k8s.core.v1.VolumeMountArgs(name="users", mount_path=EXTRAUSERS_DIR, read_only=True)]
    if home:
        mounts.append(k8s.core.v1.VolumeMountArgs(name="home", mount_path=HOME_ROOT))
    return mounts


def pull_secrets(secret_name: Optional[pulumi.Input[str]]) -> Optional[list[k8s.core.v1.LocalObjectReferenceArgs]]:
    """A pod's imagePullSecrets: the registry Secret of SlurmImages, if it made one."""
    return None if secret_name is None else [k8s.core.v1.LocalObjectReferenceArgs(name=secret_name)]


def env(values: Mapping[str, str]) -> list[k8s.core.v1.EnvVarArgs]:
    """A container's environment variables from {name: value}."""
    return [k8s.core.v1.EnvVarArgs(name=name, value=value) for name, value in values.items()]


def slurm_mounts() -> list[k8s.core.v1.VolumeMountArgs]:
    return [
        k8s.core.v1.VolumeMountArgs(name="slurm-config", mount_path=CONFIG_MOUNT, read_only=True),
        k8s.core.v1.VolumeMountArgs(name="slurm-keys", mount_path=KEYS_MOUNT, read_only=True),
    ]


def root_start_security_context(capabilities: Sequence[str] = ROOT_START_CAPABILITIES
                                ) -> k8s.core.v1.SecurityContextArgs:
    """For the images whose entrypoint starts as root and drops to other users itself; `capabilities`: what it keeps
    of root's (all others are dropped)."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_user=0,
        run_as_non_root=False,
        allow_privilege_escalation=False,
        privileged=False,
        read_only_root_filesystem=False,  # entrypoints install files into /etc/slurm, /etc/munge, /run
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"], add=list(capabilities)),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
    )


def non_root_security_context(uid: int) -> k8s.core.v1.SecurityContextArgs:
    """For a container that runs as `uid` from the start and needs no privilege at all."""
    return k8s.core.v1.SecurityContextArgs(
        run_as_user=uid, run_as_group=uid, run_as_non_root=True, allow_privilege_escalation=False,
        privileged=False, read_only_root_filesystem=True, capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))


def pod_security_context(fs_group: Optional[int] = None) -> k8s.core.v1.PodSecurityContextArgs:
    """No fsGroup for pods that start as root: it would make the kubelet give the keys group-read (the notebook
    entrypoint refuses that). `fs_group`: the group a non-root pod reads its Secrets as (files 0440)."""
    return k8s.core.v1.PodSecurityContextArgs(fs_group=fs_group,
                                              seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))


def exec_probe(command: Sequence[str], *, period: int = 10, timeout: int = 10, failures: int = 3,
               initial_delay: int = 0) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(exec_=k8s.core.v1.ExecActionArgs(command=list(command)),
                                 period_seconds=period, timeout_seconds=timeout, failure_threshold=failures,
                                 initial_delay_seconds=initial_delay)


def tcp_probe(port: int, *, period: int = 10, timeout: int = 3, failures: int = 3,
              initial_delay: int = 0) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=port),
                                 period_seconds=period, timeout_seconds=timeout, failure_threshold=failures,
                                 initial_delay_seconds=initial_delay)


def http_probe(path: str, port: int, *, period: int = 10, timeout: int = 3, failures: int = 3,
               initial_delay: int = 0) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port=port),
                                 period_seconds=period, timeout_seconds=timeout, failure_threshold=failures,
                                 initial_delay_seconds=initial_delay)


def resources(cpu_request: str, memory_request: str, cpu_limit: str, memory_limit: str
              ) -> k8s.core.v1.ResourceRequirementsArgs:
    return k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": cpu_request, "memory": memory_request},
                                                limits={"cpu": cpu_limit, "memory": memory_limit})


def service_host(name: pulumi.Input[str], namespace: pulumi.Input[str]) -> pulumi.Input[str]:
    """A Service's in-cluster DNS name, `NAME.NAMESPACE.svc.cluster.local`: plain text if both are, else an Output."""
    if isinstance(name, str) and isinstance(namespace, str):
        return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"
    return pulumi.Output.concat(name, ".", namespace, ".svc.", CLUSTER_DOMAIN)


def service_url(name: pulumi.Input[str], namespace: pulumi.Input[str], port: Optional[int] = None,
                path: str = "") -> pulumi.Output[str]:
    """The in-cluster URL of a Service: `http://HOST[:PORT]PATH` (no port: 80)."""
    return pulumi.Output.concat("http://", service_host(name, namespace), "" if port is None else f":{port}", path)
