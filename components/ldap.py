"""The site's LDAP directory (config `ldap`, issue 23): what the images need to resolve its users and groups.

Pure Python. The images resolve names through NSS in the order `files extrausers ldap` (their own users, the static
directory of components/directory.py, then the site's); the `ldap` source is nslcd (Debian's libnss-ldapd), which
the image entrypoints run as root where they start (slurm-single-node, slurm-client's slurmrestd) when the stack
mounts `render_nslcd_conf()`'s file as `NSLCD_CONF_FILE` in the directory volume (dockerfiles/lib/lib.sh
nslcd_install), with the site's CA beside it as `CA_FILE`. The file holds the bind password, so it goes in a Secret.

Short timeouts, so that a directory that is down or unreachable never holds a command for minutes: nslcd gives up
connecting and binding after BIND_TIMELIMIT_S, a search after TIMELIMIT_S, and once the server has failed for
RECONNECT_RETRYTIME_S it answers "unavailable" at once, trying the server again only that often.

Listings in pages of PAGE_SIZE (a server's page limit cuts none short). Each directory user's home is HOME_ROOT/<uid>
whatever the entry's homeDirectory says: where the hub mounts it (components/jupyterhub.py) and the images make it
(homes.sh), so a site whose entries say /u/NAME still gets homes, and no entry can name another user's home.

The checks of the config table (components/config/table.py) are here too: `uri_problem`, `DN`, `filter_problem`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from components.directory import EXTRAUSERS_DIR, HOME_ROOT, MIN_ID

NSLCD_CONF_FILE = "nslcd.conf"  # in the directory volume, beside passwd and group (lib.sh NSLCD_CONF)
CA_FILE = "ldap-ca.crt"
BIND_TIMELIMIT_S = 3
TIMELIMIT_S = 5
RECONNECT_SLEEPTIME_S = 1
RECONNECT_RETRYTIME_S = 2
IDLE_TIMELIMIT_S = 50  # closes a connection before a firewall or the server's idletimeout drops it silently
# Enumerations (getent passwd, the images' directory sync) in pages of the RFC 2696 paged results control, so that
# a server's limit on one page (AD MaxPageSize 1000) cuts no listing short; the server must offer the control (AD,
# OpenLDAP, 389/FreeIPA do) and allow the bind DN the whole list (README: the site's LDAP directory).
PAGE_SIZE = 1000

URI = re.compile(r"^(ldaps?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?/?$")
# RFC 4514: attribute type (a name or an OID) = value (escaped special characters, or a #hex string), RDNs joined by
# ',' (multi-valued ones by '+'). Spaces around the separators are tolerated, as the servers do.
_VALUE = r'(?:#[0-9A-Fa-f]+|(?:[^,=+<>#;\\"\r\n]|\\[,=+<>#;\\" ]|\\[0-9A-Fa-f]{2})(?:[^,=+<>;\\"\r\n]|\\[,=+<>#;\\" ]|\\[0-9A-Fa-f]{2})*)'
_ATTR = r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)"
_RDN = rf"{_ATTR}\s*=\s*{_VALUE}(?:\s*\+\s*{_ATTR}\s*=\s*{_VALUE})*"
DN = re.compile(rf"^{_RDN}(?:\s*,\s*{_RDN})*$")


def uri_problem(text: str) -> Optional[str]:
    """What is wrong with an `ldap.uri` value (one or more ldap:// or ldaps:// URIs separated by spaces), or None."""
    uris = text.split()
    if not uris:
        return "is empty"
    schemes = set()
    for uri in uris:
        match = URI.match(uri)
        if not match:
            return f"'{uri}' is not ldap://HOST[:PORT] or ldaps://HOST[:PORT]"
        if match.group(4) and not 0 < int(match.group(4)[1:]) < 65536:
            return f"'{uri}' has no valid port"
        schemes.add(match.group(1))
    if len(schemes) > 1:
        return "mixes ldap:// and ldaps://, which nslcd cannot (one TLS setting for every server)"
    return None


def filter_problem(text: str) -> Optional[str]:
    """What is wrong with an LDAP search filter (RFC 4515: one parenthesised filter, balanced), or None."""
    if not (text.startswith("(") and text.endswith(")")):
        return "is not enclosed in parentheses"
    if "\n" in text or "\r" in text:
        return "spans lines"
    depth = 0
    for i, char in enumerate(text):  # a value's own parentheses are escaped (\\28, \\29): every one here is syntax
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return "closes a parenthesis it did not open"
        if depth == 0 and i != len(text) - 1:
            return "is not one filter: wrap several in (&...)"
    return "leaves a parenthesis open" if depth else None


@dataclass(frozen=True)
class Settings:
    """The directory as nslcd reaches it (config `ldap`, without the bind password)."""

    uri: str  # one or more, separated by spaces
    base_dn: str
    bind_dn: Optional[str] = None  # None: anonymous
    start_tls: bool = False
    ca: Optional[str] = None  # PEM text of the CA (with TLS)
    user_filter: Optional[str] = None  # ANDed with (objectClass=posixAccount)
    group_filter: Optional[str] = None  # ANDed with (objectClass=posixGroup)

    @property
    def tls(self) -> bool:
        return self.uri.split()[0].startswith("ldaps://") or self.start_tls


def render_nslcd_conf(settings: Settings, bind_password: Optional[str]) -> str:
    """nslcd.conf(5) for the images (ValueError if a value would break a line of it)."""
    values = [settings.uri, settings.base_dn, settings.bind_dn or "", bind_password or "",
              settings.user_filter or "", settings.group_filter or ""]
    if any("\n" in v or "\r" in v for v in values):
        raise ValueError("an ldap setting spans lines")
    lines = ["# nslcd.conf made by components/ldap.py from the stack's config `ldap`: do not edit",
             "uid nslcd", "gid nslcd"]
    lines += [f"uri {uri}" for uri in settings.uri.split()]
    lines.append(f"base {settings.base_dn}")
    if settings.bind_dn:
        lines += [f"binddn {settings.bind_dn}", f"bindpw {bind_password or ''}"]
    if settings.tls:
        lines += ["ssl start_tls" if settings.start_tls else "ssl on", "tls_reqcert demand",
                  f"tls_cacertfile {EXTRAUSERS_DIR}/{CA_FILE}"]
    lines += [f"filter passwd (&(objectClass=posixAccount){settings.user_filter or ''})",
              f"filter group (&(objectClass=posixGroup){settings.group_filter or ''})",
              # nslcd.conf(5) attribute mapping expression: the home from the name, not the entry's homeDirectory.
              f'map passwd homeDirectory "{HOME_ROOT}/$uid"',
              f"pagesize {PAGE_SIZE}",
              # Never a directory entry as one of the images' system users or jovyan (uid 0-1000).
              f"nss_min_uid {MIN_ID}",
              # Local users' groups (root, slurm, munge) are never looked up in the directory: a directory that is
              # down does not slow the daemons' own initgroups.
              "nss_initgroups_ignoreusers ALLLOCAL",
              f"bind_timelimit {BIND_TIMELIMIT_S}", f"timelimit {TIMELIMIT_S}",
              f"idle_timelimit {IDLE_TIMELIMIT_S}",
              f"reconnect_sleeptime {RECONNECT_SLEEPTIME_S}", f"reconnect_retrytime {RECONNECT_RETRYTIME_S}"]
    return "\n".join(lines) + "\n"


def directory_files(settings: Settings, bind_password: Optional[str]) -> dict[str, str]:
    """The Secret's files for the directory volume (pods.directory_volume): nslcd.conf, and the CA (empty without
    TLS, where nslcd.conf does not name it: the volume's files are the same either way)."""
    return {NSLCD_CONF_FILE: render_nslcd_conf(settings, bind_password),
            CA_FILE: settings.ca or "" if settings.tls else ""}
