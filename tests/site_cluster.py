"""The site: an outside Slurm cluster that the program does not deploy (issue 12), as three podman containers.

`ctl` (munged, MariaDB, slurmdbd, slurmctld), `cn1` and `cn2` (munged, slurmd) run on a podman network of their
own with static addresses, outside Kubernetes; clients (pods, other podman networks) reach them through the host.
The site's files are `tests/site/` (slurm.conf, slurmdbd.conf, cgroup.conf with the addresses filled in, and the
boot script `site-host`); the slurm-single-node image of the Slurm version under test serves only as a set of
Debian's Slurm packages (its entrypoint is replaced by `site-host`). Its munge and JWT keys and database password
are generated per start into a private temp dir, deleted at stop. With `auth="slurm"` (Slurm 25.05+) the site
authenticates with Slurm's own auth/slurm and cred/slurm instead of munge: one generated slurm.key, no munged.

Its users, by default (a libnss-extrausers directory mounted in every host), are alice 2001 and bob 2002 in group
research 3000, as in Pulumi.cluster.yaml. With `ldap=` (issue 23) they are instead the users of an LDAP directory
(tests/ldap_directory.py's slapd), which every host resolves through nslcd (the image's NSS: files extrausers ldap)
from an nslcd.conf rendered as the stack renders its own (components/ldap.py), by the server's address
(ldaps://IP, checked against the test CA). Either way their homes are in the site's /home, a host directory mounted
in every host (0700, theirs), and accounting has them in the account `research`: what a site does for its users
itself (tests/site/admit-users; at boot for every user the directory lists, and `admit(name)` for one added later).

    with SiteCluster() as site:          # or site.start() ... site.stop()
        site.exec("sinfo")

    # The site and the directory on the site's network: both reachable from pods on this host, the directory as
    # ldaps://IP (site.ldap.ip_uri) with its CA (site.ldap.ca_cert), the site's hosts resolving its users.
    with SiteCluster(ldap=LdapDirectory(tls=True)) as site:
        site.exec("sbatch", "--wrap", "id", user="christopher")   # runs as uid 54321 on cn1 or cn2
        site.ldap.add_user("dora", 10007); site.admit("dora")     # a new user: resolves at once; home, association
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import string
import subprocess
import tempfile
import time
from typing import Optional

from components.slurm_files import parse_slurm_conf, version_facts
from tests.images.slurm_containers import CommandFailed, WaitTimeout, build_image, podman, slurm_version, wait_until
from tests.ldap_directory import LdapDirectory, write_ldap_directory
from tests.project_env import ROOT

SITE_FILES = os.path.join(ROOT, "tests", "site")
HOSTS = ("ctl", "cn1", "cn2")
HOST_INDEX = {"ctl": 10, "cn1": 11, "cn2": 12}  # each host's address: the subnet's address number N
USERS = {"alice": 2001, "bob": 2002}  # Pulumi.cluster.yaml's users, each with a private group of its uid
GROUP = ("research", 3000)
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")


class SiteCluster:
    """The site. `version`: Slurm version (default $SLURM_VERSION or the project's); `subnet`: its podman network
    (hosts at .10 ctl, .11 cn1, .12 cn2; default $SCI_SITE_SUBNET or 10.89.77.0/24: two sites at once need two); `name`: prefix of its containers and network (unique by default);
    `image`: the slurm-single-node image to take Slurm from (default: built/cached by build_image);
    `timeout`: seconds start() waits for both nodes to be idle; `auth`: "munge" (AuthType=auth/munge) or "slurm"
    (AuthType=auth/slurm, CredType=cred/slurm: a slurm.key, no munged).
    `ldap`: the site's users from this LDAP directory instead of alice and bob (the static directory is then empty).
    Not started yet: start() starts it on the site's network (after creating it, before the hosts) and stop() removes
    it, so the directory is reachable wherever the site is (pods on this host included). Already started (on another
    network): the site uses it as it is (it must route to the site's network), and the caller removes it.
    `ldap_uri`: the server as the hosts' nslcd reaches it (default ldap.ip_uri: ldaps://IP with TLS, checked against
    its CA; the hosts also map ldap.hostname to the address, for ldap.ldaps_uri).

    After start(): `slurm_conf` (text), `slurm_conf_path` (host file, what a client copies), `munge_key` and
    `jwt_key` (bytes; with auth "slurm" `slurm_key` instead of `munge_key`), `controller_addr`, `conf_server`
    ("addr:port", for configless clients), `ports` (slurmctld's
    ports then slurmdbd's), `slurmctld_ports`, `slurmdbd_port`, `home` (host directory mounted as the site's
    /home), `directory` (host directory with the site's passwd and group files, libnss-extrausers format; with
    `ldap` also nslcd.conf and the CA, ldap-ca.crt), `network`, `addresses` ({host: address}), `timings` (seconds:
    "idle" = start() to both nodes idle), `ldap` (the directory or None), `admitted` (with `ldap`: the names the site
    admitted at boot, sorted).
    """

    def __init__(self, version: Optional[str] = None, subnet: Optional[str] = None, name: Optional[str] = None,
                 image: Optional[str] = None, timeout: float = 90, auth: str = "munge",
                 ldap: Optional[LdapDirectory] = None, ldap_uri: Optional[str] = None):
        assert auth in ("munge", "slurm"), auth
        self.auth = auth
        self.ldap, self.ldap_uri = ldap, ldap_uri
        self._owns_ldap = False
        self.admitted: list[str] = []
        self.version = version or slurm_version()
        self.facts = version_facts(self.version)
        net = ipaddress.ip_network(subnet or os.environ.get("SCI_SITE_SUBNET", "10.89.77.0/24"))
        self.subnet, self.gateway = str(net), str(net[1])
        self.addresses = {h: str(net[i]) for h, i in HOST_INDEX.items()}
        self.name = name or f"sci-site-{secrets.token_hex(3)}"
        self.network = f"{self.name}-net"
        self.containers = {h: f"{self.name}-{h}" for h in HOSTS}
        self.image, self.timeout = image, timeout
        self.controller_addr = self.addresses["ctl"]
        self.dir = ""
        self.timings: dict[str, float] = {}

    # --- life cycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> "SiteCluster":
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> "SiteCluster":
        """Start the three hosts and wait until both nodes are idle in sinfo. On failure, stop() and raise
        (WaitTimeout/CommandFailed naming what did not come up, with the hosts' logs)."""
        if self.image is None:
            self.image, _ = build_image("slurm-single-node", self.version)
        t0 = time.monotonic()
        try:
            self._write_files()
            podman("network", "create", "--subnet", self.subnet, "--gateway", self.gateway, self.network)
            if self.ldap:
                self._start_ldap()
            self._run("ctl", "controller")
            for node in ("cn1", "cn2"):
                self._run(node, "node", node)
            wait_until(self._nodes_idle, self.timeout, "the site's nodes cn1 and cn2 to be idle in sinfo", self.logs)
        except BaseException:
            self.stop()
            raise
        self.timings["idle"] = time.monotonic() - t0
        if self.ldap:
            out = podman("logs", self.containers["ctl"]).stdout
            self.admitted = next(line.split()[1:] for line in out.splitlines() if line.startswith("admitted "))
        return self

    def _start_ldap(self):
        """The directory (started here on the site's network unless it runs already) and the hosts' nslcd.conf."""
        if not self.ldap.ip:
            self.ldap.network = self.network
            self._owns_ldap = True
            self.ldap.start()
        write_ldap_directory(self.directory, self.ldap, self.ldap_uri or self.ldap.ip_uri)

    def stop(self):
        """Remove the containers, the network and the temp dir (keys, files, homes); AssertionError if any is left."""
        for c in self.containers.values():
            podman("rm", "-f", "-t", "5", c, check=False, timeout=60)
        if self._owns_ldap:
            self.ldap.remove()
            self.ldap.ip, self._owns_ldap = "", False
        podman("network", "rm", "-f", self.network, check=False)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        left = [c for c in self.containers.values() if podman("container", "exists", c, check=False).returncode == 0]
        left += [self.network] if podman("network", "exists", self.network, check=False).returncode == 0 else []
        left += [self.dir] if self.dir and os.path.exists(self.dir) else []
        assert not left, f"the site was not removed entirely: {left}"

    def _write_files(self):
        self.dir = tempfile.mkdtemp(prefix="sci-site-")  # 0700: keys and the database password
        for sub in ("etc", "keys", "directory", "home"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o755 if sub == "home" else 0o700)
        self.etc, self.keys = os.path.join(self.dir, "etc"), os.path.join(self.dir, "keys")
        self.home, self.directory = os.path.join(self.dir, "home"), os.path.join(self.dir, "directory")
        os.chmod(self.home, 0o755)
        os.chmod(self.directory, 0o755)
        a = self.addresses
        values = {"ctl_addr": a["ctl"], "cn1_addr": a["cn1"], "cn2_addr": a["cn2"],
                  "db_password": secrets.token_urlsafe(24).replace("-", "_"),
                  "auth_type": f"auth/{self.auth}",
                  "auth_lines": "AuthType=auth/munge" if self.auth == "munge" else "AuthType=auth/slurm\nCredType=cred/slurm",
                  "cgroup_plugin": f"CgroupPlugin={self.facts.cgroup_plugin}" if self.facts.cgroup_plugin else ""}
        for f in ("slurm.conf", "cgroup.conf", "slurmdbd.conf"):
            with open(os.path.join(SITE_FILES, f)) as src:
                _write(os.path.join(self.etc, f), string.Template(src.read()).substitute(values).encode(),
                       0o600 if f == "slurmdbd.conf" else 0o644)
        self.slurm_conf_path = os.path.join(self.etc, "slurm.conf")
        with open(self.slurm_conf_path) as f:
            self.slurm_conf = f.read()
        conf = parse_slurm_conf(self.slurm_conf)
        first, _, last = conf["slurmctldport"].partition("-")
        self.slurmctld_ports = list(range(int(first), int(last or first) + 1))
        self.slurmdbd_port = int(conf["accountingstorageport"])
        self.ports = [*self.slurmctld_ports, self.slurmdbd_port]
        self.conf_server = f"{self.controller_addr}:{self.slurmctld_ports[0]}"
        self.jwt_key = secrets.token_bytes(32)
        self.auth_key_file = f"{self.auth}.key"  # munge.key or slurm.key: 1024 random bytes, as Slurm's docs make both
        if self.auth == "munge":
            self.munge_key = secrets.token_bytes(1024)
            _write(os.path.join(self.keys, "munge.key"), self.munge_key, 0o400)
        else:
            self.slurm_key = secrets.token_bytes(1024)
            _write(os.path.join(self.keys, "slurm.key"), self.slurm_key, 0o400)
        _write(os.path.join(self.keys, "jwt_hs256.key"), self.jwt_key, 0o400)
        if self.ldap:  # the users come from the directory: nothing static (nslcd.conf is written in start())
            for f in ("passwd", "group"):
                _write(os.path.join(self.directory, f), b"", 0o644)
            return
        group, gid = GROUP
        passwd = "".join(f"{u}:x:{uid}:{uid}:{u}:/home/{u}:/bin/bash\n" for u, uid in USERS.items())
        groups = "".join(f"{u}:x:{uid}:\n" for u, uid in USERS.items()) + f"{group}:x:{gid}:{','.join(USERS)}\n"
        _write(os.path.join(self.directory, "passwd"), passwd.encode(), 0o644)
        _write(os.path.join(self.directory, "group"), groups.encode(), 0o644)
        for u, uid in USERS.items():
            os.makedirs(os.path.join(self.home, u), mode=0o700)
            os.chown(os.path.join(self.home, u), uid, uid)

    def _run(self, host: str, *args: str):
        mounts = [(SITE_FILES, "/site"), (self.directory, "/var/lib/extrausers"),
                  (os.path.join(self.etc, "slurm.conf"), "/run/site/etc/slurm.conf"),
                  (os.path.join(self.etc, "cgroup.conf"), "/run/site/etc/cgroup.conf"),
                  (os.path.join(self.keys, self.auth_key_file), f"/run/site/keys/{self.auth_key_file}")]
        if host == "ctl":
            mounts += [(os.path.join(self.etc, "slurmdbd.conf"), "/run/site/etc/slurmdbd.conf"),
                       (os.path.join(self.keys, "jwt_hs256.key"), "/run/site/keys/jwt_hs256.key")]
        cmd = ["run", "-d", "--no-healthcheck", "--name", self.containers[host], "--hostname", host,
               "--network", self.network, "--ip", self.addresses[host]]
        for h, addr in self.addresses.items():
            cmd += ["--add-host", f"{h}:{addr}"]
        if self.ldap:
            cmd += self.ldap.add_host
        for src, dst in mounts:
            cmd += ["-v", f"{src}:{dst}:ro"]
        cmd += ["-v", f"{self.home}:/home", "--entrypoint", "/site/site-host", self.image, *args]
        podman(*cmd)

    # --- state ----------------------------------------------------------------------------------------------------
    def logs(self, tail: int = 40) -> str:
        out = []
        for c in self.containers.values():
            p = podman("logs", "--tail", str(tail), c, check=False)
            out.append(f"--- podman logs {c}:\n{p.stdout}{p.stderr}")
        return "\n".join(out)

    def _nodes_idle(self) -> bool:
        for h, c in self.containers.items():
            status = podman("inspect", "--format", "{{.State.Status}}", c, check=False).stdout.strip()
            if status != "running":
                raise WaitTimeout(f"the site's host {h} is {status or 'gone'}\n{self.logs()}")
        out = self.exec("timeout", "5", "sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout
        return dict(line.split() for line in out.splitlines() if line.strip()) == {"cn1": "idle", "cn2": "idle"}

    def exec(self, *cmd: str, user: Optional[str] = None, check: bool = True, timeout: float = 30,
             input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run CMD in ctl (as `user`, default root; a name of the site's users or uid[:gid]); CommandFailed on a
        non-zero exit when `check`."""
        if user and not user.replace(":", "").isdigit():  # podman resolves -u only in the container's /etc/passwd
            user = self.ids(user)
        return podman("exec", "-i", *(["-u", user] if user else []), self.containers["ctl"], *cmd,
                      check=check, timeout=timeout, input=input)

    def exec_on(self, host: str, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run CMD as root in one of the hosts (ctl, cn1, cn2)."""
        return podman("exec", self.containers[host], *cmd, check=check, timeout=timeout)

    def ids(self, name: str) -> str:
        """"uid:gid" of one of the site's users, as the site resolves the name (CommandFailed if it does not)."""
        if not self.ldap and name in USERS:
            return f"{USERS[name]}:{USERS[name]}"
        fields = self.exec("getent", "passwd", name).stdout.split(":")
        return f"{fields[2]}:{fields[3]}"

    def admit(self, *names: str) -> None:
        """What the site does for a new user of its directory (tests/site/admit-users on ctl): a home in /home
        (0700, theirs) and an association in `research`. CommandFailed if a name does not resolve on the site."""
        self.exec("/site/admit-users", *names)

    def token(self, user: str, lifespan: int = 600) -> str:
        """A JWT for `user` minted on the site (scontrol token), valid `lifespan` seconds."""
        out = self.exec("scontrol", "token", f"username={user}", f"lifespan={lifespan}").stdout.strip()
        return out.split("=", 1)[1]

    def sacct_state(self, job_id) -> str:
        """The job's State in the site's accounting ("" while slurmdbd does not know it yet)."""
        out = self.exec("timeout", "10", "sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State",
                        check=False).stdout.strip()
        return out.splitlines()[0].split()[0] if out else ""

    def nodes_of(self, job_id) -> list[str]:
        """The nodes the job ran on, from the site's accounting (sorted). Read until they are as many as its NNodes:
        22.05's slurmdbd may still hold only the first node in the job's NodeList when it is already COMPLETED."""
        def nodes():
            line = self.exec("timeout", "10", "sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "NodeList,NNodes"
                             ).stdout.strip().splitlines()[0]
            nodelist, count = line.split("|")
            names = sorted(self.exec("scontrol", "show", "hostnames", nodelist).stdout.split())
            return len(names) == int(count) and names
        return wait_until(nodes, 30, f"job {job_id}'s NodeList to hold its NNodes nodes in sacct")

    def wait_job(self, job_id, state: str = "COMPLETED", timeout: float = 60) -> str:
        """Wait until the job is `state` in the site's sacct; WaitTimeout at once if it ends otherwise."""
        def done():
            s = self.sacct_state(job_id)
            if s in FINAL_STATES and s != state:
                raise WaitTimeout(f"job {job_id} ended {s} on the site, expected {state}\n{self.logs()}")
            return s == state and s
        return wait_until(done, timeout, f"job {job_id} to be {state} in the site's sacct", self.logs, interval=0.2)


def _write(path: str, data: bytes, mode: int):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


__all__ = ["SiteCluster", "CommandFailed", "USERS", "GROUP"]
