"""The JupyterHub chart's hub configuration for the end-to-end tests' real hub: chart values -> jupyterhub_config.py.

The official chart (z2jh 4.3.3, files/hub/jupyterhub_config.py, "the chart's config" below) turns its values into
JupyterHub and KubeSpawner traits when the hub starts. `settings()` is that mapping, written here for the values this
program sets (`components.jupyterhub.jupyterhub_values()`) and the chart defaults they are merged with; `render()`
makes the hub's jupyterhub_config.py of it; `singleuser_secret()` is the chart's `singleuser` Secret (templates/
singleuser/secret.yaml). Input: the merged values (chart values.yaml + the program's, Helm semantics: a null
removed the key).

The chart's semantics, kept here:
- A trait is set only when its value is present and not null (the chart's `set_config_if_not_none`), so an absent
  value leaves KubeSpawner's own default; e.g. no fsGid: KubeSpawner 7.0.0's `fs_gid` default (None: no fsGroup).
  Exceptions, as in the chart: `allowPrivilegeEscalation` is set even when null, and `cmd` whenever the key exists.
- The image is `name:tag` (the chart has no digest field; the program puts the digest in the tag).
- singleuser.extraFiles -> one Secret volume `files` (an item per file, with its `mode`), each file mounted by
  subPath at its `mountPath`; storage.type dynamic -> a PVC per user (`storage_pvc_ensure`) mounted at homeMountPath;
  static -> the claim `static.pvcName` mounted at homeMountPath with subPath `static.subPath`.
- imagePullSecrets (+ imagePullSecret.create, singleuser.image.pullSecrets) -> `image_pull_secrets`.
- hub.config is passed through after the rest, section by section, without the secrets the chart seeds itself; a
  section name that is not a class name fails, as in the chart. Then hub.extraConfig's entries run, in the order of
  their keys (exec, with `c` in scope).
  With config `ldap` the program's LDAPAuthenticator section (its bind password included) and its spawn hook
  (hub.extraConfig.slurmUsers, which reads that password from `c`) travel these two ways; the test hub's image has
  jupyterhub-ldapauthenticator and ldap3 at the official hub image's versions for them.
- The proxy's auth token is not in the configuration: hub and proxy read CONFIGPROXY_AUTH_TOKEN from the `hub`
  Secret (the chart's hub/deployment.yaml and proxy/deployment.yaml); JupyterHub reads that variable by default.

NetworkPolicies and the hub pod's annotations are objects of the chart, not hub configuration: tests/e2e/
hub_deployment.py makes them. Not mapped, on purpose (`check_mapped()` refuses a value of the program's outside
MAPPED, so none is dropped silently): the scheduling section (user scheduler, priorities, node-purpose affinity and
tolerations: placement only, one node here; user pods use the default scheduler), the image pullers, the idle culler (a hub service the chart adds), the
cookie secret and CryptKeeper keys the chart generates (the hub makes its own cookie secret on its volume; no auth
state is kept), the curl HTTP client (performance only), cloudMetadata.blockWithIptables true (a privileged init
container with the chart's network-tools image: refused).
"""

from __future__ import annotations

import base64
from typing import Any, Iterator

RELEASE = "jupyterhub"
HUB_PORT = 8081  # the hub Service's port (chart: templates/hub/service.yaml)
PROXY_API_PORT = 8001  # the proxy-api Service's port (chart: templates/proxy/service.yaml)

# (KubeSpawner trait, singleuser.<path>): set when not null (the chart config's KubeSpawner trait table).
SINGLEUSER_TRAITS = (
    ("uid", "uid"),
    ("fs_gid", "fsGid"),
    ("extra_labels", "extraLabels"),
    ("extra_annotations", "extraAnnotations"),
    ("image_pull_policy", "image.pullPolicy"),
    ("start_timeout", "startTimeout"),
    ("events_enabled", "events"),
    ("service_account", "serviceAccountName"),
    ("storage_extra_labels", "storage.extraLabels"),
    ("node_selector", "nodeSelector"),
    ("mem_limit", "memory.limit"),
    ("mem_guarantee", "memory.guarantee"),
    ("cpu_limit", "cpu.limit"),
    ("cpu_guarantee", "cpu.guarantee"),
    ("environment", "extraEnv"),
)
# (JupyterHub trait, hub.<path>): set when not null (the chart config's JupyterHub trait table, the part used here).
HUB_TRAITS = (
    ("concurrent_spawn_limit", "concurrentSpawnLimit"),
    ("active_server_limit", "activeServerLimit"),
    ("base_url", "baseUrl"),
    ("allow_named_servers", "allowNamedServers"),
    ("named_server_limit_per_user", "namedServerLimitPerUser"),
    ("redirect_to_server", "redirectToServer"),
    ("shutdown_on_logout", "shutdownOnLogout"),
)
# Secrets the chart seeds itself and removes from the hub.config pass-through (the chart's config, end).
SEEDED = {"JupyterHub": ("proxy_auth_token", "cookie_secret", "services"),
          "ConfigurableHTTPProxy": ("auth_token",), "CryptKeeper": ("keys",)}

# Value paths (prefixes) of the program's values this mapping handles; check_mapped() refuses any other.
MAPPED = (
    *(f"singleuser.{path}" for _, path in SINGLEUSER_TRAITS),
    *(f"hub.{path}" for _, path in HUB_TRAITS),
    "singleuser.image.name", "singleuser.image.tag", "singleuser.image.pullSecrets", "singleuser.cmd",
    "singleuser.defaultUrl", "singleuser.allowPrivilegeEscalation", "singleuser.extraFiles", "singleuser.storage.type",
    "singleuser.storage.capacity", "singleuser.storage.homeMountPath", "singleuser.storage.dynamic",
    "singleuser.storage.static", "hub.extraConfig",
    "singleuser.cloudMetadata.blockWithIptables", "hub.config", "hub.db.type", "hub.consecutiveFailureLimit",
    "imagePullSecrets", "imagePullSecret", "proxy.service.type", "debug.enabled",
    "hub.services", "hub.loadRoles",
    "singleuser.networkPolicy", "hub.networkPolicy", "hub.annotations",  # objects, not hub configuration (see above)
)


def get(values: dict, path: str, default: Any = None) -> Any:
    """values["a"]["b"] for "a.b"; `default` where a level is missing or not a map (the chart's z2jh.get_config)."""
    value: Any = values
    for level in path.split("."):
        if not isinstance(value, dict) or level not in value:
            return default
        value = value[level]
    return value


def leaf_paths(values: dict, prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, path + ".")
        else:
            yield path


def check_mapped(program_values: dict) -> None:
    """ValueError naming every value of the program's (before the merge) that this mapping does not handle."""
    unknown = [p for p in leaf_paths(program_values) if not any(p == m or p.startswith(m + ".") for m in MAPPED)]
    if unknown:
        raise ValueError(f"tests/e2e/hub_config.py does not map these chart values: {', '.join(unknown)}; "
                         "add each with the chart's rule (z2jh files/hub/jupyterhub_config.py)")


def settings(values: dict, release: str = RELEASE) -> list[tuple[str, Any]]:
    """[("Class.trait", value)] in the chart config's order; ("Section", {..}) entries are hub.config pass-through
    sections (to merge into that section), ("extraConfig:KEY", code) hub.extraConfig entries (to run). Names of the chart's objects are its defaults (fullnameOverride "")."""
    if get(values, "singleuser.cloudMetadata.blockWithIptables") is True:
        raise ValueError("singleuser.cloudMetadata.blockWithIptables: true needs the chart's network-tools init "
                         "container, which the test hub does not have")
    out: list[tuple[str, Any]] = [
        ("JupyterHub.spawner_class", "kubespawner.KubeSpawner"),
        ("ConfigurableHTTPProxy.api_url", f"http://proxy-api:{PROXY_API_PORT}"),
        ("ConfigurableHTTPProxy.should_start", False),
        ("JupyterHub.cleanup_servers", False),
        ("JupyterHub.last_activity_interval", 60),
        ("JupyterHub.tornado_settings", {"slow_spawn_timeout": 0}),
    ]
    db_type = get(values, "hub.db.type")
    if db_type == "sqlite-pvc":  # the database in the working directory, /srv/jupyterhub: the hub-db-dir volume
        out.append(("JupyterHub.db_url", "sqlite:///jupyterhub.sqlite"))
    elif db_type == "sqlite-memory":
        out.append(("JupyterHub.db_url", "sqlite://"))
    else:
        raise ValueError(f"hub.db.type {db_type!r}: the test hub maps only sqlite-pvc and sqlite-memory")

    def if_not_none(target: str, path: str) -> None:
        value = get(values, path)
        if value is not None:
            out.append((target, value))

    for trait, path in HUB_TRAITS:
        if_not_none(f"JupyterHub.{trait}", f"hub.{path}")
    out += [("JupyterHub.hub_bind_url", f"http://:{HUB_PORT}"),
            ("JupyterHub.hub_connect_url", f"http://hub:{HUB_PORT}"),
            ("KubeSpawner.common_labels", {"app": "jupyterhub", "app.kubernetes.io/name": "jupyterhub",
                                           "release": release, "app.kubernetes.io/instance": release,
                                           "app.kubernetes.io/managed-by": "kubespawner"})]
    if_not_none("Spawner.consecutive_failure_limit", "hub.consecutiveFailureLimit")
    for trait, path in SINGLEUSER_TRAITS:
        if_not_none(f"KubeSpawner.{trait}", f"singleuser.{path}")

    image = get(values, "singleuser.image.name")
    if image:
        tag = get(values, "singleuser.image.tag")
        out.append(("KubeSpawner.image", f"{image}:{tag}" if tag else image))
    out.append(("KubeSpawner.allow_privilege_escalation", get(values, "singleuser.allowPrivilegeEscalation")))

    pull_secrets = []
    if get(values, "imagePullSecret.automaticReferenceInjection") and get(values, "imagePullSecret.create"):
        pull_secrets.append("image-pull-secret")
    pull_secrets += get(values, "imagePullSecrets") or []
    pull_secrets += get(values, "singleuser.image.pullSecrets") or []
    if pull_secrets:
        out.append(("KubeSpawner.image_pull_secrets", pull_secrets))

    volumes: dict[str, dict] = {}
    mounts: dict[str, dict] = {}
    storage = get(values, "singleuser.storage.type")
    if storage == "dynamic":
        dynamic = get(values, "singleuser.storage.dynamic", {})
        if dynamic.get("pvcNameTemplate"):
            out.append(("KubeSpawner.pvc_name_template", dynamic["pvcNameTemplate"]))
        out.append(("KubeSpawner.storage_pvc_ensure", True))
        if_not_none("KubeSpawner.storage_class", "singleuser.storage.dynamic.storageClass")
        if_not_none("KubeSpawner.storage_access_modes", "singleuser.storage.dynamic.storageAccessModes")
        if_not_none("KubeSpawner.storage_capacity", "singleuser.storage.capacity")
        name = dynamic.get("volumeNameTemplate")
        volumes[name] = {"name": name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        mounts[name] = {"name": name, "mountPath": get(values, "singleuser.storage.homeMountPath"),
                        "subPath": dynamic.get("subPath")}
    elif storage == "static":
        volumes["home"] = {"name": "home",
                           "persistentVolumeClaim": {"claimName": get(values, "singleuser.storage.static.pvcName")}}
        mounts["home"] = {"name": "home", "mountPath": get(values, "singleuser.storage.homeMountPath"),
                          "subPath": get(values, "singleuser.storage.static.subPath")}
    elif storage != "none":
        raise ValueError(f"singleuser.storage.type {storage!r}: the test hub maps only dynamic, static and none")

    files = get(values, "singleuser.extraFiles") or {}
    if files:
        volumes["files"] = {"name": "files", "secret": {"secretName": "singleuser", "items": [
            {"key": key, "path": key, **({"mode": f["mode"]} if "mode" in f else {})} for key, f in files.items()]}}
        for i, (key, f) in enumerate(files.items()):
            mounts[f"{i}-files"] = {"name": "files", "mountPath": f["mountPath"], "subPath": key}
    out += [("KubeSpawner.volumes", volumes), ("KubeSpawner.volume_mounts", mounts)]

    if "cmd" in (values.get("singleuser") or {}):
        out.append(("Spawner.cmd", values["singleuser"]["cmd"]))
    if_not_none("Spawner.default_url", "singleuser.defaultUrl")
    if get(values, "debug.enabled"):
        out += [("JupyterHub.log_level", "DEBUG"), ("Spawner.debug", True)]

    # hub.services (a map, for merging) -> JupyterHub.services, each named by its key, apiToken as api_token; then
    # hub.loadRoles -> JupyterHub.load_roles, the same way (the chart's config, "load hub.services").
    services = [{"name": key, **{k: v for k, v in service.items() if k != "apiToken"},
                 "api_token": service.get("apiToken")} for key, service in (get(values, "hub.services") or {}).items()]
    if services:
        out.append(("JupyterHub.services", services))
    roles = [{"name": key, **role} for key, role in (get(values, "hub.loadRoles") or {}).items()]
    if roles:
        out.append(("JupyterHub.load_roles", roles))

    for section, cfg in (get(values, "hub.config") or {}).items():
        if not section[:1].isupper():
            raise ValueError(f"hub.config.{section}: hub.config sections must be class names (e.g. JupyterHub)")
        cfg = {k: v for k, v in cfg.items() if k not in SEEDED.get(section, ())}
        out.append((section, cfg))
    out += [(f"extraConfig:{key}", code) for key, code in sorted((get(values, "hub.extraConfig") or {}).items())]
    return out


def render(values: dict, release: str = RELEASE) -> str:
    """jupyterhub_config.py for the hub: `settings()` as assignments, KubeSpawner's namespace the hub pod's own."""
    lines = ["# Rendered by tests/e2e/hub_config.py from the chart values (z2jh 4.3.3 semantics).",
             "import os", "c = get_config()  # noqa",
             'c.KubeSpawner.namespace = os.environ.get("POD_NAMESPACE", "default")']
    for target, value in settings(values, release):
        if target.startswith("extraConfig:"):
            lines.append(f"exec(compile({value!r}, {target!r}, 'exec'))")
        elif "." in target:
            lines.append(f"c.{target} = {value!r}")
        else:
            lines.append(f"c[{target!r}].update({value!r})")
    return "\n".join(lines) + "\n"


def singleuser_secret(values: dict, namespace: str) -> dict:
    """The chart's `singleuser` Secret: singleuser.extraFiles' binaryData as data, stringData as stringData."""
    files = get(values, "singleuser.extraFiles") or {}
    for f in files.values():
        if "binaryData" in f:
            base64.b64decode(f["binaryData"], validate=True)  # the chart renders it as is: it must be base64
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "singleuser", "namespace": namespace},
            "data": {k: f["binaryData"] for k, f in files.items() if "binaryData" in f},
            "stringData": {k: f["stringData"] for k, f in files.items() if "stringData" in f}}
