"""The user directory: who may use Slurm through Jupyter, with which ids (config `users` and `groups`).

Pure Python. Every pod that needs the names (the Slurm nodes, slurmrestd, the Jupyter pods, the token service)
mounts `render_files()`' two files read-only at `EXTRAUSERS_DIR`, where the images' libnss-extrausers reads them
after their own /etc/passwd and /etc/group (nsswitch.conf `files extrausers`): a change is a new ConfigMap, not a
new image. Each user has a private primary group of the same name (Debian's convention) and a home at
`/home/<name>`, on the shared home volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

EXTRAUSERS_DIR = "/var/lib/extrausers"  # libnss-extrausers' fixed path (Debian package libnss-extrausers)
HOME_ROOT = "/home"
SHELL = "/bin/bash"

# Names and ids the images already have in /etc/passwd or /etc/group: NSS answers those first, so a directory
# entry with one of them would silently be someone else. uid/gid 1000 and group 100 are jovyan's and users' of the
# Jupyter images; below 1000 are Debian's system accounts (slurm, munge, mysql, slurmrestd, ...).
RESERVED_NAMES = frozenset({"root", "daemon", "nobody", "nogroup", "users", "slurm", "munge", "mysql",
                            "slurmrestd", "jovyan", "staff", "sudo", "adm"})
MIN_ID = 1001
MAX_ID = 60000  # Debian's dynamic range for regular accounts ends here (adduser.conf LAST_UID)
NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"  # also a Kubernetes label value and KubeSpawner's own slug
NAME_MAX = 32  # useradd's limit


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int  # of the user's private group, also named `name`
    groups: tuple[str, ...] = ()  # further groups, by name

    @property
    def home(self) -> str:
        return f"{HOME_ROOT}/{self.name}"


def problems(users: Iterable[User], groups: Mapping[str, int]) -> list[str]:
    """What is wrong with a directory, as sentences naming the user or group; empty if nothing."""
    found: list[str] = []
    names: dict[str, str] = {}  # user and group name -> what it is
    gids: dict[int, str] = {}
    uids: dict[int, str] = {}
    for u in users:
        for id_, kind, seen in ((u.uid, "uid", uids), (u.gid, "gid", gids)):
            if id_ in seen:
                found.append(f"user {u.name}'s {kind} {id_} is also {seen[id_]}'s")
            seen[id_] = f"user {u.name}"
        if u.name in names:
            found.append(f"user name {u.name} is given twice")
        names[u.name] = "user"
    for name, gid in groups.items():
        if name in names:
            found.append(f"group {name} has the name of a user (whose private group it already is)")
        if gid in gids:
            found.append(f"group {name}'s gid {gid} is also {gids[gid]}'s")
        gids[gid] = f"group {name}"
    for u in users:
        found += [f"user {u.name} is in group {g}, which is not in `groups`" for g in u.groups if g not in groups]
    return found


def render_files(users: Iterable[User], groups: Mapping[str, int]) -> dict[str, str]:
    """{"passwd": ..., "group": ...} in /etc/passwd and /etc/group format (passwd(5), group(5))."""
    users = sorted(users, key=lambda u: u.uid)
    passwd = [f"{u.name}:x:{u.uid}:{u.gid}::{u.home}:{SHELL}" for u in users]
    group = [f"{u.name}:x:{u.gid}:" for u in users]
    for name, gid in sorted(groups.items(), key=lambda g: g[1]):
        members = ",".join(u.name for u in users if name in u.groups)
        group.append(f"{name}:x:{gid}:{members}")
    return {"passwd": "\n".join(passwd) + "\n", "group": "\n".join(group) + "\n"}
