"""An existing Slurm cluster ("the site") as the stack sees it: the facts it reads from the site's slurm.conf.

The client pods need the site's controller address and ports (NetworkPolicy egress; `SLURM_CONF_SERVER` for
configless clients) and the site must accept what they bring: munge credentials (the clients hold the site's
munge key) or, with `AuthType=auth/slurm`, Slurm's own (the clients hold the site's slurm.key and run sackd), JWTs (slurmrestd and JupyterHub users' tokens need `AuthAltTypes=auth/jwt`) and, for configless
clients, configuration requests (`SlurmctldParameters=enable_configless`). Keys and defaults: slurm.conf(5).

Pure Python: `describe()` and `problems()` raise or return plain text; components/config/ names the config keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from components.slurm_files import (
    AUTH_MUNGE,
    AUTH_SLURM,
    SLURMCTLD_PORT,
    SLURMDBD_PORT,
    TOKEN_LIFETIME_S,
    parse_slurm_conf,
)

JWT = "auth/jwt"
SLURMDBD = "accounting_storage/slurmdbd"
CONFIGLESS = "enable_configless"
_HOST = re.compile(r"^([^()\s,]+)(?:\(([^()\s,]+)\))?$")  # SlurmctldHost=name or name(address)
_PORTS = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")  # SlurmctldPort=6817 or a range 6817-6820


@dataclass(frozen=True)
class Site:
    cluster_name: Optional[str]  # ClusterName (Slurm requires it; None if the file lacks it)
    controller: str  # the address clients connect to: SlurmctldHost's address in parentheses, else its name
    slurmctld_ports: tuple[int, ...]  # every port of SlurmctldPort (clients pick one of a range)
    slurmdbd: Optional[tuple[str, int]]  # (AccountingStorageHost, AccountingStoragePort) with slurmdbd accounting
    auth_type: str  # AuthType
    alt_auth_types: tuple[str, ...]  # AuthAltTypes
    configless: bool  # SlurmctldParameters has enable_configless
    includes: tuple[str, ...]  # the files of its Include lines (a copy of slurm.conf does not carry them)
    token_params: tuple[str, ...] = ()  # AuthAltParameters, each `key` or `key=value`, lowercase

    @property
    def conf_server(self) -> str:
        """host:port for configless clients (Slurm's SLURM_CONF_SERVER)."""
        return f"{self.controller}:{self.slurmctld_ports[0]}"

    @property
    def ports(self) -> list[int]:
        """The TCP ports clients connect to: slurmctld's, then slurmdbd's (sacct, sacctmgr)."""
        return [*self.slurmctld_ports, *([self.slurmdbd[1]] if self.slurmdbd else [])]


def describe(slurm_conf: str) -> Site:
    """The facts of a site's slurm.conf text. ValueError (what is wrong, in slurm.conf's words) if it has no
    SlurmctldHost, a malformed one, or a port that is not one."""
    conf = parse_slurm_conf(slurm_conf)
    line = conf.get("slurmctldhost") or conf.get("controlmachine")
    if not line:
        raise ValueError("it has no SlurmctldHost line, so clients cannot find the controller")
    host = _HOST.match(line)
    if not host:
        raise ValueError(f"SlurmctldHost={line} is not NAME or NAME(ADDRESS)")
    if "controlmachine" in conf and "controladdr" in conf:  # the older spelling keeps the address apart
        controller = conf["controladdr"]
    else:
        controller = host.group(2) or host.group(1)
    slurmdbd = None
    if conf.get("accountingstoragetype", "").lower() == SLURMDBD:
        if not conf.get("accountingstoragehost"):
            raise ValueError(f"AccountingStorageType={SLURMDBD} without AccountingStorageHost: clients (sacct) "
                             "cannot find slurmdbd")
        slurmdbd = (conf["accountingstoragehost"], _ports("AccountingStoragePort",
                                                          conf.get("accountingstorageport"), SLURMDBD_PORT)[0])
    return Site(
        cluster_name=conf.get("clustername"),
        controller=controller,
        slurmctld_ports=_ports("SlurmctldPort", conf.get("slurmctldport"), SLURMCTLD_PORT),
        slurmdbd=slurmdbd,
        auth_type=conf.get("authtype", AUTH_MUNGE).lower(),
        alt_auth_types=_list(conf.get("authalttypes", "")),
        configless=CONFIGLESS in _list(conf.get("slurmctldparameters", "")),
        includes=tuple(words[1] for line in slurm_conf.splitlines()
                       if len(words := line.split("#", 1)[0].split()) > 1 and words[0].lower() == "include"),
        token_params=_list(conf.get("authaltparameters", "")),
    )


def unbounded_tokens(site: Site) -> Optional[str]:
    """A sentence for `pulumi preview` if the site takes JWTs and lets its users mint them for longer than the stack's
    token lifetime (`scontrol token lifespan=...`: a leaked token then outlives the user's access), else None.
    slurm.conf(5) AuthAltParameters `disable_token_creation`, or `max_token_lifespan=SECONDS` up to
    TOKEN_LIFETIME_S, bounds them."""
    if JWT not in site.alt_auth_types:
        return None
    params = dict((param.split("=", 1) + [""])[:2] for param in site.token_params)
    if "disable_token_creation" in params:
        return None
    limit = params.get("max_token_lifespan", "")
    if limit.isdigit() and int(limit) <= TOKEN_LIFETIME_S:
        return None
    what = f"tokens of up to {limit} s" if limit.isdigit() else "tokens of any lifetime"
    return (f"its users can mint Slurm {what} (scontrol token lifespan=...): set max_token_lifespan={TOKEN_LIFETIME_S} "
            "(or disable_token_creation) in AuthAltParameters of its slurm.conf")


def problems(site: Site, *, jwt_clients: tuple[str, ...], configless: bool) -> list[str]:
    """What keeps the deployed clients from working with `site`: each a sentence naming the slurm.conf line.
    `jwt_clients`: the deployed parts that authenticate with JWTs; `configless`: clients fetch the files."""
    found = []
    if site.auth_type not in (AUTH_MUNGE, AUTH_SLURM):
        found.append(f"AuthType={site.auth_type}, but the clients authenticate with {AUTH_MUNGE} or {AUTH_SLURM}")
    if jwt_clients and JWT not in site.alt_auth_types:
        found.append(f"no {JWT} in AuthAltTypes, so the cluster refuses the JWTs of {' and '.join(jwt_clients)}")
    if configless and not site.configless:
        found.append(f"no {CONFIGLESS} in SlurmctldParameters, so the controller does not serve its files to "
                     "configless clients")
    if site.includes and not configless:
        found.append(f"Include {', '.join(site.includes)}: the clients get a copy of slurm.conf alone, without "
                     "the files it includes")
    return found


def _list(value: str) -> tuple[str, ...]:
    """A comma-separated slurm.conf value, lowercase, without blanks."""
    return tuple(v for v in (v.strip().lower() for v in value.split(",")) if v)


def _ports(name: str, value: Optional[str], default: int) -> tuple[int, ...]:
    match = _PORTS.match(value or str(default))
    low, high = (int(match.group(1)), int(match.group(2) or match.group(1))) if match else (0, -1)
    if not 0 < low <= high <= 65535:
        raise ValueError(f"{name}={value} is not a port or a range of ports LOW-HIGH (1-65535)")
    return tuple(range(low, high + 1))
