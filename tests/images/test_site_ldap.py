"""The outside site (tests/site_cluster.py) with its users in an LDAP directory (issue 23): a real slapd
(tests/ldap_directory.py, ldaps:// with a test CA) on the site's own network, and the site's three hosts (ctl, cn1,
cn2) resolving it through nslcd by the server's address (ldaps://IP), from an nslcd.conf rendered as the stack
renders its own (components/ldap.py). The site admits the directory's users itself (home and association:
tests/site/admit-users), as a real site does.

Directory users (a name longer than 8 characters, a uid no image has) resolve on every host with their groups, a job
submitted as one of them runs on a node as their uid and the site's sacct names them, and a user added to the
directory resolves on every host at once. Control: the same site without the directory (its default) knows none of
them and refuses their job. The certificate's IP entry is what lets clients check ldaps://IP: the site's nslcd and
the hub's ldap3 (in the tests' hub image, Python 3.13) accept it at the address and refuse the same server at an
address it does not name.
"""

from __future__ import annotations

import ipaddress
import os
import time

import pytest

from tests.e2e.hub_deployment import build_hub_image
from tests.images.slurm_containers import podman, wait_until
from tests.ldap_directory import GROUPS, LdapDirectory
from tests.site_cluster import HOSTS, SiteCluster

pytestmark = pytest.mark.containers

LONG, LONG_UID = "christopher", 54321  # longer than 8 characters; a uid (and private gid) no image has
ALICE_UID = 10001  # the directory's alice (the static site's alice is 2001)
SITE_SUBNET = ipaddress.ip_network(os.environ.get("SCI_SITE_SUBNET", "10.89.77.0/24"))
# The control site runs beside the directory's site: the next subnet of the same size.
CONTROL_SUBNET = str(ipaddress.ip_network((int(SITE_SUBNET.network_address) + SITE_SUBNET.num_addresses,
                                           SITE_SUBNET.prefixlen)))
HUB_IMAGE = f"localhost/sci-e2e-jupyterhub:test{os.environ.get('SCI_IMAGE_TAG_SUFFIX', '')}"
JOB = "#!/bin/bash\nid -u\nid -un\nhostname\n"

# ldap3 2.9.1, as the hub's LDAPAuthenticator and spawn hook use it (Tls with the CA, CERT_REQUIRED), over ldaps://
# to each address given: prints "ADDRESS ok" or "ADDRESS refused: ERROR".
LDAP3_CHECK = """
import ssl, sys
from ldap3 import Connection, Server, Tls
ca, dn, pw = sys.argv[1:4]
for host in sys.argv[4:]:
    tls = Tls(ca_certs_file=ca, validate=ssl.CERT_REQUIRED)
    try:
        Connection(Server(host, port=636, use_ssl=True, tls=tls, connect_timeout=5), dn, pw, auto_bind=True)
        print(host, "ok")
    except Exception as e:
        print(host, "refused:", type(e).__name__, str(e)[-160:].replace(chr(10), " "))
"""


@pytest.fixture(scope="module")
def site(images, version):
    with SiteCluster(version, image=images["slurm-single-node"], subnet=str(SITE_SUBNET),
                     ldap=LdapDirectory(tls=True, version=version)) as s:
        print(f"\nsite with the directory up: both nodes idle {s.timings['idle']:.1f}s after start()")
        yield s


def submit(site: SiteCluster, user: str, check: bool = True):
    """sbatch JOB as `user` on the site's controller, from their home; output in ~/site-%j.out."""
    return site.exec("bash", "-c", 'cd "/home/$(id -un)" && sbatch --parsable -o site-%j.out', user=user, input=JOB,
                     check=check)


def ids(site: SiteCluster, host: str, user: str) -> str:
    return site.exec_on(host, "id", user).stdout.strip()


def test_directory_users_resolve_on_every_host_with_their_groups(site):
    physics, hpcusers = GROUPS["physics"], GROUPS["hpcusers"]
    for host in HOSTS:
        assert ids(site, host, LONG) == (f"uid={LONG_UID}({LONG}) gid={LONG_UID}({LONG}) groups={LONG_UID}({LONG}),"
                                         f"{physics}(physics),{hpcusers}(hpcusers)"), host
        assert ids(site, host, "alice") == (f"uid={ALICE_UID}(alice) gid={ALICE_UID}(alice) groups="
                                            f"{ALICE_UID}(alice),{physics}(physics),{hpcusers}(hpcusers)"), host
        assert site.exec_on(host, "id", "-un", str(LONG_UID)).stdout.strip() == LONG
        # Control: a name the directory does not have is unknown there.
        assert site.exec_on(host, "getent", "passwd", "mallory", check=False).returncode == 2


def test_the_hosts_reach_the_directory_by_its_address_with_the_certificate_checked(site):
    conf = site.exec("cat", "/etc/nslcd.conf").stdout.splitlines()
    assert f"uri ldaps://{site.ldap.ip}" in conf and "tls_reqcert demand" in conf, conf
    assert ipaddress.ip_address(site.ldap.ip) in ipaddress.ip_network(site.subnet)  # on the site's own network


def test_the_site_admits_the_directory_users_with_private_homes_and_associations(site):
    # Not the directory's munge (an image user's name) nor toor (uid 0, below nslcd's nss_min_uid).
    assert site.admitted == sorted(["alice", "bob", LONG, "eve"]), site.admitted
    out = site.exec("stat", "-c", "%n %U %u %a", "/home/alice", f"/home/{LONG}").stdout.splitlines()
    assert out == [f"/home/alice alice {ALICE_UID} 700", f"/home/{LONG} {LONG} {LONG_UID} 700"], out
    assocs = set(site.exec("sacctmgr", "-n", "-P", "show", "assoc", "format=account,user").stdout.split())
    assert {"research|alice", f"research|{LONG}"} <= assocs and not {"research|munge", "research|toor"} & assocs


def test_christophers_job_runs_on_a_node_as_uid_54321_and_the_site_sacct_names_him(site):
    job = submit(site, LONG).stdout.strip().split(";")[0]
    site.wait_job(job, timeout=90)
    sacct = site.exec("sacct", "-n", "-X", "-P", "-j", job, "-o", "User,UID,State,NodeList").stdout.strip()
    user, uid, state, node = sacct.split("|")
    assert (user, uid, state) == (LONG, str(LONG_UID), "COMPLETED") and node in ("cn1", "cn2"), sacct
    with open(os.path.join(site.home, LONG, f"site-{job}.out")) as f:
        assert f.read().split() == [str(LONG_UID), LONG, node]
    assert os.stat(os.path.join(site.home, LONG, f"site-{job}.out")).st_uid == LONG_UID


def test_a_user_added_to_the_directory_resolves_on_every_host_at_once_and_runs_once_admitted(site):
    name, uid = "dorothea.k", 54400  # longer than 8 characters, with a dot
    assert site.exec("getent", "passwd", name, check=False).returncode == 2
    t0 = time.monotonic()
    site.ldap.add_user(name, uid, groups=("physics",))
    for host in HOSTS:
        wait_until(lambda h=host: site.exec_on(h, "getent", "passwd", name, check=False).returncode == 0, 10,
                   f"{name} to resolve on {host}")
    print(f"\n{name}, added to the directory, resolves on the three hosts {time.monotonic() - t0:.2f}s later")
    assert ids(site, "cn2", name) == (f"uid={uid}({name}) gid={uid}({name}) groups={uid}({name}),"
                                      f"{GROUPS['physics']}(physics)")
    # The site has not admitted them yet: no home, no association, so their job is refused at submission.
    refused = site.exec("sbatch", "--wrap", "true", user=f"{uid}:{uid}", check=False)
    assert refused.returncode != 0 and "account" in refused.stderr.lower(), refused.stderr
    site.admit(name)
    job = submit(site, name).stdout.strip().split(";")[0]
    site.wait_job(job, timeout=90)
    assert site.exec("sacct", "-n", "-X", "-P", "-j", job, "-o", "User").stdout.strip() == name


def test_the_certificate_names_the_address_so_libldap_and_ldap3_check_ldaps_by_ip(site):
    ldap = site.ldap
    # libldap with GnuTLS (what nslcd uses; the directory's image, same Debian suite): the address it names passes,
    # 127.0.0.1 (the same server, not named) is refused, and passes with the check off: the name check refused it.
    def ldapsearch(host, reqcert="demand"):
        return podman("exec", "-e", "LDAPTLS_CACERT=/ldap/tls/ca.crt", "-e", f"LDAPTLS_REQCERT={reqcert}", ldap.name,
                      "ldapsearch", "-x", "-LLL", "-H", f"ldaps://{host}", "-D", ldap.bind_dn, "-w",
                      ldap.bind_password, "-b", ldap.base, f"(uid={LONG})", "uidNumber", check=False, timeout=20)
    assert f"uidNumber: {LONG_UID}" in ldapsearch(ldap.ip).stdout
    assert ldapsearch("127.0.0.1").returncode != 0
    assert f"uidNumber: {LONG_UID}" in ldapsearch("127.0.0.1", reqcert="never").stdout
    # The hub's ldap3 2.9.1 (Python 3.13), in the server's network namespace so that 127.0.0.1 is the same slapd.
    # On Python 3.12+ it matches the name with its own backport of ssl.match_hostname, which reads only DNS entries:
    # the certificate names the address as DNS:IP too (with IP:IP alone, it refused ldaps://IP: tried by hand).
    image = build_hub_image("hub", HUB_IMAGE)
    out = podman("run", "--rm", "--network", f"container:{ldap.name}", "-v", f"{ldap.ca_cert}:/ca.crt:ro",
                 "--entrypoint", "", image, "python3", "-c", LDAP3_CHECK, "/ca.crt", ldap.bind_dn,
                 ldap.bind_password, ldap.ip, "127.0.0.1", timeout=60).stdout.splitlines()
    assert out[0] == f"{ldap.ip} ok", out
    assert out[1].startswith("127.0.0.1 refused: LDAPSocketOpenError") and "doesn't match" in out[1], out


def test_control_without_the_directory_the_site_knows_none_of_its_users_and_refuses_their_job(images, version):
    with SiteCluster(version, image=images["slurm-single-node"], subnet=CONTROL_SUBNET) as plain:
        assert plain.ldap is None and not os.path.exists(os.path.join(plain.directory, "nslcd.conf"))
        for host in HOSTS:
            assert plain.exec_on(host, "getent", "passwd", LONG, check=False).returncode == 2, host
            assert plain.exec_on(host, "getent", "passwd", str(LONG_UID), check=False).returncode == 2, host
        refused = plain.exec("sbatch", "--wrap", "id", user=f"{LONG_UID}:{LONG_UID}", check=False)
        assert refused.returncode != 0, refused.stdout
        print(f"\ncontrol site: christopher's job refused: {refused.stderr.strip()}")
        # The site's own users still work there: the check can pass.
        assert plain.exec("id", "-u", "alice").stdout.strip() == "2001"
