"""Scenario 5b, an ordinary user with bad intent against the deployed stack (issue 20): the pods `pulumi up` made,
attacked as the directory's users from the JupyterLab pod's terminal, a batch job and an HTTP client. The
controls (each attack succeeding with its protection off) are in tests/images/test_hostile.py, on the same images.
"""

import pytest
import requests

from components.slurm_files import SLURMCTLD_PORT, SLURMRESTD_PORT, TOKEN_LIFETIME_S
from tests.images.slurm_containers import memory_hog, wait_until
from tests.slurm_rest import BAD_SUBMIT, SLURMRESTD_PID, TEN_YEARS, jwt_lifespan, minted_token

pytestmark = pytest.mark.e2e


def test_no_user_mints_a_token_longer_than_the_stacks_lifetime(deployment):
    d = deployment
    user = d.lab_user
    p = d.kube.exec(d.jupyter, "scontrol", "token", f"lifespan={TEN_YEARS}", user=user, check=False)
    assert p.returncode != 0 and not minted_token(p.stdout), p.stdout + p.stderr
    p = d.kube.exec(d.jupyter, "scontrol", "token", f"lifespan={TOKEN_LIFETIME_S}", user=user)
    assert jwt_lifespan(minted_token(p.stdout)) == TOKEN_LIFETIME_S
    job = d.sbatch(d.jupyter, f"#!/bin/bash\nscontrol token lifespan={TEN_YEARS}\necho rc=$?\n",
                   "--output=token-%j.out", workdir="hostile")
    d.wait_job(job, pod=d.jupyter)
    out = d.kube.exec(d.jupyter, "cat", f"/home/{user}/hostile/token-{job}.out", user=user).stdout
    assert "SLURM_JWT=" not in out and "rc=0" not in out, out


def test_a_job_over_its_memory_is_killed_by_slurm_and_its_memory_reported(deployment):
    d = deployment
    user = d.lab_user
    job = d.sbatch(d.jupyter, f"#!/bin/bash\n{memory_hog(1500, 30)}\n", "--mem=500", "--output=hog-%j.out",
                   workdir="hostile")
    d.wait_job(job, "FAILED", timeout=30, pod=d.jupyter)
    out = d.kube.exec(d.jupyter, "cat", f"/home/{user}/hostile/hog-{job}.out", user=user).stdout
    assert "exceeded memory limit" in out, out
    max_rss, ave_cpu = d.kube.exec(d.slurm, "sacct", "-n", "-P", "-j", f"{job}.batch", "-o",
                                   "MaxRSS,AveCPU").stdout.strip().split("|")
    assert max_rss.endswith(("K", "M", "G")) and int(float(max_rss[:-1])) > 0, max_rss
    assert "-" not in ave_cpu, f"AveCPU {ave_cpu}: days of CPU, the sampler's initial value (nothing sampled)"


def test_home_is_roots_and_bob_cannot_rename_alices_home(deployment):
    d = deployment
    for pod in (d.slurm, d.jupyter):
        assert d.kube.exec(pod, "stat", "-c", "%U %a", "/home").stdout.split() == ["root", "755"], pod.name
    for cmd in (("mv", "/home/alice", "/home/alice.gone"), ("mkdir", "/home/mallory")):
        p = d.kube.exec(d.jupyter, *cmd, user="bob", check=False)
        assert p.returncode != 0 and "Permission denied" in p.stderr, (cmd, p.stderr)
    assert d.kube.exec(d.slurm, "stat", "-c", "%U %a", "/home/alice").stdout.split() == ["alice", "700"]


def test_a_home_replaced_by_a_dangling_link_does_not_keep_the_single_node_down(deployment):
    d = deployment
    # What bob did while /home was writable by every user: his home moved away, a link to nowhere in its place.
    d.kube.exec(d.slurm, "sh", "-c", "mv /home/bob /home/bob.old && ln -s /nonexistent /home/bob")
    try:
        new = d.kube.restart(d.slurm)
        logs = d.kube.logs(new, tail=200)
        assert "WARNING: /home/bob is a symbolic link, left as it is" in logs, logs
    finally:
        d.kube.exec(d.slurm, "sh", "-c", "rm /home/bob && mv /home/bob.old /home/bob")


def reaches(d, pod, host: str, port: int) -> bool:
    """Does a TCP connection from `pod` to host:port open (within 3 s)?"""
    p = d.kube.exec(pod, "timeout", "3", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}", check=False)
    return p.returncode == 0


def test_no_pod_reaches_the_single_nodes_own_slurmrestd(deployment):
    d = deployment
    assert not reaches(d, d.jupyter, d.slurm.ip, SLURMRESTD_PORT), "the single node's REST port is open to pods"
    assert reaches(d, d.jupyter, d.slurm.ip, SLURMCTLD_PORT)  # control: slurmctld is reachable the same way
    assert d.kube.exec(d.slurm, "slurm-healthcheck", "--rest", check=False).returncode == 0  # its own check uses it


def restarts(d, pod) -> int:
    return sum(s.get("restartCount", 0) for s in d.kube.pod(pod.name).status.get("containerStatuses") or [])


def restd_pid(d, pod) -> str:
    """The pid of the slurmrestd process in `pod`, or ''."""
    return d.kube.exec(pod, "sh", "-c", SLURMRESTD_PID).stdout.strip()


def test_an_unauthenticated_request_never_reaches_slurmrestd_and_a_crash_ends_nothing_else(deployment):
    d = deployment
    api = d.image_env()["SLURM_REST_API_VERSION"]
    running = d.sbatch(d.jupyter, "#!/bin/bash\nsleep 8\n", workdir="hostile")
    d.wait_job(running, "RUNNING", pod=d.jupyter)
    restd, slurm = d.restd, d.slurm
    before, slurm_before, pid = restarts(d, restd), restarts(d, slurm), restd_pid(d, d.restd)
    url = "http://127.0.0.1:{}/slurm/" + api + "/job/submit"
    with d.kube.port_forward(f"pod/{restd.name}", SLURMRESTD_PORT) as port:
        r = requests.post(url.format(port), json=BAD_SUBMIT, timeout=10,
                          headers={"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": "x"})
        assert r.status_code == 401, r.text  # the gate's answer: slurmrestd never parsed the body
        assert restd_pid(d, restd) == pid
        try:  # the same body with a real token of an ordinary user does reach it
            requests.post(url.format(port), json=BAD_SUBMIT, timeout=10,
                          headers={"X-SLURM-USER-NAME": d.lab_user, "X-SLURM-USER-TOKEN": d.token(d.lab_user)})
        except requests.RequestException:
            pass  # the daemon died while answering
    if api == "v0.0.42":  # Debian trixie's 24.11.5 aborts on it; later versions answer an error
        wait_until(lambda: restd_pid(d, restd) not in ("", pid), 60, "slurmrestd to die and be started again")
    # Started again inside its container: no restart, so no crash-loop back-off however often a user does it.
    assert (restarts(d, restd), restarts(d, slurm)) == (before, slurm_before)
    d.kube.wait_ready([restd])
    d.wait_job(running, "COMPLETED", timeout=60, pod=d.jupyter)


def test_a_kept_token_check_lets_no_other_token_reach_slurmrestd(deployment):
    """The REST gate keeps a passed check 5 s per user name and token (X-SLURM-USER-TOKEN or Authorization: Bearer):
    right after the user's own Bearer request passed, a forged Bearer with a crashing body under their name is still
    refused before slurmrestd. The kept checks, which hold tokens, are in memory (tmpfs), not on the node's disk."""
    d = deployment
    restd, user = d.restd, d.lab_user
    api = d.image_env()["SLURM_REST_API_VERSION"]
    pid = restd_pid(d, restd)
    token = d.token(user)
    with d.kube.port_forward(f"pod/{restd.name}", SLURMRESTD_PORT) as port:
        base = f"http://127.0.0.1:{port}/slurm/{api}"
        ok = requests.get(f"{base}/ping", timeout=10,
                          headers={"X-SLURM-USER-NAME": user, "Authorization": f"Bearer {token}"})
        forged = requests.post(f"{base}/job/submit", json=BAD_SUBMIT, timeout=10,
                               headers={"X-SLURM-USER-NAME": user, "Authorization": f"Bearer {token[:-4]}AAAA"})
    refused_by_gate = "REST gate: the token" in forged.text or "<center>nginx" in forged.text  # slurmrestd's: JSON
    assert forged.status_code == 401 and refused_by_gate, (ok.status_code, forged.status_code, forged.text)
    assert restd_pid(d, restd) == pid, "the forged request reached slurmrestd"
    fs = d.kube.exec(restd, "stat", "-f", "-c", "%T", "/run/slurm-rest-gate/checks").stdout.strip()
    assert fs == "tmpfs", fs
