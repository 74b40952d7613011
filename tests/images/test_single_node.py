"""slurm-single-node: all daemons come up, run the examples (the seed's job, two nodes), and report a dying daemon."""

import os
import re

import pytest

from tests.images.slurm_containers import EXAMPLES, make_files, podman, wait_until

pytestmark = pytest.mark.containers


def test_nodes_idle_and_healthy(single_node):
    states = single_node.node_states()
    assert states == {n: "idle" for n in single_node.files.nodes}, states
    hc = single_node.exec("slurm-healthcheck", check=False)
    assert hc.returncode == 0, hc.stdout + hc.stderr
    print(f"start to nodes idle {single_node.timings['nodes_idle']:.2f}s, "
          f"to REST ready {single_node.timings['rest_ready']:.2f}s")


def test_example_job_completes_and_is_in_sacct(single_node, version):
    with open(os.path.join(EXAMPLES, "test.slurm")) as f:  # its output goes to its directory
        job = single_node.sbatch("--chdir=/tmp", script=f.read())
    single_node.wait_job(job, "COMPLETED", timeout=90)
    out = single_node.exec("cat", f"/tmp/test-{job}.out").stdout
    assert re.search(rf"^job {job} on c\d+ .* as root with 2300 MB$", out, re.M), out
    # The Python step, with the Debian suite's /usr/bin/python3 (the Jupyter images' Python).
    assert re.search(r"^python 3\.\d+\.\d+ \(/usr/bin/python3\) on c\d+: held 1024 MiB$", out, re.M), out
    steps = single_node.exec("sacct", "-n", "-P", "-j", job, "-o", "JobName,State").stdout.split()[1:]
    assert steps == ["batch|COMPLETED", "python3|COMPLETED", "sleep|COMPLETED"], steps
    assert single_node.sacct(job, "ExitCode") == "0:0"
    if version != "22.05":  # 22.05.8's sacct shows "allocation" although slurmdbd stored the name
        assert single_node.sacct(job, "JobName") == "test"


def test_two_node_job_runs_on_both_nodes(single_node):
    with open(os.path.join(EXAMPLES, "two-nodes.slurm")) as f:
        job = single_node.sbatch("--chdir=/tmp", script=f.read())
    single_node.wait_job(job, "COMPLETED", timeout=60)
    # 22.05's accounting can show "c1" for a moment after COMPLETED: wait for the final record.
    single_node.wait_for(lambda: single_node.sacct(job, "NNodes,NodeList") == "2|c[1-2]",
                         f"sacct to show job {job} on 2 nodes c[1-2]", 30)
    out = single_node.exec("cat", f"/tmp/two-nodes-{job}.out").stdout
    assert sorted(re.findall(r"on (c\d+)", out)) == ["c1", "c2"], out


def test_sbatch_N2_wrap(single_node):
    job = single_node.sbatch("-N2", "--wrap", "srun true")
    single_node.wait_job(job, "COMPLETED", timeout=60)
    assert single_node.sacct(job, "NNodes") == "2"


def test_a_dying_daemon_ends_the_container_with_its_name_and_log(fresh_single_node):
    node = fresh_single_node(nodes=1).start().wait_ready()
    node.exec("sh", "-c", "kill -9 $(cat /run/slurm/slurmctld.pid)")
    wait_until(lambda: node.status() == "exited", 30, "the container to exit after slurmctld died", node.logs)
    assert node.exit_code() != 0
    logs = node.logs(200)
    assert re.search(r"ERROR: slurmctld \(pid \d+\) exited with status 137", logs), logs
    assert "--- tail of /var/log/slurm/slurmctld.log" in logs, logs


def test_refuses_config_of_another_version(images, version, network):
    other = next(v for v in ("24.11", "22.05") if v != version)
    files = make_files(other, "sn-wrong")
    try:
        p = podman("run", "--rm", "--no-healthcheck", "--hostname", "sn-wrong", "-v",
                   f"{files.server_config}:/etc/slurm-config:ro", images["slurm-single-node"], check=False, timeout=60)
        assert p.returncode != 0
        assert f"rendered for Slurm {other} but this image has Slurm {version}" in p.stderr, p.stderr
    finally:
        files.cleanup()


def test_refuses_a_hostname_that_is_not_the_controller(images, version):
    files = make_files(version, "sn-right")
    try:
        p = podman("run", "--rm", "--no-healthcheck", "--hostname", "sn-other", "-v",
                   f"{files.server_config}:/etc/slurm-config:ro", images["slurm-single-node"], check=False, timeout=60)
        assert p.returncode != 0
        assert "run it with --hostname sn-right" in p.stderr, p.stderr
    finally:
        files.cleanup()
