"""An ordinary user cannot act beyond their own identity or take Slurm down (issue 20), at image level.

Real podman containers: the directory cluster (tests/images/directory_cluster.py) and private single nodes, the
attacks made as the directory's users alice and bob from slurm-client containers (a terminal), from batch jobs and
over HTTP. Each protection has a control that shows the attack is real without it. The same cases run against
the pods the stack deploys in tests/e2e/test_05_hostile.py.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
import requests

from components import restd, single_node
from components.image_facts import RESTD_SOCKET as SOCKET  # the single node's slurmrestd (its entrypoint's default)
from components.slurm_files import SLURMRESTD_PORT, TOKEN_LIFETIME_S, version_facts
from tests.images.directory_cluster import USERS, Cluster
from tests.images.slurm_containers import client_restd, memory_hog, podman, wait_until
from tests.slurm_rest import BAD_SUBMIT, SLURMRESTD_PID, TEN_YEARS, SlurmRest, jwt_lifespan, minted_token

pytestmark = pytest.mark.containers


def start_cluster(images, version, network, unbounded: bool = False, **node_fields) -> Cluster:
    """The directory cluster; `unbounded`: its slurm.conf without max_token_lifespan (the control)."""
    c = Cluster(images["slurm-single-node"], version, network, **node_fields)
    if unbounded:
        conf = os.path.join(c.node.files.server_config, "slurm.conf")
        text = open(conf).read()
        assert f",max_token_lifespan={TOKEN_LIFETIME_S}" in text
        with open(conf, "w") as f:
            f.write(text.replace(f",max_token_lifespan={TOKEN_LIFETIME_S}", ""))
    c.node.start().wait_ready()
    return c


# --- tokens ----------------------------------------------------------------------------------------------------
def mint_everywhere(cluster: Cluster, as_user, seconds: int) -> dict[str, str]:
    """`scontrol token lifespan=SECONDS` as alice from each path a user has: a terminal holding a JWT (a hub user),
    the node with munge (JupyterLab's terminal), and a batch job; {path: the token printed, or ''}."""
    node = cluster.node
    found = {}
    p = as_user(USERS["alice"], "scontrol", "token", f"lifespan={seconds}", token=node.token("alice"))
    found["terminal with a JWT"] = minted_token(p.stdout)
    p = node.exec("runuser", "-u", "alice", "--", "scontrol", "token", f"lifespan={seconds}", check=False)
    found["terminal with munge"] = minted_token(p.stdout)
    job = node.exec("runuser", "-u", "alice", "--", "sbatch", "--parsable", "-D", "/home/alice",
                    "-o", f"/home/alice/token-{seconds}.out",
                    "--wrap", f"scontrol token lifespan={seconds}; true").stdout.strip()
    node.wait_job(job, "COMPLETED")
    found["batch job"] = minted_token(node.exec("cat", f"/home/alice/token-{seconds}.out").stdout)
    return found


def test_no_user_can_mint_a_token_longer_than_the_stacks_lifetime(cluster, as_user, version):
    refused = mint_everywhere(cluster, as_user, TEN_YEARS)
    assert refused == {path: "" for path in refused}, refused
    allowed = mint_everywhere(cluster, as_user, TOKEN_LIFETIME_S)
    assert all(allowed.values()) and {jwt_lifespan(t) for t in allowed.values()} == {TOKEN_LIFETIME_S}, allowed
    rest = SlurmRest(f"http://{cluster.node.ip}:{SLURMRESTD_PORT}", version_facts(version).rest_api_version,
                     user="alice", token=allowed["terminal with a JWT"])
    assert rest.authenticated()
    # Root (the services: the health check, the hint's `kubectl exec ... scontrol token`) keeps any lifespan.
    assert jwt_lifespan(cluster.node.token("alice", lifespan=TEN_YEARS)) == TEN_YEARS


def test_control_without_max_token_lifespan_a_user_mints_a_ten_year_token_that_slurmrestd_accepts(
        images, version, network):
    c = start_cluster(images, version, network, unbounded=True)
    try:
        token = minted_token(c.node.exec("runuser", "-u", "alice", "--", "scontrol", "token",
                                   f"lifespan={TEN_YEARS}").stdout)
        assert jwt_lifespan(token) == TEN_YEARS
        rest = SlurmRest(f"http://{c.node.ip}:{SLURMRESTD_PORT}", version_facts(version).rest_api_version,
                         user="alice", token=token)
        assert rest.authenticated()
    finally:
        c.remove()


# --- memory ---------------------------------------------------------------------------------------------------
def hog(node, seconds: int) -> str:
    """As alice, from her home: a job with --mem=500 that holds 1500 MB for `seconds`; its id."""
    return node.exec("runuser", "-u", "alice", "--", "sbatch", "--parsable", "-D", "/home/alice", "--mem=500",
                     "-o", "/home/alice/hog-%j.out", "--wrap", memory_hog(1500, seconds)).stdout.strip()


def test_a_users_job_over_its_memory_is_killed_and_its_memory_reported(cluster):
    node = cluster.node
    job = hog(node, 30)
    node.wait_job(job, "FAILED", timeout=30)
    out = node.exec("cat", f"/home/alice/hog-{job}.out").stdout
    assert "exceeded memory limit" in out, out
    max_rss, ave_cpu = node.exec("sacct", "-n", "-P", "-j", f"{job}.batch", "-o", "MaxRSS,AveCPU").stdout.split("|")
    assert max_rss.endswith(("K", "M", "G")) and int(float(max_rss[:-1])) > 0, max_rss
    assert "-" not in ave_cpu, f"AveCPU {ave_cpu}: days of CPU, the sampler's initial value (nothing sampled)"


def test_control_without_sys_ptrace_slurm_sees_no_memory_of_a_users_job(images, version, network):
    c = start_cluster(images, version, network,
                      capabilities=tuple(cap for cap in single_node.CAPABILITIES if cap != "SYS_PTRACE"))
    try:
        job = hog(c.node, 3)
        c.node.wait_job(job, "COMPLETED", timeout=60)  # 1500 MB held on a --mem=500 allocation, never noticed
        assert c.node.exec("sacct", "-n", "-P", "-j", f"{job}.batch", "-o", "MaxRSS").stdout.strip() in ("", "0")
    finally:
        c.remove()


# --- homes ----------------------------------------------------------------------------------------------------
def test_home_is_roots_and_no_user_can_rename_anothers_home(cluster, as_user):
    node = cluster.node
    assert node.exec("stat", "-c", "%U %a", "/home").stdout.split() == ["root", "755"]
    assert node.exec("stat", "-c", "%U %a", "/home/alice").stdout.split() == ["alice", "700"]
    p = as_user(USERS["bob"], "mv", "/home/alice", "/home/alice.gone")
    assert p.returncode != 0 and "Permission denied" in p.stderr, p.stderr
    p = as_user(USERS["bob"], "mkdir", "/home/carol")
    assert p.returncode != 0 and "Permission denied" in p.stderr, p.stderr
    # Control: with /home writable by all (mode 0777, as the volume comes from local-path-shared), bob can.
    node.exec("chmod", "0777", "/home")
    try:
        p = as_user(USERS["bob"], "mv", "/home/alice", "/home/alice.gone")
        assert p.returncode == 0, p.stderr
    finally:
        node.exec("sh", "-c", "[ -e /home/alice ] || mv /home/alice.gone /home/alice; chmod 0755 /home")
    assert node.exec("stat", "-c", "%U", "/home/alice").stdout.strip() == "alice"


def test_what_users_leave_in_home_never_stops_the_single_node_nor_is_followed_as_root(images, version, network):
    c = Cluster(images["slurm-single-node"], version, network)
    try:
        # What bob did (a dangling link for his home), and a link to a directory root must not give away.
        podman("run", "--rm", "--entrypoint", "sh", "-v", f"{c.home}:/home", images["slurm-single-node"], "-c",
               "mkdir -p /home/bob.old /home/target && chown 2002 /home/bob.old && ln -s /nonexistent /home/bob"
               " && ln -s /home/target /home/alice")
        c.node.start().wait_ready()
        logs = c.node.logs(tail=200)
        assert "WARNING: /home/bob is a symbolic link, left as it is" in logs, logs
        assert "WARNING: /home/alice is a symbolic link, left as it is" in logs, logs
        assert c.node.exec("stat", "-c", "%U %a", "/home/target").stdout.split() == ["root", "755"]
        assert c.node.exec("readlink", "/home/bob").stdout.strip() == "/nonexistent"
        # Control: what the entrypoint did before (install -d as root) fails on the first and follows the second.
        p = podman("run", "--rm", "--entrypoint", "sh", "-v", f"{c.home}:/home", images["slurm-single-node"], "-c",
                   "install -d -m 0700 -o 2002 -g 2002 /home/bob; echo rc=$?;"
                   " install -d -m 0700 -o 2001 -g 2001 /home/alice; stat -c '%u %a' /home/target", check=False)
        assert "rc=1" in p.stdout and "2001 700" in p.stdout, p.stdout + p.stderr
    finally:
        c.remove()


# --- slurmrestd -----------------------------------------------------------------------------------------------
def test_the_single_nodes_slurmrestd_is_reachable_by_root_in_the_node_only(fresh_single_node, single_node, version):
    node = fresh_single_node(rest_listen=None)  # the image's default, as in the pod
    node.start().wait_ready()
    api = version_facts(version).rest_api_version
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{node.ip}:{SLURMRESTD_PORT}/slurm/{api}/ping", timeout=5)
    assert node.exec("slurm-healthcheck", "--rest", check=False).returncode == 0  # its own health check uses it
    # A job runs here as its user: the socket is out of its reach.
    ask = f"curl -s -o /dev/null -w %{{http_code}} --unix-socket {SOCKET} http://localhost/slurm/{api}/ping"
    assert node.exec("sh", "-c", ask).stdout == "401"  # root reaches it (401: no token)
    p = node.exec("setpriv", "--reuid=1000", "--regid=100", "--clear-groups", "sh", "-c", ask, check=False)
    assert p.stdout == "000", p.stdout + p.stderr
    # Control: the same request reaches a single node whose slurmrestd listens on every address.
    r = requests.get(f"http://{single_node.ip}:{SLURMRESTD_PORT}/slurm/{api}/ping", timeout=5)
    assert r.status_code == 401, r.text


def restd_pid(container: str) -> str:
    """The pid of the slurmrestd process in a container, or ''."""
    return podman("exec", container, "sh", "-c", SLURMRESTD_PID).stdout.strip()


def test_a_request_that_kills_slurmrestd_ends_neither_slurm_nor_its_jobs(fresh_single_node, version):
    node = fresh_single_node()
    node.start().wait_ready()
    api = version_facts(version).rest_api_version
    job = node.sbatch("--wrap", "sleep 6")
    node.wait_for(lambda: node.sacct(job).startswith("RUNNING"), f"job {job} to run")
    before = restd_pid(node.name)
    try:
        requests.post(f"http://{node.ip}:{SLURMRESTD_PORT}/slurm/{api}/job/submit", json=BAD_SUBMIT,
                      headers={"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": "x"}, timeout=10)
    except requests.ConnectionError:
        pass  # the daemon died while answering
    if version == "24.11":  # the attack is real there: it ended slurmrestd
        node.wait_for(lambda: restd_pid(node.name) not in ("", before), "slurmrestd to be started again")
    else:  # fixed in these versions: the same crash, by a signal
        node.exec("sh", "-c", f"kill -ABRT {before}")
        node.wait_for(lambda: restd_pid(node.name) not in ("", before), "slurmrestd to be started again")
    assert "slurmrestd" in node.logs(tail=80) and "started slurmrestd again" in node.logs(tail=80)
    node.wait_for(node.rest_ready, "slurmrestd to answer again")
    assert node.status() == "running"
    node.wait_job(job, "COMPLETED", timeout=30)  # the running job went on
    # Control: another daemon's death still ends the container (its state is slurmctld's and MariaDB's).
    node.exec("sh", "-c", "kill -KILL $(cat /run/slurm/slurmctld.pid)")
    wait_until(lambda: node.status() != "running", 30, "the container to end after slurmctld died", node.logs)


RAW_POST = r"""exec 3<>/dev/tcp/${BACKEND/://}
printf 'POST %s HTTP/1.1\r\nHost: x\r\nX-SLURM-USER-NAME: root\r\nX-SLURM-USER-TOKEN: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' "$URL" "${#BODY}" "$BODY" >&3
timeout 10 cat <&3"""


def stats_info_rpcs(node) -> int:
    """slurmctld's count of REQUEST_STATS_INFO RPCs (sdiag; slurmrestd's /diag asks it too)."""
    out = node.exec("sdiag").stdout
    return int(re.search(r"^\s*REQUEST_STATS_INFO\s+\(\s*\d+\)\s+count:(\d+)", out, re.M).group(1))


def test_the_rest_gate_checks_a_token_once_for_a_burst_and_never_keeps_a_refusal(images, single_node, version):
    """An ordinary user (the image's `nobody`) sends five requests with one token: slurmctld checks it once."""
    name = f"{single_node.name}-gate-cache"
    with client_restd(images["slurm-client"], single_node, name) as url:
        api = version_facts(version).rest_api_version
        wait_until(SlurmRest(url, api, token=single_node.token()).ping, 30, "slurmrestd to answer through the gate",
                   lambda: podman("logs", name, check=False).stderr)
        token = single_node.token("nobody")  # new: no check of it is kept yet
        user = SlurmRest(url, api, token=token, user="nobody")
        before = stats_info_rpcs(single_node)
        sdiag_alone = stats_info_rpcs(single_node) - before  # what an sdiag call adds by itself
        t0 = time.monotonic()
        for _ in range(5):
            assert user.ping(), "nobody's request through the gate"
        burst = stats_info_rpcs(single_node)
        assert time.monotonic() - t0 < 5, "the burst must fit in the 5 s a check is kept"
        assert burst - before - 2 * sdiag_alone == 1, "one check for five requests with the same token"
        # Control: another token of the same user is checked again; a forged one, or nobody's token sent under
        # another user's name, is refused though nobody's passed.
        other = single_node.token("nobody", lifespan=601)  # the same lifespan within the second: the same token
        assert other != token and SlurmRest(url, api, token=other, user="nobody").ping()
        assert stats_info_rpcs(single_node) - burst - sdiag_alone == 1, "a new token is checked again"
        forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        for t, u in ((forged, "nobody"), (token, "daemon")):
            r = SlurmRest(url, api, token=t, user=u).request("GET", "ping")
            assert r.status_code == 401, (u, r.status_code, r.text)
        # slurmrestd also takes the token as `Authorization: Bearer`: a check kept for one is none for another.
        for bearer in (token, forged):
            r = requests.get(f"{url}/slurm/{api}/ping", timeout=10,
                             headers={"X-SLURM-USER-NAME": "nobody", "Authorization": f"Bearer {bearer}"})
        # Refused by the gate: its own answer, or nginx's page where the check itself answered 401 (22.05's slurmrestd
        # takes no Bearer token); slurmrestd's own answers are JSON.
        assert r.status_code == 401 and ("REST gate: the token" in r.text or "<center>nginx" in r.text), \
            (r.status_code, r.text)


def test_the_rest_gate_keeps_unauthenticated_requests_from_slurmrestd(images, single_node, version):
    name = f"{single_node.name}-gate"
    with client_restd(images["slurm-client"], single_node, name) as url:
        api = version_facts(version).rest_api_version
        good = SlurmRest(url, api, token=single_node.token())
        wait_until(good.ping, 30, "slurmrestd to answer through the gate", lambda: podman("logs", name, check=False).stderr)
        pid = restd_pid(name)
        for token in (None, "x"):
            r = SlurmRest(url, api, token=token).request("GET", "ping")
            assert r.status_code == 401, (token, r.status_code, r.text)
        r = requests.post(f"{url}/slurm/{api}/job/submit", json=BAD_SUBMIT, timeout=10,
                          headers={"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": "x"})
        assert r.status_code == 401 and "REST gate: the token" in r.text, r.text
        assert restd_pid(name) == pid
        assert good.authenticated()
        # Control: the same request sent past the gate, to slurmrestd itself.
        p = podman("exec", "-e", f"BODY={json.dumps(BAD_SUBMIT)}", "-e", f"URL=/slurm/{api}/job/submit",
                   "-e", f"BACKEND={restd.BACKEND}", name, "bash", "-c", RAW_POST, check=False)
        if version == "24.11":  # it aborts; the entrypoint starts it again, and the container runs on
            wait_until(lambda: restd_pid(name) not in ("", pid), 30, "the client's slurmrestd to die and start again")
            assert "slurmrestd exited with status" in podman("logs", name, check=False).stderr
            assert podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip() == "running"
            wait_until(good.ping, 30, "slurmrestd to answer through the gate again")
        else:  # fixed there: an error answer
            assert " 200 " not in p.stdout.splitlines()[0], p.stdout
