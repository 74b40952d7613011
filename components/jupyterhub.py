"""JupyterHub: the official chart (zero-to-jupyterhub-k8s) whose notebooks are slurm-jupyter-notebook.

`jupyterhub_values()` is pure (plain values or Pulumi Inputs in, the chart's values out), so tests validate
it against the chart's own values schema. The notebook pods get the stack's non-secret Slurm files and the
user directory through the chart's `singleuser.extraFiles` (the chart keeps them in a Kubernetes Secret), at
the paths of the image contract (dockerfiles/README.md), and no key of the cluster.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import chart_values, directory, ldap, pods
from components.errors import ConfigError
from components.labels import PART_OF
from components.metrics import scrape_annotations
from components.slurm_files import CONFIG_FILES

APP = "jupyterhub"  # app.kubernetes.io/name of the notebook pods (restd.allowedClients default lists it)
# app.kubernetes.io/component of the notebook pods alone: APP is also the chart's hub's and proxy's name
# (z2jh 4.3.3 templates/_helpers.tpl), KubeSpawner adds this to the user pods (kubespawner 7.0.0 component_label).
USER_POD_COMPONENT = "singleuser-server"
HUB_COMPONENT = "hub"  # app.kubernetes.io/component of the chart's hub pod
HUB_PORT = 8081  # the hub container's port `http` (the chart's hub Service: hub:8081)
HUB_METRICS_PATH = "/hub/metrics"  # the chart's hub.baseUrl is "/"
SCRAPER_SERVICE = "metrics-scraper"  # the hub's service (and role) whose token reads /hub/metrics
METRICS_SCOPE = "read:metrics"
CHART = "jupyterhub"
RELEASE = "jupyterhub"
PROXY_SERVICE = "proxy-public"  # the chart's fixed name (fullnameOverride "")
NOTEBOOK_CMD = "jupyterhub-singleuser"
LOGIN_NOTE = "Only the users of this Slurm cluster's user directory can log in."
LDAP_LOGIN_NOTE = "Log in with your account of the site's directory."
# jupyterhub-ldapauthenticator 2.0.2, which the official hub image pins (z2jh 4.3.3 images/hub/requirements.txt, with
# ldap3 2.9.1); it registers no entry point, so the class by its import path.
LDAP_AUTHENTICATOR = "ldapauthenticator.LDAPAuthenticator"
LDAP_SECTION = "LDAPAuthenticator"
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


def hub_extra_config(users: Sequence[directory.User], groups: Mapping[str, int]) -> str:
    """hub.extraConfig.slurmUsers: Python the chart's hub runs after its own configuration (z2jh 4.3.3
    files/hub/jupyterhub_config.py, extraConfig last). KubeSpawner 7.0.0 accepts a callable for uid, gid,
    fs_gid and supplemental_gids (spawner.py): each user's server runs as their own ids, and a user the
    directory does not know (an admin may add one through the hub) gets a spawn error that names them."""
    ids = {u.name: {"uid": u.uid, "gid": u.gid, "supplemental_gids": [groups[g] for g in u.groups]} for u in users}
    return f"""# Made by slurm-cloud-integration (components/jupyterhub.py): the stack's user directory.
SLURM_USERS = {json.dumps(ids, sort_keys=True)}


def slurm_user(spawner):
    try:
        return SLURM_USERS[spawner.user.name]
    except KeyError:
        raise ValueError(f"{{spawner.user.name}} is not in the Slurm cluster's user directory (config users)") from None


c.KubeSpawner.uid = lambda spawner: slurm_user(spawner)["uid"]
c.KubeSpawner.gid = lambda spawner: slurm_user(spawner)["gid"]
c.KubeSpawner.fs_gid = lambda spawner: slurm_user(spawner)["gid"]
c.KubeSpawner.supplemental_gids = lambda spawner: slurm_user(spawner)["supplemental_gids"]
"""


@dataclass(frozen=True)
class HubLdap:
    """The site's directory as the hub uses it (config `ldap`): logins, and each user's ids at spawn."""

    settings: ldap.Settings
    bind_password: Optional[pulumi.Input[str]] = None  # with settings.bind_dn
    login_group: Optional[str] = None  # a posixGroup's cn: only its members (memberUid) may log in


def hub_ldap_of(config_ldap: Any) -> Optional[HubLdap]:
    """HubLdap of config `ldap` (components/config/table.py Ldap, or None: no directory), the password kept secret."""
    if config_ldap is None:
        return None
    password = config_ldap.bind_password
    return HubLdap(settings=config_ldap.settings, login_group=config_ldap.login_group,
                   bind_password=None if password is None else pulumi.Output.secret(password))


def ldap_authenticator_config(hub_ldap: HubLdap) -> dict[str, Any]:
    """hub.config.LDAPAuthenticator for jupyterhub-ldapauthenticator 2.0.2 (ldapauthenticator.py): the login name is
    looked up as a posixAccount's `uid` (with ldap.userFilter) under the base DN, bound as the bind DN (lookup_dn),
    and the user's password is checked by binding as the entry found. It takes one server: the first of ldap.uri.
    TLS as nslcd's: ldaps:// is `on_connect`, StartTLS `before_bind`, both checking the server's certificate against
    the site's CA (ldap3's Tls: ca_certs_data, validate 2 = ssl.CERT_REQUIRED, and its host name); plain ldap://
    is `insecure`. With a login group, `search_filter` (searched under user_search_base, bound as the user) must find
    exactly that group with the user as a memberUid; `allow_all` then admits whoever passed both (the authenticator's
    check_allowed: search_filter alone admits no one)."""
    settings = hub_ldap.settings
    match = ldap.URI.match(settings.uri.split()[0])
    scheme, host, port = match.group(1), match.group(2).strip("[]"), match.group(4)
    ldaps = scheme == "ldaps"

    def template(text: Optional[str]) -> str:  # the authenticator str.format()s its filters: literal braces doubled
        return (text or "").replace("{", "{{").replace("}", "}}")

    cfg: dict[str, Any] = {
        "server_address": host,
        "server_port": int(port[1:]) if port else 636 if ldaps else 389,
        "tls_strategy": "on_connect" if ldaps else "before_bind" if settings.start_tls else "insecure",
        "lookup_dn": True,
        "user_search_base": settings.base_dn,
        "user_attribute": "uid",
        "lookup_dn_user_dn_attribute": "uid",
        "lookup_dn_search_filter": f"(&(objectClass=posixAccount){template(settings.user_filter)}"
                                   "({login_attr}={login}))",
        "allow_all": True,
        # Only names the static list could hold (components/directory.py): KubeSpawner keeps them as they are.
        "valid_username_regex": directory.NAME_PATTERN,
    }
    if settings.tls:
        cfg["tls_kwargs"] = {"ca_certs_data": settings.ca, "validate": 2}
    if settings.bind_dn:
        cfg |= {"lookup_dn_search_user": settings.bind_dn, "lookup_dn_search_password": hub_ldap.bind_password}
    if hub_ldap.login_group:
        cfg["search_filter"] = (f"(&(objectClass=posixGroup){template(settings.group_filter)}"
                                f"(cn={template(hub_ldap.login_group)})(memberUid={{username}}))")
    return cfg


# With config `ldap`, the user pod's own passwd and group files (the hook's slurm_directory_files()): the volume, the
# init container's command (as the user, umask 022: files the server's container reads) and its resources.
# A login that the directory has not answered by then fails (503): a few of nslcd's search time limits.
LOGIN_TIMEOUT_S = 3 * ldap.TIMELIMIT_S
DIRECTORY_VOLUME = "slurm-directory"
DIRECTORY_WRITE = ('umask 022 && printf %s "$SLURM_DIRECTORY_PASSWD" > /directory/passwd && '
                   'printf %s "$SLURM_DIRECTORY_GROUP" > /directory/group')
DIRECTORY_INIT_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}
# Then it waits for the user's home to be theirs: a user added to the directory can start a server before the Slurm
# side's next listing made their home (or, on an existing cluster, before the site admitted them). It mounts the
# server's home volume whole, read-only, at HOMES_MOUNT (no subPath: the kubelet makes a missing subPath as root, which
# nothing would give the user on a site), so the server's container, whose subPath the kubelet makes only when it
# starts, finds the home made. In the init container this counts against KubeSpawner's start_timeout (the chart's
# 300 s), not the 30 s of Spawner.http_timeout the server gets. (No braces: KubeSpawner formats init containers'
# strings.)
HOMES_MOUNT = "/slurm-homes"
HOME_WAIT_S = 120
DIRECTORY_HOME_WAIT = ('i=0; until [ -d "$SLURM_HOME" ] && [ -O "$SLURM_HOME" ]; do if [ "$i" -ge ' + str(HOME_WAIT_S)
                       + ' ]; then echo "your home is not made (as yours) after ' + str(HOME_WAIT_S) + ' s: the '
                       'cluster makes it for every directory user (ask your administrator)" >&2; exit 1; fi; '
                       'i=$((i + 1)); sleep 1; done')

# The spawn hook with config `ldap` (hub_ldap_extra_config()): the code after the directory's settings.
_LDAP_HOOK = r'''
SAFE_NAME = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")  # a group name for the group file (KubeSpawner expands {..})
# The bind password: hub.config's (the chart keeps its values in the hub's Secret), not this code's.
# (dict.get: traitlets' Config would make a missing key a LazyConfigValue of the section.)
SLURM_DIRECTORY_PASSWORD = c.LDAPAuthenticator.get("lookup_dn_search_password")


class SlurmDirectoryError(Exception):
    """Why a user's server cannot start as them (JupyterHub shows it to the user)."""


def slurm_directory_connection(directory, password):
    """A connection bound as the bind DN to the first of the directory's servers that answers."""
    import ldap3
    from ldap3.core.exceptions import LDAPBindError, LDAPException

    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_data=directory["ca"]) if directory["ca"] else None
    failures = []
    for uri in directory["uris"]:
        server = ldap3.Server(uri, tls=tls, connect_timeout=directory["connect_timeout_s"])
        try:
            return ldap3.Connection(
                server, user=directory["bind_dn"], password=password, read_only=True,
                receive_timeout=directory["timeout_s"],
                auto_bind=ldap3.AUTO_BIND_TLS_BEFORE_BIND if directory["start_tls"] else ldap3.AUTO_BIND_NO_TLS)
        except LDAPBindError as e:
            raise SlurmDirectoryError(f"the site's directory ({uri}) refused the hub's bind: {e}") from None
        except LDAPException as e:
            failures.append(f"{uri}: {e}")
    raise SlurmDirectoryError("the site's directory cannot be reached (" + "; ".join(failures) + ")")


def slurm_directory_ids(name, directory=SLURM_DIRECTORY, password=SLURM_DIRECTORY_PASSWORD):
    """{"uid", "gid", "supplemental_gids"} of the directory's posixAccount `name` and the posixGroups that list it
    (memberUid, or member by its DN), as nslcd resolves them; SlurmDirectoryError saying why not."""
    low, high = directory["min_id"], directory["max_id"]
    # As the static list's names (components/directory.py): a name KubeSpawner would not keep as it is would get
    # another home than /home/<name> of the Slurm nodes; an image's own user's name would resolve to that user.
    if not re.match(directory["name_pattern"], name) or len(name) > directory["name_max"]:
        raise SlurmDirectoryError(f"{name} is not a name this cluster's users can have (lowercase letters and digits, "
                                  f"single dashes between, at most {directory['name_max']} characters)")
    if name in directory["reserved_names"]:
        raise SlurmDirectoryError(f"{name} is the name of a system user of this cluster's images, so it cannot be a "
                                  "user's: their server may not start")
    from ldap3.utils.conv import escape_filter_chars

    conn = slurm_directory_connection(directory, password)
    try:
        who = escape_filter_chars(name)
        conn.search(directory["base_dn"], f"(&(objectClass=posixAccount){directory['user_filter']}(uid={who}))",
                    attributes=["uidNumber", "gidNumber"], time_limit=directory["timeout_s"])
        if len(conn.entries) != 1:
            raise SlurmDirectoryError(
                f"{name} is not in the site's directory" if not conn.entries else
                f"{name} is {len(conn.entries)} entries of the site's directory, not one")
        entry = conn.entries[0]
        found = entry.entry_attributes_as_dict
        uid, gid = (int(found[a][0]) if found.get(a) else None for a in ("uidNumber", "gidNumber"))
        for what, value in (("uid", uid), ("gid", gid)):
            if value is None or not low <= value <= high:
                raise SlurmDirectoryError(f"{name}'s {what} in the site's directory is {value}, outside {low}-{high}, "
                                          "the ids this cluster's users have: their server may not start")
        conn.search(directory["base_dn"],
                    f"(&(objectClass=posixGroup){directory['group_filter']}(|(gidNumber={gid})"
                    f"(memberUid={who})(member={escape_filter_chars(entry.entry_dn)})))",
                    attributes=["cn", "gidNumber"], time_limit=directory["timeout_s"])
        groups = {}  # gid -> name, the user's primary group and those that list them
        for group in conn.entries:
            attrs = group.entry_attributes_as_dict
            if attrs.get("gidNumber") and attrs.get("cn"):
                groups.setdefault(int(attrs["gidNumber"][0]), str(attrs["cn"][0]))
        # A group outside the users' range (a system group's id) is never given to a server.
        groups = {g: cn for g, cn in groups.items() if low <= g <= high}
        # The pod's own passwd and group files (slurm_directory_files()): only names the files can hold.
        lines = [f"{cn}:x:{g}:{'' if g == gid else name}" for g, cn in sorted(groups.items()) if SAFE_NAME.match(cn)]
        return {"uid": uid, "gid": gid, "supplemental_gids": sorted(g for g in groups if g != gid),
                "passwd": f"{name}:x:{uid}:{gid}::{directory['home_root']}/{name}:{directory['shell']}\n",
                "group": "".join(line + "\n" for line in lines)}
    finally:
        conn.unbind()


def slurm_directory_files(spawner, ids):
    """The user's own passwd and group lines as the image's libnss-extrausers reads them: an init container of the
    notebook image, as the user, writes them into an emptyDir that the server's container mounts read-only at
    /var/lib/extrausers. So the server's entrypoint (and `id`, `ls -l`, Slurm's commands) know the user by name, the
    pod holds no bind password and reaches no directory, and the user cannot change the files. With the home mounted,
    it then waits for the home to be the user's (DIRECTORY_HOME_WAIT)."""
    volume = SLURM_DIRECTORY["volume"]
    context = {"runAsUser": ids["uid"], "runAsGroup": ids["gid"], "runAsNonRoot": True,
               "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    # The server's mount of the home (the chart's: mountPath and subPath with {username}, which KubeSpawner expands to
    # the name itself for the names the hook lets through): its volume, whole and read-only, for the wait.
    name = spawner.user.name
    home = f"{SLURM_DIRECTORY['home_root']}/{name}"
    mounts = spawner.volume_mounts.values() if isinstance(spawner.volume_mounts, dict) else spawner.volume_mounts
    home_mounts = [{"name": m["name"], "mountPath": SLURM_DIRECTORY["homes_mount"], "readOnly": True}
                   for m in mounts if m.get("mountPath", "").replace("{username}", name) == home][:1]
    command = " && ".join([SLURM_DIRECTORY["write"], *([SLURM_DIRECTORY["home_wait"]] if home_mounts else [])])
    init = {"name": volume, "image": spawner.image, "command": ["/bin/sh", "-c", command],
            "env": [{"name": "SLURM_DIRECTORY_PASSWD", "value": ids["passwd"]},
                    {"name": "SLURM_DIRECTORY_GROUP", "value": ids["group"]},
                    {"name": "SLURM_HOME", "value": f"{SLURM_DIRECTORY['homes_mount']}/{name}"}],
            "securityContext": context, "resources": SLURM_DIRECTORY["init_resources"],
            "volumeMounts": [{"name": volume, "mountPath": "/directory"}, *home_mounts]}
    spawner.init_containers = [i for i in spawner.init_containers if i.get("name") != volume] + [init]
    empty = {"name": volume, "emptyDir": {"sizeLimit": "1Mi"}}
    mount = {"name": volume, "mountPath": SLURM_DIRECTORY["extrausers"], "readOnly": True}
    if isinstance(spawner.volumes, dict):
        spawner.volumes = {**spawner.volumes, volume: empty}
    else:
        spawner.volumes = [v for v in spawner.volumes if v.get("name") != volume] + [empty]
    if isinstance(spawner.volume_mounts, dict):
        spawner.volume_mounts = {**spawner.volume_mounts, volume: mount}
    else:
        spawner.volume_mounts = [m for m in spawner.volume_mounts if m.get("name") != volume] + [mount]


async def slurm_pre_spawn_hook(spawner):
    # ldap3 blocks: off the hub's event loop.
    ids = await asyncio.to_thread(slurm_directory_ids, spawner.user.name)
    slurm_directory_files(spawner, ids)
    spawner.slurm_directory_ids = ids


def slurm_user(spawner):
    ids = getattr(spawner, "slurm_directory_ids", None)
    if ids is None:
        raise ValueError(f"{spawner.user.name}'s ids were not looked up in the site's directory: KubeSpawner."
                         "pre_spawn_hook is no longer the one of hub.extraConfig.slurmUsers")
    return ids


def slurm_directory_authenticator():
    """The program's LDAPAuthenticator, whose login fails with a page that says the directory cannot be reached
    (503) rather than a bare 500, when it cannot."""
    from ldap3.core.exceptions import LDAPException
    from ldapauthenticator import LDAPAuthenticator
    from tornado import web

    class SlurmLDAPAuthenticator(LDAPAuthenticator):
        async def authenticate(self, handler, data):
            # LDAPAuthenticator's ldap3 calls block, with no timeout of their own: in a thread of their own, so that
            # a directory that does not answer neither freezes the hub nor holds a login past login_timeout_s.
            # A daemon thread: one that the directory holds forever does not hold the hub's exit too.
            parent, loop = super().authenticate, asyncio.get_running_loop()
            answer = loop.create_future()

            def settle(result=None, error=None):
                if not answer.done():
                    answer.set_exception(error) if error else answer.set_result(result)

            def login():
                try:
                    result, error = asyncio.run(parent(None, data)), None
                except Exception as e:
                    result, error = None, e
                try:
                    loop.call_soon_threadsafe(settle, result, error)
                except RuntimeError:  # the hub's loop is gone
                    pass

            threading.Thread(target=login, name="ldap-login", daemon=True).start()
            try:
                return await asyncio.wait_for(answer, SLURM_DIRECTORY["login_timeout_s"])
            except (LDAPException, asyncio.TimeoutError) as e:
                self.log.error("Login of %s: the site's directory cannot be reached: %r", data.get("username"), e)
                raise web.HTTPError(503, "The site's directory cannot be reached, so no one can log in now. "
                                         "Try again later, or tell the site's administrators.") from None

    return SlurmLDAPAuthenticator


# Only the program's own authenticator (a site's own authenticator_class in jupyterhub.values stays as it is); the
# LDAPAuthenticator section applies to the subclass too.
if c.JupyterHub.get("authenticator_class") == SLURM_DIRECTORY["authenticator"]:
    c.JupyterHub.authenticator_class = slurm_directory_authenticator()
c.KubeSpawner.pre_spawn_hook = slurm_pre_spawn_hook
c.KubeSpawner.uid = lambda spawner: slurm_user(spawner)["uid"]
c.KubeSpawner.gid = lambda spawner: slurm_user(spawner)["gid"]
c.KubeSpawner.fs_gid = lambda spawner: slurm_user(spawner)["gid"]
c.KubeSpawner.supplemental_gids = lambda spawner: slurm_user(spawner)["supplemental_gids"]
'''


def hub_ldap_extra_config(settings: ldap.Settings) -> str:
    """hub.extraConfig.slurmUsers with config `ldap`: a KubeSpawner pre_spawn_hook (jupyterhub 5.4.4 awaits it before
    the spawner starts) looks the user up in the site's directory with ldap3 (the hub image's, a dependency of
    jupyterhub-ldapauthenticator) and KubeSpawner's uid, gid, fs_gid and supplemental_gids callables give the ids it
    found. A user the directory does not have, whose uid or gid is outside directory.MIN_ID-MAX_ID (root's, an
    image's), whose name the static list could not hold (NAME_PATTERN, RESERVED_NAMES), or a directory that cannot
    be reached, gets a spawn error saying so. Every server found in ldap.uri is
    tried in order, with nslcd's timeouts; the CA is checked as nslcd does. The bind password is read from
    hub.config.LDAPAuthenticator (ldap_authenticator_config()), so that this code holds no secret."""
    settings_json = {
        "uris": settings.uri.split(), "base_dn": settings.base_dn, "bind_dn": settings.bind_dn,
        "start_tls": settings.start_tls, "ca": settings.ca if settings.tls else None,
        "user_filter": settings.user_filter or "", "group_filter": settings.group_filter or "",
        "min_id": directory.MIN_ID, "max_id": directory.MAX_ID,
        "connect_timeout_s": ldap.BIND_TIMELIMIT_S, "timeout_s": ldap.TIMELIMIT_S,
        "home_root": directory.HOME_ROOT, "shell": directory.SHELL, "extrausers": directory.EXTRAUSERS_DIR,
        "volume": DIRECTORY_VOLUME, "write": DIRECTORY_WRITE, "home_wait": DIRECTORY_HOME_WAIT, "homes_mount": HOMES_MOUNT,
        "init_resources": DIRECTORY_INIT_RESOURCES,
        "authenticator": LDAP_AUTHENTICATOR, "name_pattern": directory.NAME_PATTERN, "name_max": directory.NAME_MAX,
        "reserved_names": sorted(directory.RESERVED_NAMES), "login_timeout_s": LOGIN_TIMEOUT_S,
    }
    return ("# Made by slurm-cloud-integration (components/jupyterhub.py): each user's ids from the site's LDAP "
            "directory.\nimport asyncio\nimport re\nimport ssl\nimport threading\n\n"
            f"SLURM_DIRECTORY = {settings_json!r}\n" + _LDAP_HOOK)


def hub_metrics_values(token: pulumi.Input[str], ingress: Sequence[dict], annotate: bool) -> dict[str, Any]:
    """The chart values that serve the hub's /hub/metrics to the metrics scraper only (z2jh 4.3.3, jupyterhub 5.4.4):
    - hub.services.SCRAPER_SERVICE.apiToken `token` and hub.loadRoles.SCRAPER_SERVICE giving that service
      `read:metrics` alone (files/hub/jupyterhub_config.py appends both to c.JupyterHub.services and load_roles);
    - hub.config.JupyterHub.authenticate_prometheus true, JupyterHub's default, owned so that no one turns it off:
      the proxy routes /hub/* from anywhere, and the metrics handler asks for `read:metrics` only while it is on
      (jupyterhub utils.metrics_authentication);
    - hub.networkPolicy.ingress `ingress` (the network graph's edges into the hub, Graph.chart_ingress), which the
      chart adds to its hub NetworkPolicy's own rules;
    - with `annotate` (no Prometheus Operator), hub.annotations: the hub pod's scrape annotations (the chart already
      annotates its hub Service the same way)."""
    hub: dict[str, Any] = {
        "services": {SCRAPER_SERVICE: {"apiToken": token}},
        "loadRoles": {SCRAPER_SERVICE: {"description": "Prometheus reads the hub's metrics (slurm-cloud-integration)",
                                        "scopes": [METRICS_SCOPE], "services": [SCRAPER_SERVICE]}},
        "config": {"JupyterHub": {"authenticate_prometheus": True}},
        "networkPolicy": {"ingress": list(ingress)},
    }
    if annotate:
        hub["annotations"] = scrape_annotations(HUB_PORT, HUB_METRICS_PATH)
    return {"hub": hub}


def jupyterhub_values(*, image_name: pulumi.Input[str], image_tag: pulumi.Input[str],
                      config_files: Mapping[str, str], users: Sequence[directory.User], groups: Mapping[str, int],
                      home_claim: pulumi.Input[str], token_url: pulumi.Input[str],
                      slurm_env: Optional[Mapping[str, str]] = None,
                      hub_password: pulumi.Input[str], egress: Sequence[dict],
                      image_pull_secret: Optional[pulumi.Input[str]] = None,
                      metrics: Optional[Mapping[str, Any]] = None,
                      hub_ldap: Optional[HubLdap] = None) -> dict[str, Any]:
    """The chart values (with `metrics`, hub_metrics_values(), merged in): notebook image by digest, Slurm files and the user directory as extraFiles, each user
    as themselves with their home on the shared claim, no key of the cluster, tight defaults.

    How the chart and KubeSpawner use them (z2jh 4.3.3 files/hub/jupyterhub_config.py, kubespawner 7.0.0
    spawner.py and objects.py make_pod):
    - hub.extraConfig.slurmUsers (hub_extra_config()) sets uid, gid, fs_gid and supplemental_gids per user;
      the chart's own `singleuser.uid`/`fsGid` (values.yaml: 1000, 100) are overridden by it. The server
      starts as the user: no root in the pod, no munge key, no JWT key; Slurm commands get a JWT for the user
      from the token service (`SLURM_TOKEN_URL`, components/token_service.py).
    - `storage.type: static` mounts the claim `pvcName` with subPath `{username}` at `homeMountPath`: the pod
      sees only /home/<user>, the same directory the Slurm nodes see (the single node makes it, owned by the
      user). KubeSpawner expands `{username}` to the name itself for names that match directory.NAME_PATTERN.
    - `extraEnv.HOME` is that home too: the image's entrypoint sets HOME for the server alone, and a `kubectl exec`
      shell gets the container's environment (else HOME=/, the runtime's, as the uid is not in the image's
      /etc/passwd). KubeSpawner expands `{username}` in `environment` values as well (get_env).
    - `extraFiles` become items of one Secret volume `files` (item mode = `mode`, decimal) mounted by subPath.
    - `cmd` becomes the container's args (KubeSpawner `cmd` + the spawner's args), so the image's ENTRYPOINT
      (jupyter-entrypoint) always runs.
    - `hub.config.Authenticator.allowed_users`: JupyterHub itself refuses anyone else, whichever authenticator;
      `template_vars.announcement_login` says so on the login page (jupyterhub 5.4.4 templates/login.html).
    - With `hub_ldap` (config `ldap`): no static users; logins check the site's directory (LDAPAuthenticator,
      ldap_authenticator_config(), the bind password as `hub_ldap.bind_password`, an Output kept secret) unless the
      user's values choose another authenticator_class, and hub.extraConfig.slurmUsers (hub_ldap_extra_config())
      looks each user's ids up there at spawn and gives their pod its own passwd and group files (no slurm-users
      extraFiles then). allowed_users stays empty: the directory (and loginGroup) decides.
    """
    extra_files: dict[str, Any] = {
        f"slurm-config-{re.sub(r'[^a-z0-9]+', '-', name.lower())}": {
            "mountPath": f"{pods.CONFIG_MOUNT}/{name}", "stringData": text, "mode": pods.CONFIG_MODE}
        for name, text in sorted(config_files.items())
    }
    if hub_ldap is None:  # with the directory, each pod's own files come from the spawn hook (DIRECTORY_VOLUME)
        extra_files |= {f"slurm-users-{name}": {"mountPath": f"{directory.EXTRAUSERS_DIR}/{name}",
                                                "stringData": text, "mode": pods.CONFIG_MODE}
                        for name, text in directory.render_files(users, groups).items()}
    home = f"{directory.HOME_ROOT}/{{username}}"
    values: dict[str, Any] = {
        "hub": {
            "config": {
                # The generated password for every directory user (not the chart's default "dummy"
                # authenticator, whose password is deprecated since JupyterHub 5.3, jupyterhub/auth.py).
                "JupyterHub": {"authenticator_class": "shared-password",
                               "template_vars": {"announcement_login": LOGIN_NOTE}},
                "SharedPasswordAuthenticator": {"user_password": hub_password},
                # allow_existing_users would also let in whoever the hub's database has (its default once
                # allowed_users is set, jupyterhub 5.4.4 auth.py), such as a user removed from `users`.
                "Authenticator": {"allowed_users": sorted(u.name for u in users), "allow_existing_users": False},
            } if hub_ldap is None else {
                "JupyterHub": {"authenticator_class": LDAP_AUTHENTICATOR,
                               "template_vars": {"announcement_login": LDAP_LOGIN_NOTE}},
                LDAP_SECTION: ldap_authenticator_config(hub_ldap),
                "Authenticator": {"allowed_users": [], "allow_existing_users": False},
            },
            "extraConfig": {"slurmUsers": hub_extra_config(users, groups) if hub_ldap is None
                            else hub_ldap_extra_config(hub_ldap.settings)},
        },
        # Not on a public load balancer by default: reach it with kubectl port-forward or your own Ingress.
        "proxy": {"service": {"type": "ClusterIP"}},
        "singleuser": {
            "image": {"name": image_name, "tag": image_tag, "pullPolicy": "IfNotPresent"},
            "cmd": NOTEBOOK_CMD,
            "extraFiles": extra_files,
            "extraEnv": {**(slurm_env or {}), "SLURM_TOKEN_URL": token_url, "HOME": home},
            "storage": {"type": "static", "static": {"pvcName": home_claim, "subPath": "{username}"},
                        "homeMountPath": home},
            "extraLabels": {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": PART_OF},
            "networkPolicy": {"egress": list(egress)},
            # The singleuser NetworkPolicy (enabled, cloudMetadataServer: false by default) already blocks the
            # metadata server; the chart's iptables way adds a privileged init container to every user pod.
            "cloudMetadata": {"blockWithIptables": False},
        },
    }
    if image_pull_secret is not None:  # the chart adds it to every pod it makes, the users' pods included
        values["imagePullSecrets"] = [image_pull_secret]
    return chart_values.helm_merge(values, metrics) if metrics else values


def check_user_values(chart: tuple[dict, dict], user_values: Mapping[str, Any],
                      users: Sequence[directory.User], metrics: bool = False,
                      hub_ldap: Optional[HubLdap] = None) -> None:
    """Raises ConfigError if the user's chart values (config jupyterhub.values(File)) set what the program owns,
    fail the chart's schema (`chart`: load_chart()'s defaults and schema), or make admins of names outside the
    directory (`users`): JupyterHub 5.4.4 adds admin_users to the allowed users (app.py), so they could log in and
    then never get a server (with `hub_ldap`, config `ldap`, the directory is not read at preview: such an admin gets
    the spawn hook's error); `metrics`: the program serves the hub's metrics (config metrics.enabled), so owns
    their settings too. config.parse() calls it, so that `pulumi up` without a preview creates nothing either;
    the values here stand in for the program's Outputs, JupyterHub merges the real ones."""
    program = jupyterhub_values(image_name="image", image_tag="tag", config_files=dict.fromkeys(CONFIG_FILES, ""),
                                users=users, groups={g: 0 for u in users for g in u.groups}, home_claim="home",
                                token_url="url", hub_password="", egress=[],
                                metrics=hub_metrics_values("token", [{}], annotate=True) if metrics else None,
                                hub_ldap=hub_ldap)
    merged = chart_values.with_user_values(program, user_values, *chart)
    if hub_ldap is not None:
        return
    admins = ((merged["hub"].get("config") or {}).get("Authenticator") or {}).get("admin_users") or []
    outside = sorted(set(admins) - {u.name for u in users})
    if outside:
        raise ConfigError(f"{chart_values.KEY}.hub.config.Authenticator.admin_users",
                          f"names {', '.join(outside)}, not in `users`: JupyterHub lets admins log in, but their "
                          "servers could not start", "add them to `users`, or remove them from admin_users")


@dataclass
class JupyterHubArgs:
    namespace: pulumi.Input[str]
    chart_repo: str
    chart_version: str
    chart: tuple[dict, dict]  # the chart's default values and values schema (chart_values.load_chart)
    notebook_image: pulumi.Input[str]  # slurm-jupyter-notebook by digest
    image_tag: str  # the tag the images were pushed with (the digest is what pins them)
    config_files: Mapping[str, str]  # non-secret Slurm files (SlurmConfig.files)
    slurm_env: Mapping[str, str]  # SlurmConfig.client_env
    users: Sequence[directory.User]  # StackConfig.directory
    groups: Mapping[str, int]
    home_claim: pulumi.Input[str]  # the shared home (ReadWriteMany)
    token_url: pulumi.Input[str]  # TokenService.url
    egress: Sequence[dict]  # of the user pods: components/network.py Graph.egress(HUB_USERS)
    rotation: str
    image_pull_secret: Optional[pulumi.Input[str]] = None  # components.registry.pull_secret()
    user_values: Mapping[str, Any] = field(default_factory=dict)  # config jupyterhub.values(File)
    values_secret: bool = False  # the user's values came from a secret config key
    user_servers: Optional[pulumi.Resource] = None  # components/user_servers.UserServers: deleted after the Release
    metrics: Optional[Mapping[str, Any]] = None  # hub_metrics_values(), with config metrics.enabled
    hub_ldap: Optional[HubLdap] = None  # config `ldap`: logins and each user's ids from the site's directory


class JupyterHub(pulumi.ComponentResource):
    """Outputs: `url` (in-cluster), `password` (secret; of every directory user; None with config `ldap`, whose users
    log in with their directory password), `release_name`."""

    def __init__(self, name: str, args: JupyterHubArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:JupyterHub", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.password: Optional[pulumi.Output[str]] = None
        if args.hub_ldap is None:
            password = random.RandomPassword(f"{name}-password", length=PASSWORD_LENGTH, special=False,
                                             keepers={"rotation": args.rotation}, opts=child)
            self.password = pulumi.Output.secret(password.result)
        image = pulumi.Output.from_input(args.notebook_image).apply(lambda ref: split_image_ref(ref, args.image_tag))
        program = jupyterhub_values(
            image_name=image[0], image_tag=image[1], config_files=args.config_files, slurm_env=args.slurm_env,
            users=args.users, groups=args.groups, home_claim=args.home_claim, token_url=args.token_url,
            hub_password=self.password or "",
            egress=args.egress, image_pull_secret=args.image_pull_secret, metrics=args.metrics,
            hub_ldap=args.hub_ldap)
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
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(
                additional_secret_outputs=["values"], depends_on=args.user_servers)),
        )
        self.release_name = release.name
        self.url = pods.service_url(PROXY_SERVICE, args.namespace)
        self.register_outputs({"url": self.url, "password": self.password, "release_name": self.release_name})
