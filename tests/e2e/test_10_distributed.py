"""The distributed deployment (components.distributed, issue 21), for real: the `dist` stack (Pulumi.dist.yaml,
namespace slurm-dist) deployed with `pulumi up` onto this machine's Kubernetes beside the `cluster` stack, which it
never touches, then destroyed at the end of the module. For this module the cluster has a second node (`toolchain/kube
node up 1`: sci-node-1, its own kubelet, containerd and network namespace), removed at its end.

- `pulumi up` from scratch (a leftover `dist` stack is destroyed first) to the first job COMPLETED, timed;
- the node pods are idle Slurm nodes named by their pods, with their pods' CPUs and memory, one on each Kubernetes
  node (topology spread);
- Slurm 26.05 with auth/slurm (Pulumi.dist.yaml authType): no munged in any pod, the generated slurm.key SlurmUser's
  alone in each role, unreadable to users, and slurm-exporter beside slurmctld, with no key, gets answers from both
  slurmctld and slurmdbd (through the credential socket of the pod's sackd);
- a job submitted from alice's home runs there as alice, and `srun -N2 hostname` runs on both node pods;
- what users do today, against this deployment (test_01..03's scenarios): JupyterLab's user runs a job from their home
  and `srun -N2` across both node pods, through the pod's sackd, the key unreadable to them; the REST API runs a
  user's job with a minted token and refuses a forged one; alice and bob, logged in at once to a hub run from the
  stack's chart values (the user pods' egress as the program computes it for this deployment), each run a job from
  the terminal and one from the Slurm panel in their home with their own JWT from the token service;
- sci-node-1 dies (`toolchain/kube node kill 1`): its Slurm node goes DOWN, the job running there ends NODE_FAIL, the
  other node runs jobs meanwhile; booted again, its pod rejoins as the same Slurm node;
- an association removed and added again in accounting refuses, then admits, bob's jobs without slurmctld's restart;
- slurmctld's pod deleted with jobs running and queued: every job is still known when its replacement answers, every
  one completes, and accounting lost no record (sacct's count before and after);
- the accounting pod gone while jobs end: slurmctld holds their records (sdiag's DBD agent queue) and sacct has every
  one once the pod is back;
- a node pod deleted with a `--requeue` job running on it: its node set DOWN at the drain grace's end requeues the job
  (NODE_FAIL would end it), and its replacement registers as the same Slurm node (no second node) and runs the job
  again (started at once, as an operator may: Slurm holds a requeued job about two minutes);
- `nodes` raised from 2 to 3 (a copy of the stack's config): the third node pod registers, idle, and runs a job;
- `nodes` lowered from 3 to 1 with a job running on each node that goes: the short one (within the stack's
  `distributed.drainGraceSeconds`) COMPLETED, the one longer than the grace NODE_FAIL, both Slurm nodes deleted (not
  left DOWN in sinfo) once `pulumi up` returns;
- `keyRotation` changed (with that one node): every pod new and Ready when `pulumi up` returns, every Slurm role and
  JupyterLab with the new slurm.key, no accounting record lost, a job from JupyterLab completes.

Run alone: `.venv/bin/python -m pytest tests/e2e/test_10_distributed.py` (needs `toolchain/kube up`; the `cluster`
fixture runs it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import subprocess
import time

import pytest

from components import distributed, metrics
from components.pods import KEYS_MOUNT
from components.slurm_files import SLURMRESTD_PORT
from tests.e2e.deployment import TIMINGS, Deployment, StackCopy, kube
from tests.e2e.dist_stack import CLUSTER, NAMESPACE, NODES, STACK, USER, Dist
from tests.e2e.hub_deployment import (
    HubUser,
    chart_values,
    crash_check,
    hub_images,
    hub_logs,
    in_pod,
    job_from_home,
    job_script,
    password,
    restd_admits_hub_users,
    running_hub,
    start_and_time,
    user_pod,
)
from tests.e2e.kube import Kube, Pod
from tests.hub_egress import hub_users_egress
from tests.images.slurm_containers import wait_until
from tests.project_env import pulumi
from tests.slurm_rest import SlurmRest, forged_token

CPUS, MEMORY_MB = 1, 768  # Pulumi.dist.yaml node.cpus, node.memoryMb
GRACE_S = 30  # Pulumi.dist.yaml distributed.drainGraceSeconds
SECOND = "1"  # the further Kubernetes node of this module: toolchain/kube's sci-node-1
K8S_NODES = ["sci-node", f"sci-node-{SECOND}"]
SLURMD_TIMEOUT_S = 60  # configs/slurm.conf.j2


def deployed() -> bool:
    return pulumi("stack", "output", "namespace", stack=STACK, check=False).returncode == 0


@pytest.fixture(scope="module")
def dist(cluster):
    if deployed():  # a leftover of an interrupted run: start from scratch
        pulumi("destroy", "--yes", "--skip-preview", stack=STACK, timeout=900)
    d = Dist(Kube(NAMESPACE))
    try:
        TIMINGS[f"toolchain/kube node up {SECOND}"] = kube("node", "up", SECOND)
        t0 = time.monotonic()
        pulumi("up", "--yes", "--skip-preview", stack=STACK, timeout=1800)
        TIMINGS["pulumi up --stack dist (from scratch)"] = time.monotonic() - t0
        wait_until(d.idle, 120, "both node pods idle in sinfo", lambda: str(d.nodes()))
        out = d.slurm("sbatch", "--wait", "-o", "first.%j", "--wrap", "hostname", user=USER, timeout=120)
        assert "Submitted batch job" in out, out
        TIMINGS["dist: pulumi up to first job COMPLETED"] = time.monotonic() - t0
        yield d
    finally:
        try:
            t1 = time.monotonic()
            pulumi("destroy", "--yes", "--skip-preview", stack=STACK, timeout=900)
            TIMINGS["pulumi destroy --stack dist"] = time.monotonic() - t1
            # what still runs there (a volume's clean-up by local-path-provisioner) finishes before the node goes
            wait_until(lambda: not pods_on(d.kube, K8S_NODES[1]), 60, f"no pod left on {K8S_NODES[1]}",
                       lambda: str(pods_on(d.kube, K8S_NODES[1])))
        finally:
            kube("node", "down", SECOND)


def pods_on(kube_: Kube, node: str) -> list[str]:
    """The pods of every namespace that the Kubernetes node `node` runs."""
    out = kube_.kubectl("get", "pods", "-A", "--field-selector", f"spec.nodeName={node}", "-o", "name",
                        namespaced=False).stdout
    return out.split()


def test_the_node_pods_are_idle_slurm_nodes_with_their_pods_cpus_and_memory(dist):
    nodes = dist.nodes()
    assert nodes == {n: ("idle", str(CPUS), str(MEMORY_MB)) for n in NODES}, nodes
    placed = sorted(dist.pod(n).spec["nodeName"] for n in NODES)
    assert placed == K8S_NODES, f"node pods on Kubernetes nodes {placed}: not spread"
    conf = dist.slurm("scontrol", "show", "node", NODES[0])
    assert f"MemSpecLimit={distributed.DISTRIBUTED_MEM_SPEC_MB}" in conf and "ActiveFeatures=nodes" in conf, conf
    assert not dist.kube.exec(dist.node_pod, "test", "-e", "/etc/slurm/slurm.conf", check=False).returncode == 0, \
        "a node pod has no slurm.conf of its own: slurmd fetched it from slurmctld (configless)"


def test_every_role_runs_auth_slurm_with_the_key_slurmusers_alone(dist):
    assert re.search(r"^AuthType\s*=\s*auth/slurm$", dist.slurm("scontrol", "show", "config"), re.M)
    for name in (f"{CLUSTER}-slurmctld-0", f"{CLUSTER}-accounting-0", NODES[0]):
        pod = dist.pod(name)
        procs = dist.kube.exec(pod, "bash", "-c", "cat /proc/[0-9]*/comm 2>/dev/null || true").stdout.split()
        assert "munged" not in procs, (name, procs)
        mode = dist.kube.exec(pod, "stat", "-c", "%U:%G %a", "/etc/slurm/slurm.key").stdout.strip()
        assert mode == "slurm:slurm 600", (name, mode)
    p = dist.kube.exec(dist.node_pod, "cat", "/etc/slurm/slurm.key", user=USER, check=False)
    assert p.returncode != 0 and "Permission denied" in p.stderr and not p.stdout, (p.stdout, p.stderr)
    ctld = dist.pod(f"{CLUSTER}-slurmctld-0")
    scraped = dist.kube.kubectl("exec", ctld.name, "-c", "slurm-exporter", "--", "python3", "-c",
                                f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:"
                                f"{metrics.EXPORTER_PORT}/metrics').read().decode())").stdout
    for daemon in ("slurmctld", "slurmdbd"):  # both answered the exporter's commands, which hold no key
        assert re.search(rf"^slurm_{daemon}_up 1\.0$", scraped, re.M), scraped[-2000:]


def test_a_job_from_a_users_home_completes_as_that_user(dist):
    out = dist.slurm("sbatch", "--parsable", "--wait", "-o", "whoami.%j", "--wrap",
                     "'id -un; pwd; hostname'", user=USER, timeout=120)
    job = out.strip().splitlines()[-1]
    text = dist.slurm("cat", f"whoami.{job}", user=USER).split()
    assert text[:2] == [USER, f"/home/{USER}"] and text[2] in NODES, text
    sacct = dist.slurm("sacct", "-X", "-n", "-P", "-j", job, "-o", "user,state")
    assert sacct.strip() == f"{USER}|COMPLETED", sacct


def test_srun_runs_one_step_across_both_node_pods(dist):
    out = dist.slurm("srun", "-N2", "hostname", user=USER, timeout=120)
    assert sorted(out.split()) == NODES, out


# --- what users do, against this deployment: JupyterLab, the REST API, JupyterHub (as test_01..03) ---------------
class DistStack(Deployment):
    """The stack as tests/e2e/deployment.Deployment reads one, for the users' scenarios: its Slurm pod (sacct, squeue,
    `scontrol token` as root) is slurmctld's."""

    @property
    def slurm(self) -> Pod:
        return self.app(distributed.CONTROLLER_APP)


@pytest.fixture(scope="class")
def stack(dist):
    return DistStack(dist.kube)


@pytest.fixture(scope="class")
def hub_users(stack):
    """alice and bob logged in to a hub run from the stack's chart values (tests/e2e/hub_deployment.py), with the
    user pods' egress the program computes for this deployment; each with a running server. Gone afterwards."""
    images = hub_images(stack)
    token_url = pulumi("stack", "output", "slurmTokenUrl", stack=STACK).stdout.strip()
    values = chart_values(stack, images["notebook"], token_url,
                          egress=hub_users_egress(restd=restd_admits_hub_users(stack), distributed=True))
    with running_hub(stack, images, values) as url:
        users = {name: HubUser(url, name) for name in ("alice", "bob")}
        for name, user in users.items():
            TIMINGS[f"dist: JupyterHub login to {name}'s server ready"] = start_and_time(
                user, password(values), crash_check(stack, name), logs=hub_logs(stack))
        yield users


class TestUsers:
    def test_jupyterlabs_user_runs_a_job_from_the_home_and_srun_across_both_node_pods(self, stack):
        d, user = stack, stack.lab_user
        job = d.sbatch(d.jupyter, job_script("lab"), workdir="p")  # (examples/test.slurm asks more than a node has)
        assert d.wait_job(job, pod=d.jupyter).startswith("COMPLETED")  # sacct in the JupyterLab pod
        who, node = d.sacct(job, "User,NodeList").split("|")
        assert who == user and node in NODES, (who, node)
        out = d.kube.exec(d.jupyter, "cat", f"/home/{user}/p/lab-{job}.out", user=user).stdout
        assert out.strip() == f"lab on {node} as {user} in /home/{user}/p", out
        hosts = d.kube.exec(d.jupyter, "sh", "-c", "cd && srun -N2 hostname", user=user, timeout=120).stdout
        assert sorted(hosts.split()) == NODES, hosts
        key = d.kube.exec(d.jupyter, "cat", "/etc/slurm/slurm.key", user=user, check=False)  # sackd's, as root
        assert key.returncode != 0 and "Permission denied" in key.stderr, (key.stdout, key.stderr)
        assert "sackd" in d.kube.exec(d.jupyter, "ps", "-o", "comm=", "-u", "root").stdout.split()

    def test_the_rest_api_runs_a_users_job_and_refuses_a_forged_token(self, stack):
        d = stack
        api = d.image_env()["SLURM_REST_API_VERSION"]
        with d.kube.port_forward(f"service/{d.service_of(d.restd)}", SLURMRESTD_PORT) as port:
            url = f"http://127.0.0.1:{port}"
            forged = SlurmRest(url, api, user=USER, token=forged_token(USER))
            assert not forged.authenticated()
            client = SlurmRest(url, api, user=USER, token=d.token(USER))
            assert client.authenticated()  # the control
            job = client.submit("#!/bin/bash\nid -un\n", name="dist-rest", cwd=f"/home/{USER}")
            assert client.wait_job(job, "COMPLETED", timeout=60) == "COMPLETED"
        assert d.sacct(str(job), "User,JobName") == f"{USER}|dist-rest"

    def test_hub_users_work_in_slurm_as_themselves_from_their_homes(self, stack, hub_users):
        """Each of two users, logged in at once: a job from the terminal and one from the Slurm panel, both in their
        home on a node pod, with their Slurm JWTs from the token service (no key in their pods)."""
        jobs = {}
        for name, user in hub_users.items():
            t0 = time.monotonic()
            for how in ("terminal", "panel"):
                jobs[job_from_home(stack, user, how, hosts=NODES)] = name
            TIMINGS[f"dist: {name}'s two jobs written, submitted, COMPLETED, read"] = time.monotonic() - t0
            token = in_pod(stack, name, "slurm-token").stdout.strip()
            assert json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["sun"] == name
            assert KEYS_MOUNT not in json.dumps(user_pod(stack, name).spec)  # no key of the cluster
            assert in_pod(stack, name, "test ! -e /etc/slurm/slurm.key", check=False).returncode == 0
        rows = stack.kube.exec(stack.slurm, "sacct", "-n", "-X", "-P", "-j", ",".join(jobs), "-o", "JobID,User").stdout
        assert dict(r.split("|") for r in rows.split()) == jobs, rows


def test_a_dead_kubernetes_node_takes_its_slurm_node_down_and_its_pod_rejoins_when_it_boots(dist):
    """sci-node-1 dies (its kubelet, containerd, kube-proxy, policy engine and every process of its pods killed at
    once; slurmctld and accounting are on sci-node, distributed.controlNodeSelector): slurmctld marks the Slurm node
    whose pod ran there DOWN within SlurmdTimeout, and the job running on it ends NODE_FAIL (JobRequeue=0); the other
    node runs jobs meanwhile. Booted again, the kubelet restarts the pod, whose slurmd registers as the same Slurm
    node at its new address and is idle (ReturnToService=2)."""
    victim = next(n for n in NODES if dist.pod(n).spec["nodeName"] == K8S_NODES[1])
    other = dist.client = next(n for n in NODES if n != victim)  # Slurm commands from the pod that lives
    assert dist.pod(other).spec["nodeName"] == K8S_NODES[0], "one node pod on each Kubernetes node"
    job = ""
    try:
        job = dist.slurm("sbatch", "--parsable", "-w", victim, "-o", "/dev/null", "--wrap", "'sleep 600'",
                         user=USER).strip()
        wait_until(lambda: dist.queue().get(job) == "RUNNING", 60, "the job running", lambda: str(dist.queue()))
        t0 = time.monotonic()
        kube("node", "kill", SECOND)
        try:
            wait_until(lambda: dist.nodes()[victim][0].startswith("down"), 2 * SLURMD_TIMEOUT_S + 30,
                       f"{victim} DOWN in sinfo", lambda: str(dist.nodes()))
            TIMINGS["dist: Kubernetes node killed to its Slurm node DOWN"] = time.monotonic() - t0
            wait_until(lambda: dist.records().get(job) == "NODE_FAIL", 60, "the job NODE_FAIL",
                       lambda: str(dist.records().get(job)))
            out = dist.slurm("srun", "-w", other, "hostname", user=USER, timeout=120)
            assert out.split() == [other], out
        finally:
            t1 = time.monotonic()
            kube("node", "up", SECOND)
        wait_until(dist.idle, 180, f"{victim} idle again", lambda: str(dist.nodes()))
        TIMINGS["dist: Kubernetes node booted to its Slurm node idle"] = time.monotonic() - t1
        addr = re.search(r"NodeAddr=(\S+)", dist.slurm("scontrol", "show", "node", victim)).group(1)
        assert addr == dist.pod(victim).ip, f"slurmctld knows {victim} at {addr}, its pod is at {dist.pod(victim).ip}"
        out = dist.slurm("srun", "-w", victim, "hostname", user=USER, timeout=120)
        assert out.split() == [victim], out
    finally:
        if job:  # ended NODE_FAIL unless the test failed before
            dist.kube.exec(dist.node_pod, "scancel", job, check=False)
        dist.client = NODES[0]


def test_association_changes_reach_the_running_slurmctld(dist):
    """slurmdbd pushes association changes to slurmctld (the accounting -> slurmctld edge of components/network.py):
    bob's association removed in the accounting pod refuses his next job at submit, and added again admits it, with
    no restart of slurmctld. Without that edge slurmctld keeps the associations it loaded at its start."""
    accounting = dist.pod(f"{CLUSTER}-accounting-0")

    def sacctmgr(*args: str) -> None:
        dist.kube.exec(accounting, "timeout", "20", "sacctmgr", "-i", *args)

    def submit() -> subprocess.CompletedProcess:
        return dist.kube.exec(dist.node_pod, "runuser", "-u", "bob", "--", "bash", "-c",
                              "cd ~ && sbatch --parsable -o /dev/null --wrap true", check=False)

    sacctmgr("delete", "user", "name=bob", "cluster=" + CLUSTER)
    try:
        refused = wait_until(lambda: (p := submit()).returncode != 0 and p, 30, "bob's job refused",
                             lambda: submit().stdout, interval=0.5)
        assert "Invalid account" in refused.stderr, refused.stderr
    finally:
        sacctmgr("add", "user", "name=bob", "account=users", "cluster=" + CLUSTER)
    admitted = wait_until(lambda: (p := submit()).returncode == 0 and p, 30, "bob's job admitted again",
                          lambda: submit().stderr, interval=0.5)
    assert admitted.stdout.strip().isdigit(), admitted.stdout


def test_slurmctlds_pod_deleted_with_jobs_running_and_queued_loses_nothing(dist):
    jobs = [dist.slurm("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "'sleep 25'", user=USER).strip()
            for _ in range(4)]  # 2 nodes x 1 CPU: two run, two wait
    wait_until(lambda: list(dist.queue().values()).count("RUNNING") == 2, 60, "two jobs running",
               lambda: str(dist.queue()))
    before_queue = dist.queue()
    assert set(jobs) <= set(before_queue) and sorted(before_queue[j] for j in jobs) == ["PENDING"] * 2 + ["RUNNING"] * 2
    before = dist.records()
    t0 = time.monotonic()
    dist.kube.restart(dist.pod(f"{CLUSTER}-slurmctld-0"), timeout=300)
    TIMINGS["dist: slurmctld pod deleted to Ready"] = time.monotonic() - t0
    after_queue = wait_until(dist.queue, 60, "squeue to answer again")
    assert all(j in after_queue or dist.records().get(j) == "COMPLETED" for j in jobs), (before_queue, after_queue)
    wait_until(lambda: all(dist.records().get(j) == "COMPLETED" for j in jobs), 180,
               "every job COMPLETED after slurmctld's restart", lambda: str({j: dist.records().get(j) for j in jobs}))
    after = dist.records()
    assert set(before) <= set(after), f"records lost: {set(before) - set(after)}"
    assert len(after) == len(before), (len(before), len(after))  # the same jobs, finished: nothing added or lost
    assert all(after[j] == "COMPLETED" for j in jobs), {j: after[j] for j in jobs}


def test_jobs_that_end_while_the_accounting_pod_is_gone_lose_no_record(dist):
    """The accounting pod (slurmdbd and MariaDB) deleted, its StatefulSet held at 0 while jobs are submitted and end:
    slurmctld keeps their records in its DBD agent queue (sdiag; the proof that records were waiting) and sends them
    once the new pod answers. Every job then shows COMPLETED in sacct, and the count is the one before plus these."""
    accounting = f"statefulset/{CLUSTER}-accounting"
    before = dist.records()
    dist.kube.kubectl("scale", accounting, "--replicas=0")
    try:
        dist.kube.kubectl("wait", "--for=delete", f"pod/{CLUSTER}-accounting-0", "--timeout=120s", timeout=130)
        jobs = [dist.slurm("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true", user=USER).strip()
                for _ in range(4)]
        wait_until(lambda: not set(jobs) & set(dist.queue()), 60, "the jobs to end", lambda: str(dist.queue()))
        queued = int(re.search(r"DBD Agent queue size: (\d+)", dist.slurm("sdiag")).group(1))
        assert queued > 0, "slurmctld holds no record for slurmdbd: the jobs' records went nowhere"
    finally:
        t0 = time.monotonic()
        dist.kube.kubectl("scale", accounting, "--replicas=1")
        wait_until(lambda: dist.kube.pod(f"{CLUSTER}-accounting-0"), 60, "the accounting pod made again")
        dist.kube.wait_ready([dist.pod(f"{CLUSTER}-accounting-0")], 300)
        TIMINGS["dist: accounting pod back to Ready"] = time.monotonic() - t0
    wait_until(lambda: all(dist.records().get(j) == "COMPLETED" for j in jobs), 180,
               "every job COMPLETED in sacct once slurmdbd is back",
               lambda: str({j: dist.records().get(j) for j in jobs}))
    after = dist.records()
    assert set(before) <= set(after), f"records lost: {set(before) - set(after)}"
    assert len(after) == len(before) + len(jobs), (len(before), len(jobs), len(after))


def test_a_deleted_node_pod_requeues_its_job_and_rejoins_as_the_same_slurm_node(dist):
    """NODES[1]'s pod deleted while a `--requeue` job runs there (NODES[0] busy with another): its preStop hook
    drains the node, sets it DOWN at the grace's end, which requeues the job (Slurm's own: without --requeue it
    ends NODE_FAIL, JobRequeue=0), and deletes the node; the replacement pod registers as the same Slurm node, and the
    job runs again there (Restarts=1)."""
    node = NODES[1]
    busy = dist.slurm("sbatch", "--parsable", "-w", NODES[0], "-o", "/dev/null", "--wrap", "'sleep 600'",
                      user=USER).strip()
    job = ""
    try:
        wait_until(lambda: dist.queue().get(busy) == "RUNNING", 60, "the busy job running", lambda: str(dist.queue()))
        job = dist.slurm("sbatch", "--parsable", "--requeue", "-o", "/dev/null", "--wrap", "'sleep 600'",
                         user=USER).strip()
        wait_until(lambda: dist.queue().get(job) == "RUNNING", 60, "the --requeue job running", lambda: str(dist.queue()))
        assert dist.slurm("squeue", "-h", "-j", job, "-o", "%N").strip() == node
        t0 = time.monotonic()
        dist.kube.restart(dist.pod(node), timeout=300)
        TIMINGS["dist: node pod with a job deleted to Ready (drain grace 30 s)"] = time.monotonic() - t0

        def show() -> str:
            return dist.slurm("scontrol", "show", "job", job)
        wait_until(lambda: "Restarts=1" in (s := show()) and "JobState=PENDING" in s, 120, "the job requeued", show)
        TIMINGS["dist: node pod deleted to its job requeued"] = time.monotonic() - t0
        # Slurm holds a requeued job about two minutes (its BeginTime); as an operator may, start it now.
        dist.slurm("scontrol", "update", f"jobid={job}", "starttime=now")
        wait_until(lambda: "JobState=RUNNING" in (s := show()) and f" NodeList={node}" in s, 120,
                   f"the requeued job running again on {node}", show)
    finally:
        dist.kube.exec(dist.node_pod, "scancel", busy, *([job] if job else []), check=False)
    wait_until(dist.idle, 120, f"{node} idle again", lambda: str(dist.nodes()))
    assert sorted(dist.nodes()) == NODES, "the replacement registered as the same node, not a second one"
    addr = re.search(r"NodeAddr=(\S+)", dist.slurm("scontrol", "show", "node", node)).group(1)
    assert addr == dist.pod(node).ip, f"slurmctld knows {node} at {addr}, its new pod is at {dist.pod(node).ip}"
    out = dist.slurm("srun", "-w", node, "hostname", user=USER, timeout=120)
    assert out.split() == [node], out


def up_with(tmp_path, **settings: str) -> float:
    """`pulumi up` of the stack with `settings` changed in a copy of its config (Pulumi.dist.yaml stays as
    committed): its seconds."""
    stack = StackCopy(STACK, f"Pulumi.{STACK}.yaml", tmp_path / f"Pulumi.{STACK}.yaml")
    for key, value in settings.items():
        stack.set(key, value)
    t0 = time.monotonic()
    stack.pulumi("up", timeout=900)
    return time.monotonic() - t0


def test_more_nodes_add_an_idle_slurm_node_that_runs_jobs(dist, tmp_path):
    new = f"{CLUSTER}-node-2"
    t0 = time.monotonic()
    TIMINGS["dist: nodes 2 -> 3, pulumi up"] = up_with(tmp_path, nodes="3")
    wait_until(lambda: dist.nodes().get(new, ("",))[0] == "idle", 120, f"{new} idle", lambda: str(dist.nodes()))
    TIMINGS["dist: nodes 2 -> 3, pulumi up to the new node idle"] = time.monotonic() - t0
    assert dist.nodes() == {n: ("idle", str(CPUS), str(MEMORY_MB)) for n in [*NODES, new]}, dist.nodes()
    out = dist.slurm("srun", "-w", new, "hostname", user=USER, timeout=120)
    assert out.split() == [new], out


def test_fewer_nodes_drain_the_ones_that_go_and_delete_them_after_their_jobs(dist, tmp_path):
    """3 -> 1: dist-node-2 runs a job shorter than the grace, dist-node-1 one longer. Both pods' preStop hooks drain
    their nodes; the short job completes, the long one ends NODE_FAIL at the grace's end (its node set DOWN); both
    nodes are deleted, so sinfo shows dist-node-0 alone, idle."""
    assert sorted(dist.nodes()) == [*NODES, f"{CLUSTER}-node-2"], "runs after the scale-out test"

    def sbatch(node: str, seconds: int) -> str:
        return dist.slurm("sbatch", "--parsable", "-w", node, "-o", "/dev/null", "--wrap",
                          f"'sleep {seconds}'", user=USER).strip()

    short, long = sbatch(f"{CLUSTER}-node-2", 20), sbatch(f"{CLUSTER}-node-1", 10 * GRACE_S)
    wait_until(lambda: (q := dist.queue()).get(short) == q.get(long) == "RUNNING", 60, "both jobs running",
               lambda: str(dist.queue()))
    started = time.monotonic()
    seconds = up_with(tmp_path, nodes="1")
    TIMINGS["dist: nodes 3 -> 1 (a 20 s job running), pulumi up"] = seconds
    nodes = dist.nodes()
    wait_until(lambda: dist.nodes() == {NODES[0]: ("idle", str(CPUS), str(MEMORY_MB))}, 60,
               "dist-node-0 alone, idle", lambda: str(dist.nodes()))
    TIMINGS["dist: nodes 3 -> 1, pulumi up to the nodes deleted"] = time.monotonic() - started
    records = wait_until(lambda: (r := dist.records()).get(short) in ("COMPLETED",) and r.get(long) != "RUNNING" and r,
                         60, "both jobs ended", lambda: str(dist.records()))
    assert records[short] == "COMPLETED", f"the job within the grace: {records[short]}"
    assert records[long] == "NODE_FAIL", f"the job beyond the grace: {records[long]}"
    assert set(nodes) <= {NODES[0]}, f"pulumi up returned while these nodes were still there: {nodes}"
    assert seconds >= GRACE_S, f"pulumi up returned after {seconds:.1f}s, before the grace of the long job's node"


def test_key_rotation_replaces_every_pod_and_slurm_goes_on_with_the_new_key(dist, tmp_path):
    """keyRotation changed, with the nodes there are (one, after the test before): when `pulumi up` returns, every
    pod of the stack is new and Ready (the node pods' roll included: toolchain/pulumi.sh k8s_hook_1), every Slurm role
    and JupyterLab hold the new slurm.key, accounting lost no record, and a job from JupyterLab's user's home
    completes."""
    d = DistStack(dist.kube)
    before = {p.uid: p.labels["app.kubernetes.io/name"] for p in d.kube.pods}
    records = dist.records()
    _, old_key = d.secret_with("slurm.key")
    TIMINGS["dist: pulumi up after keyRotation (every pod new)"] = up_with(
        tmp_path, nodes=str(len(dist.nodes())), keyRotation=f"e2e-{secrets.token_hex(4)}")  # (README: not both)
    pods = d.kube.pods
    assert {p.labels["app.kubernetes.io/name"] for p in pods} == set(before.values())
    for pod in pods:
        assert pod.uid not in before, f"{pod.name}: still the pod from before the update"
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod.status.get("conditions", [])), pod.name
    _, new_key = d.secret_with("slurm.key")
    assert new_key != old_key
    node_pods = [p for p in pods if p.labels["app.kubernetes.io/name"] == distributed.NODE_APP]
    for pod in (d.slurm, d.app(distributed.ACCOUNTING_APP), *node_pods, d.jupyter):
        held = d.kube.exec(pod, "sha256sum", "/etc/slurm/slurm.key").stdout.split()[0]
        assert held == hashlib.sha256(new_key).hexdigest(), pod.name
    assert dist.records() == records, "accounting lost or changed a record"
    job = d.sbatch(d.jupyter, job_script("rotated"), workdir="p")
    assert d.wait_job(job, pod=d.jupyter).startswith("COMPLETED")
