"""slurm-exporter beside a real slurm-single-node, as the pod runs it (components/single_node.py): a second container
of the same image in the single node's network namespace, as its own uid with no capability and a read-only root,
holding only slurm.conf and munged's socket directory (a world-writable directory, as an emptyDir is, that the
single node's entrypoint makes munged's). Its answers are read with prometheus_client's parser.

Runs on every Slurm version (scripts/test's lighter check includes it): 24.11 and 22.05 compute the figures from
Slurm's JSON output, 25.11+ (26.05) serve slurmctld's own endpoints through."""

from __future__ import annotations

import os
import tempfile
import time
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components import metrics, single_node
from components.slurm_files import version_facts
from tests.images.slurm_containers import SingleNode, make_files, podman, wait_until

pytestmark = pytest.mark.containers

PORT = metrics.EXPORTER_PORT
TIMEOUT_S = 4  # the exporter's default per-command timeout (SLURM_EXPORTER_TIMEOUT)


def start_exporter(node: SingleNode, munge_dir: str, name: str, port: int = PORT, env: tuple[str, ...] = (),
                   limits: tuple[str, ...] = ()) -> str:
    """The exporter as the pod runs it, in `node`'s network namespace; returns the container's name. `limits`:
    podman's --cpus/--memory arguments (the pod's limits: pod_limits())."""
    conf = os.path.join(node.files.client_config, "slurm.conf")  # slurm.conf alone, as the pod's ConfigMap item
    args = ["run", "-d", "--no-healthcheck", "--name", name, "--network", f"container:{node.name}",
            "--user", f"{single_node.EXPORTER_UID}:{single_node.EXPORTER_UID}", "--read-only", "--cap-drop=ALL",
            "--security-opt=no-new-privileges", "-v", f"{munge_dir}:{single_node.MUNGE_SOCKET_DIR}:ro",
            "-v", f"{conf}:/etc/slurm-config/slurm.conf:ro", "-e", "SLURM_CONF=/etc/slurm-config/slurm.conf",
            "-e", f"SLURM_EXPORTER_PORT={port}"]
    for e in env:
        args += ["-e", e]
    args += list(limits)
    podman(*args, "--entrypoint", single_node.EXPORTER, node.image)
    return name


def pod_limits() -> tuple[str, ...]:
    """The exporter container's CPU and memory limits in the pod (single_node.EXPORTER_LIMITS), as podman's."""
    cpu, memory = single_node.EXPORTER_LIMITS
    cpus = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    assert memory.endswith("Mi"), memory
    return ("--cpus", f"{cpus:g}", "--memory", f"{int(memory[:-2])}m", "--memory-swap", f"{int(memory[:-2])}m")


class Scrape(dict):
    """One answer of GET /metrics: {family name: [Sample]}, and how long it took."""

    seconds: float = 0.0

    def value(self, name: str, **labels: str) -> float:
        found = [s.value for s in self.get(name, []) if s.name == name and labels.items() <= s.labels.items()]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples ({sorted(self)[:50]} ...)"
        return found[0]


def scrape(ip: str, port: int = PORT) -> Scrape:
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = Scrape({f.name: f.samples for f in text_string_to_metric_families(text)})
    out.seconds = time.monotonic() - t0
    return out


@pytest.fixture(scope="module")
def pair(images, version, network):
    """(single node, exporter container name, munge directory): one pair for the module."""
    suffix = uuid.uuid4().hex[:6]
    munge_dir = tempfile.mkdtemp(prefix="sci-munge-")
    os.chmod(munge_dir, 0o777)  # what an emptyDir is: the entrypoint must make it munged's
    files = make_files(version, f"sn-{suffix}")
    node = SingleNode(f"sci-sn-{suffix}", images["slurm-single-node"], files, network, f"sci-state-{suffix}",
                      run_args=("-v", f"{munge_dir}:{single_node.MUNGE_SOCKET_DIR}"))
    exporter = f"sci-exporter-{suffix}"
    try:
        node.start().wait_ready()
        start_exporter(node, munge_dir, exporter)
        wait_until(lambda: scrape(node.ip).value("slurm_slurmctld_up") == 1, 30, "the exporter to see slurmctld",
                   lambda: podman("logs", exporter, check=False).stderr)
        yield node, exporter, munge_dir
    finally:
        podman("rm", "-f", "-t", "2", exporter, check=False)
        node.remove()
        podman("volume", "rm", "-f", node.volume, check=False)
        files.cleanup()


def signal_daemon(node: SingleNode, daemon: str, signal: str) -> None:
    """kill -SIGNAL the daemon's process (by /proc/PID/comm: bookworm's slim image has no pgrep)."""
    node.exec("sh", "-c", f'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = {daemon} ] '
              f'&& kill -{signal} "${{p#/proc/}}" && exit 0; done; exit 1')


def wait_figure(node: SingleNode, what: str, condition, timeout: float = 30) -> Scrape:
    """Scrape until condition(scrape) holds; returns that scrape."""
    return wait_until(lambda: (s := scrape(node.ip)) and condition(s) and s, timeout, what)


def test_the_exporter_runs_as_its_own_user_without_keys(pair):
    node, exporter, _ = pair
    out = podman("exec", exporter, "sh", "-c", "id -u; id -g; ls /etc/slurm-keys /etc/munge 2>&1; "
                 "ls /etc/slurm-config; cat /proc/1/status | grep CapEff", check=False).stdout.split("\n")
    assert out[0] == str(single_node.EXPORTER_UID) and out[1] == str(single_node.EXPORTER_UID), out
    text = "\n".join(out)
    assert "munge.key" not in text and "jwt_hs256.key" not in text and "slurmdbd.conf" not in text, text
    assert "CapEff:\t0000000000000000" in text, text
    # munged's socket directory, made safe by the entrypoint from the world-writable one mounted (munged refuses that)
    mode = podman("exec", node.name, "stat", "-c", "%a %U", single_node.MUNGE_SOCKET_DIR).stdout.split()
    assert mode == ["755", "munge"], mode


def test_a_job_moves_the_running_and_completed_figures(pair):
    node, _, _ = pair
    before = scrape(node.ip)
    completed = before.value("slurm_jobs_completed")
    job = node.sbatch("--wrap", "sleep 4")
    running = wait_figure(node, f"job {job} running in the figures",
                          lambda s: s.value("slurm_jobs_running") >= before.value("slurm_jobs_running") + 1)
    assert running.value("slurm_jobs_cpus_alloc") >= 1
    assert running.value("slurm_partition_jobs_running", partition="debug") >= 1
    assert running.value("slurm_user_jobs_running", username="root") >= 1
    node.wait_job(job, "COMPLETED", timeout=60)
    after = wait_figure(node, f"job {job} completed in the figures",
                        lambda s: s.value("slurm_jobs_completed") == completed + 1)
    assert after.value("slurm_jobs_running") == before.value("slurm_jobs_running")
    assert after.value("slurm_user_jobs_completed", username="root") >= 1


def test_pending_jobs_show_with_their_reason_and_wait(pair):
    node, _, _ = pair
    job = node.sbatch("--hold", "--wrap", "true")
    try:
        s = wait_figure(node, "a held job in the pending figures",
                        lambda s: "slurm_jobs_pending_reason" in s
                        and any(x.labels.get("reason") == "JobHeldUser" for x in s["slurm_jobs_pending_reason"]))
        assert s.value("slurm_jobs_pending_reason", reason="JobHeldUser") == 1
        assert s.value("slurm_jobs_pending", ) >= 1
        time.sleep(1.5)
        assert scrape(node.ip).value("slurm_jobs_pending_longest_seconds", reason="JobHeldUser") >= 1
    finally:
        node.exec("scancel", job, check=False)


def irregular_array(count: int = 40) -> tuple[str, int]:
    """An --array of `count` runs of 3 tasks with holes between (1-3,6-8,...): Slurm prints its task list as is,
    longer than the 64 characters it cuts such lists to by default. (its --array value, its number of tasks)"""
    return ",".join(f"{i}-{i + 2}" for i in range(1, 5 * count, 5)), 3 * count


def test_an_irregular_arrays_pending_tasks_are_all_counted(pair):
    node, _, _ = pair
    tasks, count = irregular_array()
    assert len(tasks) > 64
    job = node.sbatch("--hold", f"--array={tasks}", "--wrap", "true")
    try:
        s = wait_figure(node, "the held array in the pending figures",
                        lambda s: any(x.labels.get("reason") == "JobHeldUser"
                                      for x in s.get("slurm_jobs_pending_reason", [])))
        assert s.value("slurm_jobs_pending_reason", reason="JobHeldUser") == count
    finally:
        node.exec("scancel", job, check=False)


def test_a_node_set_down_shows_in_the_node_figures(pair):
    node, _, _ = pair
    assert scrape(node.ip).value("slurm_nodes_down") == 0
    node.exec("scontrol", "update", "nodename=c2", "state=down", "reason=test")
    try:
        s = wait_figure(node, "node c2 down in the figures", lambda s: s.value("slurm_nodes_down") == 1)
        assert s.value("slurm_partition_nodes_down", partition="debug") == 1
        assert s.value("slurm_nodes") == 2 and s.value("slurm_node_cpus", node="c2") == 2
    finally:
        node.exec("scontrol", "update", "nodename=c2", "state=resume")
    wait_figure(node, "node c2 back", lambda s: s.value("slurm_nodes_down") == 0)


@pytest.mark.parametrize("daemon,figure", [("slurmdbd", "slurm_slurmdbd_up"), ("slurmctld", "slurm_slurmctld_up")])
def test_a_daemon_that_does_not_answer_is_0_and_the_exporter_answers_on(pair, daemon, figure):
    node, _, _ = pair
    assert scrape(node.ip).value(figure) == 1  # control
    signal_daemon(node, daemon, "STOP")  # alive but silent: every request to it hangs
    try:
        s = wait_figure(node, f"{figure} 0 while {daemon} is stopped", lambda s: s.value(figure) == 0,
                        timeout=3 * TIMEOUT_S + 10)
        assert s.seconds < TIMEOUT_S + 3, f"a scrape took {s.seconds:.1f}s: the commands' timeouts did not hold"
        other = {"slurm_slurmdbd_up": "slurm_slurmctld_up", "slurm_slurmctld_up": "slurm_slurmdbd_up"}[figure]
        if daemon == "slurmdbd":
            assert s.value(other) == 1
    finally:
        signal_daemon(node, daemon, "CONT")
    wait_figure(node, f"{figure} back to 1", lambda s: s.value(figure) == 1, timeout=30)


def test_every_version_serves_the_same_core_names(pair, version):
    node, _, _ = pair
    s = scrape(node.ip)
    core = {"slurm_jobs", "slurm_jobs_pending", "slurm_jobs_running", "slurm_jobs_completed", "slurm_jobs_failed",
            "slurm_jobs_cpus_alloc", "slurm_jobs_memory_alloc", "slurm_nodes", "slurm_nodes_idle",
            "slurm_nodes_alloc", "slurm_nodes_mixed", "slurm_nodes_down", "slurm_nodes_drain", "slurm_nodes_drained",
            "slurm_node_cpus", "slurm_node_cpus_alloc", "slurm_node_cpus_idle", "slurm_node_memory_bytes",
            "slurm_node_memory_alloc_bytes", "slurm_partitions", "slurm_partition_nodes", "slurm_partition_cpus",
            "slurm_partition_jobs_pending", "slurm_partition_nodes_idle", "slurm_partition_nodes_cpus_idle",
            "slurm_slurmctld_up", "slurm_slurmdbd_up"}
    if version != "22.05":  # no sdiag --json there
        core |= {"slurm_schedule_cycle_last", "slurm_schedule_cycle_cnt", "slurm_bf_cycle_last",
                 "slurm_slurmdbd_queue_size", "slurm_agent_queue_size", "slurm_sdiag_jobs_submitted"}
    assert sorted(core - set(s)) == []
    assert s.value("slurm_node_memory_bytes", node="c1") == 2560, "Slurm's MB (RealMemory), as 25.11+ serves it"


def test_figures_come_from_slurmctld_own_endpoints_where_slurm_has_them(pair, version):
    node, _, _ = pair
    s = scrape(node.ip)
    own = version_facts(version).openmetrics
    (info,) = s["slurm_exporter_info"]
    assert info.labels["mode"] == ("slurmctld" if own else "commands"), info
    # Figures only slurmctld's endpoints give (the exporter computes none of them).
    only_slurmctld = {"slurm_sched_stats_timestamp", "slurm_partition_jobs_max_job_nodes_nohold",
                      "slurm_jobs_gpus_alloc", "slurm_last_proc_req_start"}
    assert (only_slurmctld <= set(s)) == own, sorted(only_slurmctld & set(s))
    if not own:
        return
    direct = text_string_to_metric_families(node.exec("curl", "-sf", "http://127.0.0.1:6817/metrics/nodes").stdout)
    direct = {f.name: f.samples for f in direct}
    assert direct["slurm_node_cpus"] == s["slurm_node_cpus"] and direct["slurm_nodes"] == s["slurm_nodes"]


def test_computed_figures_equal_slurmctld_own(pair, version):
    """On 25.11+ the exporter, told to compute (SLURM_EXPORTER_SOURCE=commands), gives what slurmctld's endpoints
    give for the same state: one running job, one pending for resources, one held, a held irregular array and a
    held job submitted to two partitions."""
    if not version_facts(version).openmetrics:
        pytest.skip(f"Slurm {version} has no metrics endpoints to compare with")
    node, _, munge_dir = pair
    computing = start_exporter(node, munge_dir, f"{pair[1]}-commands", port=PORT + 1,
                               env=("SLURM_EXPORTER_SOURCE=commands",))
    node.exec("scontrol", "create", "partitionname=extra", "nodes=ALL", "state=up")
    tasks, count = irregular_array()
    jobs = [node.sbatch("--wrap", "sleep 60"), node.sbatch("-N2", "--mem=2500", "--wrap", "sleep 60"),
            node.sbatch("--hold", "--wrap", "true"), node.sbatch("--hold", f"--array={tasks}", "--wrap", "true"),
            node.sbatch("--hold", "-p", "debug,extra", "--wrap", "true")]
    pending = 3 + count
    try:
        wait_until(lambda: scrape(node.ip, PORT + 1).value("slurm_jobs_running") == 1
                   and scrape(node.ip).value("slurm_jobs_pending") == pending, 30,
                   f"one job running, {pending} pending")
        ours, slurms = scrape(node.ip, PORT + 1), scrape(node.ip)
        assert ours["slurm_exporter_info"][0].labels["mode"] == "commands"
        compared = [n for n in ("slurm_jobs", "slurm_jobs_pending", "slurm_jobs_running", "slurm_jobs_hold",
                                "slurm_jobs_cpus_alloc", "slurm_jobs_memory_alloc", "slurm_jobs_nodes_alloc",
                                "slurm_nodes", "slurm_nodes_idle", "slurm_nodes_mixed", "slurm_nodes_alloc",
                                "slurm_node_cpus", "slurm_node_cpus_alloc", "slurm_node_cpus_idle",
                                "slurm_node_memory_bytes", "slurm_node_memory_alloc_bytes", "slurm_partitions",
                                "slurm_partition_nodes", "slurm_partition_cpus", "slurm_partition_jobs",
                                "slurm_partition_jobs_pending", "slurm_partition_jobs_running",
                                "slurm_user_jobs_pending", "slurm_user_jobs_running", "slurm_schedule_cycle_cnt")]
        missing = {n: (n in ours, n in slurms) for n in compared if not (ours.get(n) and slurms.get(n))}
        assert missing == {}, f"figures absent (ours, slurmctld's): {missing}"
        assert ours.value("slurm_jobs_pending") == pending
        differ = {n: (sorted((tuple(x.labels.items()), x.value) for x in ours.get(n, [])),
                      sorted((tuple(x.labels.items()), x.value) for x in slurms.get(n, [])))
                  for n in compared if sorted((tuple(x.labels.items()), x.value) for x in ours.get(n, []))
                  != sorted((tuple(x.labels.items()), x.value) for x in slurms.get(n, []))}
        assert differ == {}, differ
    finally:
        for job in jobs:
            node.exec("scancel", job, check=False)
        node.exec("scontrol", "delete", "partitionname=extra", check=False)
        podman("rm", "-f", "-t", "2", computing, check=False)


def test_figures_of_a_scrape(pair):
    """Not a check: the closing note's figures (scrape time, series, the exporter's RSS)."""
    node, exporter, _ = pair
    times = [scrape(node.ip).seconds for _ in range(5)]
    s = scrape(node.ip)
    series = sum(len(v) for v in s.values())
    rss = s.value("process_resident_memory_bytes") / 2 ** 20
    print(f"scrape {min(times):.2f}-{max(times):.2f}s, {series} series, exporter RSS {rss:.0f} MiB, "
          f"collect {s.value('slurm_exporter_collect_seconds'):.2f}s")
    assert series > 50


def test_a_thousand_jobs_fit_the_pods_limits(pair, version):
    """The exporter under the pod's CPU and memory limits (single_node.EXPORTER_LIMITS) with 1000 held jobs (1000
    records, as a finished 1000-task array leaves for MinJobAge): every source answers within its timeout and the
    container stays below its memory limit. Prints the figures single_node.py's sizing comment quotes."""
    node, exporter, munge_dir = pair
    limited = start_exporter(node, munge_dir, f"{exporter}-limited", port=PORT + 2, limits=pod_limits())
    node.exec("sh", "-c", "for i in $(seq 1000); do sbatch --hold --parsable --wrap true >/dev/null || exit 1; done",
              timeout=300)
    try:
        wait_until(lambda: scrape(node.ip, PORT + 2).value("slurm_jobs_pending") >= 1000
                   if not version_facts(version).openmetrics else
                   scrape(node.ip, PORT + 2).value("slurm_jobs_pending_reason", reason="JobHeldUser") >= 1000,
                   60, "1000 held jobs in the figures", lambda: podman("logs", limited, check=False).stderr)
        scrapes = [scrape(node.ip, PORT + 2) for _ in range(3)]
        up = {x.labels["source"]: x.value for x in scrapes[-1]["slurm_exporter_source_up"]}
        assert set(up.values()) == {1.0}, up
        # The container's memory high-water mark (cgroup v1 or v2), and the squeue child's alone.
        peak = podman("exec", limited, "sh", "-c", "cat /sys/fs/cgroup/memory.peak 2>/dev/null || "
                      "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes", check=False).stdout.strip()
        child = podman("exec", limited, "python3", "-c", "import resource, subprocess, os; subprocess.run("
                       "['squeue', '--json', '--states=" + ("PENDING" if version_facts(version).openmetrics else "all")
                       + "'], stdout=subprocess.DEVNULL, env={**os.environ, 'SLURM_BITSTR_LEN': '0'}); "
                       "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)", check=False).stdout.strip()
        hwm = podman("exec", limited, "grep", "VmHWM", "/proc/1/status", check=False).stdout.split()
        status = podman("inspect", "--format", "{{.State.Status}} {{.State.OOMKilled}}", limited).stdout.strip()
        print(f"\n1000 held jobs, Slurm {version}, limits {single_node.EXPORTER_LIMITS}: scrape "
              f"{min(x.seconds for x in scrapes):.2f}-{max(x.seconds for x in scrapes):.2f}s, collect "
              f"{max(x.value('slurm_exporter_collect_seconds') for x in scrapes):.2f}s; container memory peak "
              f"{int(peak or 0) / 2 ** 20:.0f} MiB, exporter VmHWM {int(hwm[1]) / 1024 if hwm else 0:.0f} MiB, "
              f"squeue --json max RSS {int(child or 0) / 1024:.0f} MiB; {status}")
        assert status == "running false", status
        assert max(x.seconds for x in scrapes) < TIMEOUT_S + 2
    finally:
        node.exec("sh", "-c", "scancel --state=PENDING --user=root", check=False)
        podman("rm", "-f", "-t", "2", limited, check=False)
