"""slurm-jupyter with the site's LDAP directory (config `ldap`, issue 23): JupyterLab runs as a directory user
(jupyter.user) whom its pod resolves through an nslcd beside it, and its terminal and jobs know them by name.

How real: a real slapd over ldaps:// with a test CA (tests/ldap_directory.py); slurm-single-node resolving the same
directory (as in test_ldap_identity.py); the pod as components/jupyter.py makes it: an nslcd container of slurm-client
(`nslcd`, the directory volume with the stack's nslcd.conf: the only container with the bind password) sharing its
/run/nslcd (a podman volume, the pod's emptyDir) with the JupyterLab container, which gets the static directory's
(empty) files, the Slurm files, the munge key and the home; both start as root with the capabilities the pod keeps.
The lab starts once nslcd listens (the native sidecar's startup probe: test -S /run/nslcd/socket). The terminal is
JupyterLab's own (its terminals API and websocket), a bash as the lab's user.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
import uuid

import pytest
import requests
import websocket

from components import pods
from tests.images.directory_cluster import Cluster
from tests.images.jupyter_fixtures import client_args, processes, run_entrypoint
from tests.images.slurm_containers import podman, wait_until
from tests.ldap_directory import GROUPS, write_ldap_directory

pytestmark = pytest.mark.containers

USER, UID = "christopher", 54321  # longer than 8 characters; a uid and gid no image has
HOME = f"/home/{USER}"
TOKEN = secrets.token_hex(24)
SOCKET = f"{pods.NSLCD_SOCKET_DIR}/socket"
# What the pod keeps of root in both containers (pods.root_start_security_context()).
POD_SECURITY = ("--cap-drop=ALL", f"--cap-add={','.join(pods.ROOT_START_CAPABILITIES)}",
                "--security-opt=no-new-privileges")


@pytest.fixture(scope="module")
def ldap_cluster(images, version, network, ldap):
    c = Cluster(images["slurm-single-node"], version, network, nodes=1)
    write_ldap_directory(c.directory, ldap)
    c.node.run_args += ldap.add_host
    try:
        c.node.start().wait_ready()
        yield c
    finally:
        c.remove()


@pytest.fixture(scope="module")
def lab_directory():
    """The lab container's directory volume: the stack's ConfigMap with `ldap` (no users listed), no Secret."""
    d = tempfile.mkdtemp(prefix="sci-jl-directory-")
    for name in ("passwd", "group"):
        with open(os.path.join(d, name), "w"):
            pass
        os.chmod(os.path.join(d, name), 0o644)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def nslcd(images, network, ldap, ldap_cluster):
    """The pod's nslcd sidecar; yields (container, socket volume) once it listens (what its startup probe waits for)."""
    suffix = uuid.uuid4().hex[:6]
    name, volume = f"sci-jl-nslcd-{suffix}", f"sci-jl-nslcd-{suffix}"
    podman("volume", "create", volume)
    try:
        podman("run", "-d", "--name", name, "--network", network, *ldap.add_host, "--no-healthcheck", *POD_SECURITY,
               "-v", f"{ldap_cluster.directory}:/var/lib/extrausers:ro", "-v", f"{volume}:{pods.NSLCD_SOCKET_DIR}",
               images["slurm-client"], "nslcd")
        wait_until(lambda: podman("exec", name, "test", "-S", SOCKET, check=False).returncode == 0, 30,
                   f"nslcd to listen on {SOCKET}", lambda: podman("logs", name, check=False).stderr)
        yield name, volume
    finally:
        podman("rm", "-f", "-t", "2", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def lab_args(cluster: Cluster, directory: str, user: str, socket_volume: str | None) -> list[str]:
    """podman run arguments of the lab's container as the pod runs it (`socket_volume`: the nslcd sidecar's)."""
    args = [*client_args(cluster.node), *POD_SECURITY, "-v", f"{directory}:/var/lib/extrausers:ro",
            "-v", f"{cluster.home}:/home", "-e", f"NB_USER={user}", "-e", f"JUPYTER_TOKEN={TOKEN}"]
    if socket_volume:
        args += ["-v", f"{socket_volume}:{pods.NSLCD_SOCKET_DIR}"]
    return args


@pytest.fixture(scope="module")
def lab(jupyter_images, ldap_cluster, lab_directory, nslcd, start_jupyter):
    t0 = time.monotonic()
    c = start_jupyter(jupyter_images["slurm-jupyter"], *lab_args(ldap_cluster, lab_directory, USER, nslcd[1]))
    print(f"\nJupyterLab as {USER} answered after {time.monotonic() - t0:.1f} s")
    return c


def api(lab, method: str, path: str, **kw) -> requests.Response:
    return requests.request(method, lab.url + path, headers={"Authorization": f"token {TOKEN}"}, timeout=30, **kw)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


class Terminal:
    """A JupyterLab terminal (POST /api/terminals, then its websocket), as the browser drives it."""

    def __init__(self, lab):
        r = api(lab, "POST", "/api/terminals")
        assert r.status_code == 200, r.text
        self.lab, self.name = lab, r.json()["name"]
        self.ws = websocket.create_connection(
            f"{lab.url.replace('http', 'ws', 1)}/terminals/websocket/{self.name}?token={TOKEN}", timeout=30)
        self.ws.send(json.dumps(["set_size", 50, 250, 1000, 2500]))

    def run(self, command: str, timeout: float = 30) -> str:
        """What `command` writes to the terminal (its echo left out: the markers are split where it is typed)."""
        self.ws.send(json.dumps(["stdin", f'echo "BEG""IN"; {command}; echo "EN""D"\r']))
        out, deadline = "", time.monotonic() + timeout
        while True:
            begin = out.find("BEGIN\n")
            end = out.find("END\n", begin) if begin >= 0 else -1
            if end >= 0:
                return out[begin + len("BEGIN\n"):end]
            if time.monotonic() >= deadline:
                raise AssertionError(f"the terminal did not finish {command!r} in {timeout} s:\n{out}")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            kind, *data = json.loads(self.ws.recv())
            if kind == "stdout":
                out += ANSI.sub("", data[0])

    def close(self):
        self.ws.close()
        api(self.lab, "DELETE", f"/api/terminals/{self.name}")


@pytest.fixture
def terminal(lab):
    t = Terminal(lab)
    yield t
    t.close()


def test_the_image_asks_nslcd_after_its_own_users_and_the_static_directory(jupyter_images):
    image = jupyter_images["slurm-jupyter"]
    p = podman("run", "--rm", "--entrypoint", "bash", image, "-c",
               "grep -E '^(passwd|group):' /etc/nsswitch.conf; dpkg-query -W -f='${Status}\\n' libnss-ldapd nslcd; "
               "test -e /etc/nslcd.conf && echo configured || echo unconfigured")
    assert [" ".join(line.split()) for line in p.stdout.splitlines()] == [
        "passwd: files extrausers ldap", "group: files extrausers ldap", "install ok installed", "install ok installed",
        "unconfigured"], p.stdout


def test_jupyterlab_runs_as_the_directory_user_whom_its_terminal_knows_by_name(lab, terminal):
    procs = processes(lab)  # names as the lab's container resolves them: through the nslcd beside it
    assert {u for u, a in procs if "jupyter-lab" in a and not a.startswith("tini")} == {USER}, procs
    assert api(lab, "GET", "/jupyterlab_slurm/user").json()["data"]["user"] == USER
    out = terminal.run("id; pwd; ls -ld ~ | awk '{print $1, $3, $4}'").splitlines()
    assert out == [f"uid={UID}({USER}) gid={UID}({USER}) groups={UID}({USER}),{GROUPS['physics']}(physics),"
                   f"{GROUPS['hpcusers']}(hpcusers)", HOME, f"drwx------ {USER} {USER}"], out


def test_the_lab_holds_neither_nslcd_conf_nor_the_bind_password(lab, nslcd, ldap):
    files = "/etc /var/lib/extrausers /run /home /usr/local"
    p = lab.exec("bash", "-c", f"grep -rlsF -- '{ldap.bind_password}' {files}; echo rc=$?", check=False)
    assert p.stdout.strip().endswith("rc=1"), p.stdout  # grep found nothing
    assert sorted(lab.exec("ls", "/var/lib/extrausers").stdout.split()) == ["group", "passwd"]
    # Control: the same search finds it in the sidecar, the one container given the directory's Secret.
    p = podman("exec", nslcd[0], "bash", "-c", f"grep -rlsF -- '{ldap.bind_password}' {files}", check=False)
    assert "/etc/nslcd.conf" in p.stdout.split(), p.stdout


def test_a_job_from_his_home_runs_as_him_and_sacct_names_him(lab, terminal, ldap_cluster):
    node = ldap_cluster.node
    out = terminal.run("mkdir -p ~/p && cd ~/p && sbatch --parsable --wrap 'id -un; pwd'").split()
    job = out[-1].split(";")[0]
    assert job.isdigit(), out
    node.wait_job(job)
    assert node.sacct(job, "User,State") == f"{USER}|COMPLETED"
    # In the lab's terminal: sacct and ls -l name him; the output, in ~/p, is his and says he ran it there.
    assert terminal.run(f"sacct -n -X -P -j {job} -o User,State").split() == [f"{USER}|COMPLETED"]
    listing = terminal.run(f"ls -l ~/p/slurm-{job}.out | awk '{{print $3, $4}}'; cat ~/p/slurm-{job}.out").split()
    assert listing == [USER, USER, USER, f"{HOME}/p"], listing


def test_a_job_in_the_queue_shows_his_name_in_squeue(lab, terminal, ldap_cluster):
    out = terminal.run("cd ~ && sbatch --parsable --wrap 'sleep 120'").split()
    job = out[-1].split(";")[0]
    try:
        rows = terminal.run(f"squeue -h -j {job} -o '%i %u'").split()
        assert rows == [job, USER], rows
        r = api(lab, "GET", "/jupyterlab_slurm/squeue")  # the Slurm panel's queue
        data = r.json()["data"]
        mine = [dict(zip(data["columns"], row, strict=True)) for row in data["rows"] if row[0] == job]
        assert [row["USER"] for row in mine] == [USER], data
    finally:
        ldap_cluster.node.exec("scancel", job, check=False)


def test_a_user_the_directory_does_not_have_is_refused_with_a_message_that_says_so(
        jupyter_images, ldap_cluster, lab_directory, nslcd):
    p = run_entrypoint(jupyter_images["slurm-jupyter"], *lab_args(ldap_cluster, lab_directory, "mallory", nslcd[1]))
    assert p.returncode != 0 and "ServerApp" not in p.stderr, p.stderr
    assert ("NB_USER=mallory is not a user of this image or of the user directory mounted at /var/lib/extrausers "
            "(config users), nor of the site's LDAP directory (config ldap), asked through the nslcd at "
            f"{SOCKET}") in p.stderr, p.stderr


def test_without_the_nslcd_sidecars_socket_the_entrypoint_refuses_the_directory_user(
        jupyter_images, ldap_cluster, lab_directory):
    """Control of the above: the same container without the socket volume does not know christopher."""
    p = run_entrypoint(jupyter_images["slurm-jupyter"], *lab_args(ldap_cluster, lab_directory, USER, None))
    assert p.returncode != 0 and "ServerApp" not in p.stderr, p.stderr
    assert (f"NB_USER={USER} is not a user of this image or of the user directory mounted at /var/lib/extrausers "
            f"(config users); the site's LDAP directory (config ldap) was not asked: no nslcd listens at {SOCKET}"
            ) in p.stderr, p.stderr
