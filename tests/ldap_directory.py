"""The site's LDAP directory (issue 23) for the tests: a real OpenLDAP server (Debian's slapd) in a podman container,
filled with posixAccount users and posixGroup groups, optionally with TLS from a test CA made at start.

For tests/images and tests/e2e alike: the image (tests/ldap/: Dockerfile and its entrypoint ldap-host) is built for
the Slurm version under test's Debian suite, and the container runs on a podman network the caller names, at a
fixed address of it (so clients keep reaching it at the same `uri` when slapd is stopped and started again).

    with LdapDirectory(network) as ldap:         # or ldap.start() ... ldap.remove()
        ldap.uri, ldap.base, ldap.bind_dn, ldap.bind_password, ldap.ca_cert (with tls=True)
        ldap.ip, ldap.ip_uri                     # by address: ldaps://IP (the certificate names the IP too)
        ldap.add_user("dave", 10004); ldap.remove_user("dave")   # add_user(..., home="/u/dave"): its homeDirectory
        ldap.stop_slapd(); ldap.start_slapd()    # the directory down (connections refused) and back

USERS and GROUPS are what it holds at start: names longer than 8 characters, a uid nothing in the images has, and
two hostile entries (an image user's name, uid 0).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Optional

from components import ldap as ldap_files
from components.slurm_files import version_facts
from tests.images.slurm_containers import CommandFailed, podman, podman_build, run, slurm_version, wait_until
from tests.project_env import ROOT

LDAP_FILES = os.path.join(ROOT, "tests", "ldap")
BASE = "dc=sci,dc=test"
PEOPLE = f"ou=people,{BASE}"
GROUPS_OU = f"ou=groups,{BASE}"
BIND_DN = f"cn=nslcd,ou=services,{BASE}"
HOSTNAME = "ldap.sci.test"  # the server certificate's name; clients map it to the address (--add-host)


@dataclass(frozen=True)
class DirUser:
    name: str
    uid: int
    password: str = ""  # default: the name reversed (a test's login)
    groups: tuple[str, ...] = ()  # further groups, by name
    home: str = ""  # the entry's homeDirectory (default /home/NAME)

    @property
    def login_password(self) -> str:
        return self.password or self.name[::-1] + "-pw"


# Private group per user (gid = uid), as the static directory does. `christopher` is longer than 8 characters
# (ls, ps and sacct truncate or widen such names); 54321 is a uid and gid no image has (they use 0-999, 1000).
USERS = (DirUser("alice", 10001, groups=("physics", "hpcusers")),
         DirUser("bob", 10002, groups=("hpcusers",)),
         DirUser("christopher", 54321, groups=("physics", "hpcusers")),
         DirUser("eve", 10005),  # in no further group: outside the login group
         # Hostile entries: an image user's name (NSS answers the image's munge first) and uid 0 (nslcd resolves no
         # directory uid below 1001: components/ldap.py nss_min_uid).
         DirUser("munge", 10666), DirUser("toor", 0))
GROUPS = {"physics": 13000, "hpcusers": 13001}
LOGIN_GROUP = "hpcusers"


def user_ldif(user: DirUser) -> str:
    """The entries of one user: the posixAccount and its private posixGroup."""
    return (f"dn: uid={user.name},{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
            f"uid: {user.name}\ncn: {user.name}\nsn: {user.name}\nuidNumber: {user.uid}\ngidNumber: {user.uid}\n"
            f"homeDirectory: {user.home or '/home/' + user.name}\nloginShell: /bin/bash\n"
            f"userPassword: {user.login_password}\n\n"
            f"dn: cn={user.name},{GROUPS_OU}\nobjectClass: posixGroup\ncn: {user.name}\ngidNumber: {user.uid}\n\n")


def directory_ldif(bind_password: str, users=USERS, groups=GROUPS) -> str:
    """The whole directory: base, organisational units, the service account nslcd binds as, users, groups."""
    out = (f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: sci\no: sci test site\n\n"
           + "".join(f"dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}\n\n"
                     for ou in ("people", "groups", "services"))
           + f"dn: {BIND_DN}\nobjectClass: applicationProcess\nobjectClass: simpleSecurityObject\ncn: nslcd\n"
             f"userPassword: {bind_password}\n\n")
    out += "".join(user_ldif(u) for u in users)
    for name, gid in groups.items():
        members = "".join(f"memberUid: {u.name}\n" for u in users if name in u.groups)
        out += f"dn: cn={name},{GROUPS_OU}\nobjectClass: posixGroup\ncn: {name}\ngidNumber: {gid}\n{members}\n"
    return out


def make_test_ca(directory: str, hostname: str = HOSTNAME, ip: Optional[str] = None) -> None:
    """ca.crt, server.crt and server.key (for `hostname`, and for the address `ip` too, so that clients that cannot
    map the name, such as Kubernetes pods, check it as ldaps://IP) in `directory`, made now with openssl; never kept.
    The address is both an IP entry of subjectAltName (what libldap, so nslcd, and Python's ssl match) and a DNS
    entry: ldap3 2.9.1 (the hub's) on Python 3.12+ matches with its own backport of ssl.match_hostname, which reads
    only DNS entries, and refuses ldaps://IP with the IP entry alone (tests/images/test_site_ldap.py)."""
    def ssl(*args: str) -> None:
        run("openssl", *args, timeout=60)
    d = directory
    # keyUsage on the CA and the key identifiers on the server's: Python 3.13's default TLS context (the hub's ldap3)
    # verifies strictly (VERIFY_X509_STRICT) and refuses a CA without them, as a site's real CA has them.
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sci test CA",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hostname}", "-keyout", f"{d}/server.key",
        "-out", f"{d}/server.csr")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write(f"subjectAltName=DNS:{hostname}{f',IP:{ip},DNS:{ip}' if ip else ''}\nextendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    ssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", f"{d}/ext.cnf", "-out", f"{d}/server.crt")
    os.remove(f"{d}/ca.key")
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)


def build_ldap_image(version: Optional[str] = None) -> str:
    """localhost/sci-ldap:<suite>[$SCI_IMAGE_TAG_SUFFIX], built from tests/ldap (cached layers reused)."""
    suite = version_facts(version or slurm_version()).debian_suite
    tag = f"localhost/sci-ldap:{suite}{os.environ.get('SCI_IMAGE_TAG_SUFFIX', '')}"
    podman_build(LDAP_FILES, tag, "--build-arg", f"DEBIAN_SUITE={suite}", ca_certs=False)
    return tag


def free_address(network: str, taken_from: int = 200) -> str:
    """An address of the podman network `network` from .`taken_from` up that no container there has."""
    subnet = podman("network", "inspect", "--format", "{{range .Subnets}}{{.Subnet}} {{end}}", network).stdout.split()[0]
    used = set(podman("network", "inspect", "--format",
                      "{{range .Containers}}{{range .Interfaces}}{{range .Subnets}}{{.IPNet.IP}} "
                      "{{end}}{{end}}{{end}}", network, check=False).stdout.split())
    net = ipaddress.ip_network(subnet)
    for i in range(taken_from + secrets.randbelow(40), net.num_addresses - 2):
        if str(net[i]) not in used:
            return str(net[i])
    raise CommandFailed(f"no free address in {subnet} of {network}")


class LdapDirectory:
    """The directory's server on `network`. `tls`: also ldaps:// with a test CA (`ca_cert`: its file) whose server
    certificate names both `hostname` and the address `ip`. `network` may be given later, before start(): a
    SiteCluster given an LdapDirectory that is not started starts it on the site's own network."""

    def __init__(self, network: Optional[str] = None, tls: bool = False, version: Optional[str] = None, users=USERS, groups=GROUPS):
        self.network, self.tls, self.version = network, tls, version
        self.users, self.groups = tuple(users), dict(groups)
        self.name = f"sci-ldap-{secrets.token_hex(3)}"
        self.bind_password = secrets.token_urlsafe(12)
        self.admin_password = secrets.token_urlsafe(12)
        self.base, self.bind_dn, self.hostname = BASE, BIND_DN, HOSTNAME
        self.dir = ""
        self.ip = ""

    @property
    def uri(self) -> str:
        return f"ldap://{self.hostname}"

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://{self.hostname}"

    @property
    def ip_uri(self) -> str:
        """The server by its address (after start()): ldaps://IP with tls, else ldap://IP. For clients that cannot
        map the name (Kubernetes pods: no --add-host); the certificate names the address."""
        return f"{'ldaps' if self.tls else 'ldap'}://{self.ip}"

    @property
    def ca_cert(self) -> str:
        return os.path.join(self.dir, "tls", "ca.crt")

    @property
    def add_host(self) -> tuple[str, str]:
        """The podman run arguments that let a container reach the server by its name."""
        return ("--add-host", f"{self.hostname}:{self.ip}")

    def __enter__(self) -> "LdapDirectory":
        return self.start()

    def __exit__(self, *exc):
        self.remove()

    def start(self) -> "LdapDirectory":
        if not self.network:
            raise ValueError("LdapDirectory.start(): no network (give one, or the LdapDirectory to a SiteCluster)")
        image = build_ldap_image(self.version)
        self.ip = free_address(self.network)  # first: the certificate names it
        self.dir = tempfile.mkdtemp(prefix="sci-ldap-")
        os.chmod(self.dir, 0o755)
        with open(os.path.join(self.dir, "directory.ldif"), "w") as f:
            f.write(directory_ldif(self.bind_password, self.users, self.groups))
        os.chmod(os.path.join(self.dir, "directory.ldif"), 0o644)
        if self.tls:
            os.makedirs(os.path.join(self.dir, "tls"))
            make_test_ca(os.path.join(self.dir, "tls"), self.hostname, self.ip)
        podman("run", "-d", "--name", self.name, "--hostname", self.hostname, "--network", self.network,
               "--ip", self.ip, "-v", f"{self.dir}:/ldap:ro", "-e", f"LDAP_BASE={self.base}",
               "-e", f"LDAP_ADMIN_PW={self.admin_password}", "-e", f"LDAP_BIND_DN={self.bind_dn}", image)
        try:
            wait_until(self.answers, 30, f"slapd in {self.name} to answer", self.logs)
        except Exception:
            self.remove()
            raise
        return self

    def answers(self) -> bool:
        return self.search(f"(uid={self.users[0].name})", check=False).returncode == 0

    def logs(self) -> str:
        p = podman("exec", self.name, "tail", "-n", "30", "/var/log/slapd.log", check=False)
        q = podman("logs", "--tail", "30", self.name, check=False)
        return f"--- {self.name}: slapd.log\n{p.stdout}{p.stderr}\n--- podman logs\n{q.stdout}{q.stderr}"

    def search(self, filter: str, *attrs: str, check: bool = True) -> subprocess.CompletedProcess:
        """ldapsearch as the service account, over the network address (what a client does)."""
        return podman("exec", self.name, "ldapsearch", "-x", "-LLL", "-H", "ldap://127.0.0.1", "-D", self.bind_dn,
                      "-w", self.bind_password, "-b", self.base, filter, *attrs, check=check, timeout=20)

    def modify(self, tool: str, ldif: str) -> None:
        """ldapadd/ldapmodify/ldapdelete (`tool`) as the admin, `ldif` on standard input."""
        podman("exec", "-i", self.name, tool, "-x", "-H", "ldap://127.0.0.1", "-D", f"cn=admin,{self.base}",
               "-w", self.admin_password, input=ldif, timeout=20)

    def add_user(self, name: str, uid: int, groups: tuple[str, ...] = (), home: str = "") -> DirUser:
        user = DirUser(name, uid, groups=groups, home=home)
        self.modify("ldapadd", user_ldif(user))
        for g in groups:
            self.modify("ldapmodify", f"dn: cn={g},{GROUPS_OU}\nchangetype: modify\nadd: memberUid\n"
                                      f"memberUid: {name}\n")
        self.users += (user,)
        return user

    def remove_user(self, name: str) -> None:
        user = next(u for u in self.users if u.name == name)
        for g in user.groups:
            self.modify("ldapmodify", f"dn: cn={g},{GROUPS_OU}\nchangetype: modify\ndelete: memberUid\n"
                                      f"memberUid: {name}\n")
        self.modify("ldapdelete", f"uid={name},{PEOPLE}\ncn={name},{GROUPS_OU}\n")
        self.users = tuple(u for u in self.users if u.name != name)

    def stop_slapd(self) -> None:
        """slapd killed; the container (and its address) stays: connections to it are refused."""
        podman("exec", self.name, "ldap-host", "stop")

    def start_slapd(self) -> None:
        podman("exec", self.name, "ldap-host", "start", timeout=30)

    def remove(self) -> None:
        podman("rm", "-f", "-t", "2", self.name, check=False)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def write_ldap_directory(path: str, ldap: LdapDirectory, uri: Optional[str] = None) -> None:
    """The directory volume as the stack fills it with config `ldap`: no static users, nslcd.conf and the CA.
    `uri`: the server as nslcd reaches it (default ldap.ldaps_uri, by name; ldap.ip_uri by address)."""
    settings = ldap_files.Settings(uri=uri or ldap.ldaps_uri, base_dn=ldap.base, bind_dn=ldap.bind_dn,
                                   ca=open(ldap.ca_cert).read() if ldap.tls else None)
    files = {"passwd": "", "group": "", **ldap_files.directory_files(settings, ldap.bind_password)}
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(path, name), 0o400 if name == ldap_files.NSLCD_CONF_FILE else 0o644)
