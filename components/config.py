"""The stack configuration: every key, its type, default, meaning and check, in one place.

`parse()` is pure (a dict of raw config values in, a `StackConfig` out) so it is tested directly;
`load()` reads the running Pulumi stack's configuration and calls it. A bad value raises
`ConfigError`, whose message names the key, what is wrong and how to fix it; `pulumi preview`
prints it without a stack trace.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
import pulumi.runtime.config as runtime_config

from components.slurm_files import DEFAULT_SLURM_VERSION, VERSIONS

PROJECT = "slurm-cloud-integration"
COMPONENT_NAMES = ("singleNode", "restd", "jupyter", "jupyterhub")
MUNGE_KEY_MIN_BYTES = 32  # munged refuses shorter keys

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[a-z0-9._/-]+)?$")
_REPOSITORY = re.compile(r"^[a-z0-9]+([._/-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_SEMVER = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$")


class ConfigError(pulumi.RunError):
    """A stack configuration value is missing or wrong. The message says which, why and the fix."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key = key
        super().__init__(f"config key '{PROJECT}:{key}': {problem}. Fix: {fix}")


@dataclass(frozen=True)
class Images:
    registry: str  # host[:port][/path], e.g. ghcr.io/acme or 127.0.0.1:5000
    repository: str = "slurm-cloud-integration"
    tag: str = "latest"
    username: Optional[str] = None
    password: Optional[pulumi.Output[str]] = None  # secret

    def name(self, image: str) -> str:
        return f"{self.registry}/{self.repository}/{image}:{self.tag}"


@dataclass(frozen=True)
class Components:
    single_node: bool = True
    restd: bool = True
    jupyter: bool = True
    jupyterhub: bool = True


@dataclass(frozen=True)
class ExistingCluster:
    slurm_conf: str  # contents of the cluster's slurm.conf
    slurm_conf_path: str


@dataclass(frozen=True)
class Kubernetes:
    context: Optional[str] = None  # kubeconfig context; None = the current one
    kubeconfig: Optional[str] = None  # kubeconfig file; None = the default ($KUBECONFIG, ~/.kube/config)
    render_dir: Optional[str] = None  # render manifests here instead of applying them


@dataclass(frozen=True)
class JupyterHub:
    chart_version: str
    chart_repo: str = "https://hub.jupyter.org/helm-chart/"
    values: dict = field(default_factory=dict)  # the user's chart values (chart_values.read_user_values)
    values_secret: bool = False  # the `jupyterhub` key is a Pulumi secret: so are the chart values


@dataclass(frozen=True)
class StackConfig:
    cluster_name: str
    images: Images
    slurm_version: str = DEFAULT_SLURM_VERSION
    namespace: str = "slurm"
    nodes: int = 2
    components: Components = field(default_factory=Components)
    existing_cluster: Optional[ExistingCluster] = None
    munge_key: Optional[pulumi.Output[str]] = None  # base64, secret; None = generate one
    key_rotation: str = "1"
    kubernetes: Kubernetes = field(default_factory=Kubernetes)
    jupyterhub: Optional[JupyterHub] = None
    restd_allowed_clients: tuple[str, ...] = ("slurm-jupyter", "jupyterhub")
    storage_size: str = "10Gi"
    storage_class: Optional[str] = None

    @property
    def debian_suite(self) -> str:
        return VERSIONS[self.slurm_version].debian_suite


# key -> one-line meaning; `pulumi config` keys not listed here are rejected as typos.
KEYS = {
    "clusterName": "Slurm ClusterName and prefix of Kubernetes names (required)",
    "slurmVersion": f"Slurm version of the images: one of {', '.join(VERSIONS)} (default {DEFAULT_SLURM_VERSION})",
    "namespace": "Kubernetes namespace to deploy into (default slurm)",
    "nodes": "number of slurmd nodes in slurm-single-node (default 2)",
    "images": "object: registry (required), repository, tag, username, password (secret)",
    "components": f"object of booleans, which parts to deploy: {', '.join(COMPONENT_NAMES)}",
    "existingCluster": "object: slurmConf, path of an existing cluster's slurm.conf (deploys only clients)",
    "mungeKey": "secret: base64 munge key of an existing cluster (default: generated)",
    "keyRotation": "any string; changing it generates new munge and JWT keys",
    "kubernetes": "object: context, kubeconfig (file), renderDir (render YAML instead of applying)",
    "jupyterhub": "object: chartVersion (required if components.jupyterhub), chartRepo, values (chart values), "
                  "valuesFile (YAML file of chart values; values merge over it)",
    "restd": "object: allowedClients, app.kubernetes.io/name values admitted to slurmrestd",
    "storage": "object: size (default 10Gi), className",
}


def load(project_dir: str = ".") -> StackConfig:
    """Read and check the running stack's configuration."""
    prefix = f"{PROJECT}:"
    values = {k[len(prefix):]: v for k, v in _all_config().items() if k.startswith(prefix)}
    env_secrets = set(runtime_config.get_config_secret_keys_env())
    secret = {k for k in values if runtime_config.is_config_secret(prefix + k) or prefix + k in env_secrets}
    return parse(values, secret, project_dir)


def _all_config() -> dict[str, Any]:
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def parse(values: dict[str, Any], secret_keys: set[str] = frozenset(), project_dir: str = ".") -> StackConfig:
    """Check raw config values (strings, or JSON strings for objects) and build a StackConfig."""
    for key in values:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            fix = f"did you mean '{close[0]}'?" if close else f"remove it; known keys: {', '.join(KEYS)}"
            raise ConfigError(key, "unknown key", fix)

    cluster_name = _required(values, "clusterName", "pulumi config set clusterName mycluster")
    _check(_CLUSTER_NAME.match(cluster_name), "clusterName", f"'{cluster_name}' is not a valid name",
           "use 1-20 lowercase letters and digits starting with a letter (Slurm and Kubernetes both accept it)")

    slurm_version = str(values.get("slurmVersion", DEFAULT_SLURM_VERSION))
    _check(slurm_version in VERSIONS, "slurmVersion", f"'{slurm_version}' is not a supported Slurm version",
           f"use one of {', '.join(VERSIONS)}")

    namespace = str(values.get("namespace", "slurm"))
    _check(_DNS_LABEL.match(namespace), "namespace", f"'{namespace}' is not a valid Kubernetes namespace",
           "use lowercase letters, digits and '-', at most 63 characters")

    nodes = _int(values, "nodes", 2, 1, 64)
    images = _images(_object(values, "images", required=True), secret_keys)
    components = _components(_object(values, "components"))
    existing = _existing_cluster(_object(values, "existingCluster"), project_dir)
    munge_key = _munge_key(values, secret_keys)
    kubernetes = _kubernetes(_object(values, "kubernetes"))
    jupyterhub = _jupyterhub(_object(values, "jupyterhub"), components, "jupyterhub" in secret_keys, project_dir)
    restd = _object(values, "restd")
    _only(restd, "restd", ("allowedClients",))
    allowed = restd.get("allowedClients", list(StackConfig.restd_allowed_clients))
    _check(isinstance(allowed, list) and all(isinstance(a, str) and _DNS_LABEL.match(a) for a in allowed),
           "restd.allowedClients", f"{allowed!r} is not a list of app names",
           'give a list of app.kubernetes.io/name values, e.g. ["slurm-jupyter"]')
    storage = _object(values, "storage")
    _only(storage, "storage", ("size", "className"))
    storage_size = str(storage.get("size", "10Gi"))
    _check(_QUANTITY.match(storage_size), "storage.size", f"'{storage_size}' is not a Kubernetes quantity",
           "use a size such as 10Gi")

    if existing:
        _check(not components.single_node, "components.singleNode",
               "is true but existingCluster is set: the stack would deploy a second Slurm",
               "set components.singleNode to false, or remove existingCluster")
        _check(munge_key is not None, "mungeKey", "is missing but existingCluster needs the cluster's munge key",
               "pulumi config set --secret mungeKey \"$(base64 -w0 /etc/munge/munge.key)\"")
    elif not components.single_node and (components.restd or components.jupyter or components.jupyterhub):
        raise ConfigError("components.singleNode", "is false and no existingCluster is set, so the clients "
                          "have no Slurm to talk to", "set components.singleNode to true, or set existingCluster.slurmConf")
    if kubernetes.render_dir:
        _check(not components.jupyterhub, "components.jupyterhub",
               "is true but kubernetes.renderDir is set: a Helm release needs a live cluster",
               "set components.jupyterhub to false for a render-only stack")

    return StackConfig(
        cluster_name=cluster_name, images=images, slurm_version=slurm_version, namespace=namespace,
        nodes=nodes, components=components, existing_cluster=existing, munge_key=munge_key,
        key_rotation=str(values.get("keyRotation", "1")), kubernetes=kubernetes, jupyterhub=jupyterhub,
        restd_allowed_clients=tuple(allowed), storage_size=storage_size,
        storage_class=storage.get("className"),
    )


def _check(ok: Any, key: str, problem: str, fix: str) -> None:
    if not ok:
        raise ConfigError(key, problem, fix)


def _required(values: dict, key: str, fix: str) -> str:
    value = values.get(key)
    _check(value not in (None, ""), key, "is missing", fix)
    return str(value)


def _int(values: dict, key: str, default: int, low: int, high: int) -> int:
    raw = values.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(key, f"'{raw}' is not a whole number", f"use a number from {low} to {high}") from None
    _check(low <= value <= high, key, f"{value} is out of range", f"use a number from {low} to {high}")
    return value


def _object(values: dict, key: str, required: bool = False) -> dict:
    raw = values.get(key)
    if raw is None:
        _check(not required, key, "is missing", f"set it, e.g. pulumi config set --path {key}.registry 127.0.0.1:5000")
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raw = None
    _check(isinstance(raw, dict), key, "must be an object", f"set its fields with pulumi config set --path {key}.FIELD VALUE")
    return raw


def _only(obj: dict, key: str, fields: tuple[str, ...]) -> None:
    for name in obj:
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f"did you mean '{key}.{close[0]}'?" if close else f"known fields: {', '.join(fields)}"
            raise ConfigError(f"{key}.{name}", "unknown field", hint)


def _bool(obj: dict, key: str, name: str, default: bool) -> bool:
    value = obj.get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    _check(isinstance(value, bool), f"{key}.{name}", f"'{value}' is not true or false", "use true or false")
    return value


def _images(obj: dict, secret_keys: set[str]) -> Images:
    _only(obj, "images", ("registry", "repository", "tag", "username", "password"))
    registry = str(obj.get("registry") or "")
    _check(registry, "images.registry", "is missing", "pulumi config set --path images.registry 127.0.0.1:5000")
    _check(_REGISTRY.match(registry) and "://" not in registry, "images.registry",
           f"'{registry}' is not a registry host", "give host[:port][/path] without a scheme, e.g. ghcr.io/acme")
    repository = str(obj.get("repository", Images.repository))
    _check(_REPOSITORY.match(repository), "images.repository", f"'{repository}' is not a valid repository",
           "use lowercase letters, digits and . _ - / separators")
    tag = str(obj.get("tag", Images.tag))
    _check(_TAG.match(tag), "images.tag", f"'{tag}' is not a valid image tag",
           "use letters, digits, '_', '.', '-' (at most 128)")
    password = obj.get("password")
    if password is not None:
        _check("images" in secret_keys, "images.password", "is stored in plain text",
               "pulumi config set --secret --path images.password VALUE")
        _check(obj.get("username"), "images.username", "is missing while images.password is set",
               "pulumi config set --path images.username USER")
    return Images(registry=registry, repository=repository, tag=tag, username=obj.get("username"),
                  password=pulumi.Output.secret(str(password)) if password is not None else None)


def _components(obj: dict) -> Components:
    _only(obj, "components", COMPONENT_NAMES)
    flags = {name: _bool(obj, "components", name, True) for name in COMPONENT_NAMES}
    return Components(single_node=flags["singleNode"], restd=flags["restd"], jupyter=flags["jupyter"],
                      jupyterhub=flags["jupyterhub"])


def _existing_cluster(obj: dict, project_dir: str) -> Optional[ExistingCluster]:
    if not obj:
        return None
    _only(obj, "existingCluster", ("slurmConf",))
    path = str(obj.get("slurmConf") or "")
    _check(path, "existingCluster.slurmConf", "is missing",
           "pulumi config set --path existingCluster.slurmConf configs/existing/slurm.conf")
    full = os.path.join(project_dir, path)
    try:
        with open(full, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("existingCluster.slurmConf", f"cannot read '{path}': {e.strerror}",
                          "give the path, relative to the project, of the cluster's slurm.conf") from None
    _check(re.search(r"^\s*(SlurmctldHost|ControlMachine)\s*=", text, re.M | re.I), "existingCluster.slurmConf",
           f"'{path}' has no SlurmctldHost line, so it is not a usable slurm.conf",
           "copy the cluster's real /etc/slurm/slurm.conf")
    return ExistingCluster(slurm_conf=text, slurm_conf_path=path)


def _munge_key(values: dict, secret_keys: set[str]) -> Optional[pulumi.Output[str]]:
    raw = values.get("mungeKey")
    if raw is None:
        return None
    _check("mungeKey" in secret_keys, "mungeKey", "is stored in plain text in the stack file (it is a cluster root secret)",
           "pulumi config rm mungeKey; pulumi config set --secret mungeKey \"$(base64 -w0 munge.key)\"")
    try:
        key = base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("mungeKey", "is not base64 text", "set it from base64 -w0 /etc/munge/munge.key") from None
    _check(len(key) >= MUNGE_KEY_MIN_BYTES, "mungeKey", f"decodes to {len(key)} bytes, munged needs at least {MUNGE_KEY_MIN_BYTES}",
           "use the cluster's real /etc/munge/munge.key")
    return pulumi.Output.secret(str(raw))


def _kubernetes(obj: dict) -> Kubernetes:
    _only(obj, "kubernetes", ("context", "kubeconfig", "renderDir"))
    paths = {}
    for name in ("kubeconfig", "renderDir"):
        path = obj.get(name) or None
        if path:
            path = os.path.expanduser(os.path.expandvars(str(path)))
            _check("$" not in path, f"kubernetes.{name}", f"'{path}' names an unset environment variable",
                   "export it (scripts/env.sh sets SCI_CACHE) or give a plain path")
        paths[name] = path
    _check(not (paths["kubeconfig"] and paths["renderDir"]), "kubernetes.renderDir",
           "is set together with kubernetes.kubeconfig, but a rendering stack talks to no cluster",
           "remove one of them")
    return Kubernetes(context=obj.get("context") or None, kubeconfig=paths["kubeconfig"],
                      render_dir=paths["renderDir"])


def _jupyterhub(obj: dict, components: Components, secret: bool, project_dir: str) -> Optional[JupyterHub]:
    from components.chart_values import read_user_values  # it imports ConfigError from here

    _only(obj, "jupyterhub", ("chartVersion", "chartRepo", "values", "valuesFile"))
    if not components.jupyterhub:
        return None
    version = str(obj.get("chartVersion") or "")
    _check(version, "jupyterhub.chartVersion", "is missing while components.jupyterhub is true",
           "pin the chart: pulumi config set --path jupyterhub.chartVersion 4.2.0")
    _check(_SEMVER.match(version), "jupyterhub.chartVersion", f"'{version}' is not a chart version",
           "use an exact version such as 4.2.0 (ranges would make deployments drift)")
    return JupyterHub(chart_version=version, chart_repo=str(obj.get("chartRepo", JupyterHub.chart_repo)),
                      values=read_user_values(obj.get("values"), obj.get("valuesFile"), project_dir),
                      values_secret=secret)
