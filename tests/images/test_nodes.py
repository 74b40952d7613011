"""Nodes that fit real jobs, and a job that cannot take slurm-single-node down.

The container runs with the memory limit the stack gives the pod (StackConfig.single_node_memory_mib for the
default nodes) and an oom_score_adj such as the kubelet gives a Burstable pod (2..999), so what the kernel
would do in the pod happens here too.
"""

import base64
import hashlib
import io
import os
import shutil
import tempfile
import time
import zipfile

import pytest

from components.config import parse
from components.slurm_files import DEFAULT_MEMORY_MB_PER_NODE
from tests.images.slurm_containers import podman, wait_until

pytestmark = pytest.mark.containers

POD_MEMORY_MIB = parse({"clusterName": "t", "images": '{"registry": "r"}',
                        "components": '{"jupyter": false, "jupyterhub": false, "tokenService": false}'}).single_node_memory_mib
BURSTABLE_OOM_SCORE_ADJ = "999"  # the kubelet's highest value for a Burstable container: the daemons' worst case
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "slurmrestd")


def processes(node) -> dict[str, str]:
    """pid -> command name of every process in the container."""
    out = node.exec("sh", "-c", 'for p in /proc/[0-9]*; do echo "${p#/proc/} $(cat $p/comm)"; done').stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def daemons(node) -> dict[str, str]:
    """pid -> name of the entrypoint (pid 1) and every Slurm, munge and MariaDB daemon."""
    procs = processes(node)
    found = {pid: name for pid, name in procs.items() if name in DAEMONS or pid == "1"}
    assert sorted(set(found.values())) == sorted({*DAEMONS, procs["1"]}), procs
    return found


def restarts(node) -> str:
    return podman("inspect", "--format", "{{.State.StartedAt}} {{.RestartCount}}", node.name).stdout.strip()


def job_output(node, job: str) -> str:
    return node.exec("sh", "-c", f"tr -d '\\000' < /slurm-{job}.out").stdout


def test_a_mem_larger_than_any_node_is_refused_at_submit_and_no_mem_gets_the_default(single_node):
    p = single_node.exec("sbatch", f"--mem={DEFAULT_MEMORY_MB_PER_NODE + 1}", "--wrap", "true", check=False)
    assert p.returncode != 0 and "Requested node configuration is not available" in p.stderr, p.stderr
    fits = single_node.sbatch(f"--mem={DEFAULT_MEMORY_MB_PER_NODE}", "--wrap", "true")  # control: the most that fits
    single_node.wait_job(fits, "COMPLETED")
    plain = single_node.sbatch("--hold", "--wrap", "true")
    try:
        shown = single_node.exec("scontrol", "show", "job", plain).stdout
        assert f"MinMemoryCPU={DEFAULT_MEMORY_MB_PER_NODE // 2}M" in shown, shown  # DefMemPerCPU: memoryMb / cpus
    finally:
        single_node.exec("scancel", plain)


def test_a_memory_hog_ends_with_a_memory_reason_and_harms_nothing(fresh_single_node):
    node = fresh_single_node(run_args=("--memory", f"{POD_MEMORY_MIB}m",
                                       "--oom-score-adj", BURSTABLE_OOM_SCORE_ADJ)).start().wait_ready()
    before = node.sbatch("--wrap", "echo before")
    node.wait_job(before)
    pids, started = daemons(node), restarts(node)

    t0 = time.monotonic()
    hog = node.sbatch("--wrap", "head -c 5G /dev/zero | tail")  # DefMemPerCPU: 1280 MB
    node.wait_for(lambda: node.sacct(hog, "State,NodeList").startswith("RUNNING|"), f"job {hog} to run")
    hog_node = node.sacct(hog, "NodeList")
    # Needs most of the hog's node, so it waits for the hog to end.
    behind = node.sbatch(f"--nodelist={hog_node}", "--mem=2300", "--wrap", "echo behind")
    final = node.wait_for(lambda: node.sacct(hog) in ("FAILED", "OUT_OF_MEMORY") and node.sacct(hog),
                          f"the hog {hog} to end FAILED or OUT_OF_MEMORY", 120)
    seconds = time.monotonic() - t0
    print(f"memory hog {hog} ended {final} {seconds:.1f}s after submission; "
          f"its MaxRSS {node.exec('sacct', '-n', '-P', '-j', hog, '-o', 'MaxRSS').stdout.split()}")
    assert "exceeded memory limit" in job_output(node, hog), job_output(node, hog)[-2000:]

    node.wait_job(behind, "COMPLETED", timeout=60)
    assert node.status() == "running" and restarts(node) == started, node.logs()
    assert daemons(node) == pids, "a daemon was restarted or replaced"
    for job, state in ((before, "COMPLETED"), (hog, final), (behind, "COMPLETED")):
        assert node.sacct(job) == state


@pytest.mark.parametrize("plugin", [True, False], ids=["with-oom-score-adj-plugin", "control-without-it"])
def test_when_the_container_runs_out_of_memory_the_kernel_kills_the_job_not_a_daemon(fresh_single_node, plugin):
    """A job that allocates faster than Slurm samples, in a container smaller than its node (so the kernel acts
    first). Without the SPANK plugin the job's tasks have oom_score_adj 0, below the daemons', and the kernel
    kills a daemon: the control shows the container going down."""
    empty = tempfile.NamedTemporaryFile("w", suffix="-plugstack.conf", delete=False)
    empty.close()
    run_args = ["--memory", "1200m", "--oom-score-adj", BURSTABLE_OOM_SCORE_ADJ]
    if not plugin:
        run_args += ["-v", f"{empty.name}:/etc/slurm/plugstack.conf:ro"]
    try:
        node = fresh_single_node(nodes=1, run_args=run_args).start().wait_ready()
        pids = daemons(node)
        job = node.sbatch("--mem=2500", "--wrap", "srun python3 -c 'b = bytearray(3 << 30); b[::4096] = "
                                                  "b\"x\" * len(b[::4096])'")
        if plugin:
            node.wait_for(lambda: node.sacct(job) == "FAILED", f"job {job} to be killed", 90)
            assert "Killed" in job_output(node, job)
            assert daemons(node) == pids and node.status() == "running"
        else:
            wait_until(lambda: node.status() != "running", 90, "the container to go down", node.logs)
            print(node.logs(40))
    finally:
        os.unlink(empty.name)


def test_a_job_running_when_the_node_dies_is_not_run_again(fresh_single_node):
    node = fresh_single_node(nodes=1).start().wait_ready()
    job = node.sbatch("--wrap", "sleep 300")
    node.wait_for(lambda: node.sacct(job) == "RUNNING", f"job {job} to run")
    node.exec("sh", "-c", "kill -9 $(cat /run/slurm/slurmd-c1.pid)")  # the container ends, as the pod would
    wait_until(lambda: node.status() == "exited", 60, "the container to exit after slurmd died", node.logs)

    podman("start", node.name)  # the same container again, as the kubelet restarts it
    node.wait_ready()
    assert "ended 1 job(s) that ran when the previous container stopped" in node.logs(200)
    assert node.sacct(job) == "NODE_FAIL"
    shown = node.exec("scontrol", "show", "job", job).stdout
    assert "JobState=NODE_FAIL" in shown and "Requeue=0" in shown and "Restarts=0" in shown, shown
    assert "sleep" not in processes(node).values()
    after = node.sbatch("--wrap", "echo after")  # the node takes jobs again
    node.wait_job(after)


def _wheel(directory: str) -> str:
    """A tiny pure-Python wheel (sci_venv_probe 1.0), made here so no package index is needed."""
    files = {"sci_venv_probe/__init__.py": b'GREETING = "imported from a venv"\n',
             "sci_venv_probe-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: sci-venv-probe\nVersion: 1.0\n",
             "sci_venv_probe-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                                   b"Tag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for name, data in files.items())
    path = os.path.join(directory, "sci_venv_probe-1.0-py3-none-any.whl")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
        z.writestr("sci_venv_probe-1.0.dist-info/RECORD", record + "sci_venv_probe-1.0.dist-info/RECORD,,\n")
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return path


def test_jobs_run_the_jupyter_images_python_and_a_venv_made_there(jupyter_images, fresh_single_node):
    shared = tempfile.mkdtemp(prefix="sci-shared-")
    os.chmod(shared, 0o777)
    try:
        wheel = os.path.basename(_wheel(shared))
        jupyter = ["run", "--rm", "--no-healthcheck", "--entrypoint", "sh", "-v", f"{shared}:/shared",
                   jupyter_images["slurm-jupyter"], "-c"]
        # As a user in JupyterLab's terminal would: python3 there is the Jupyter venv's, based on /usr/bin/python3.
        made = podman(*jupyter, f"python3 -m venv /shared/env && /shared/env/bin/pip install --no-index "
                                f"--disable-pip-version-check /shared/{wheel} && /usr/bin/python3 -V", timeout=180)
        jupyter_python = made.stdout.strip().splitlines()[-1]

        node = fresh_single_node(nodes=1, run_args=["-v", f"{shared}:/shared"]).start().wait_ready()
        assert node.exec("/usr/bin/python3", "-V").stdout.strip() == jupyter_python
        job = node.sbatch("--wrap", "srun /shared/env/bin/python -c 'import sci_venv_probe, sys; "
                                    "print(sci_venv_probe.GREETING, sys.prefix)'")
        node.wait_job(job)
        assert "imported from a venv /shared/env" in job_output(node, job)
        # Control: the system Python on the node has no such package.
        p = node.exec("python3", "-c", "import sci_venv_probe", check=False)
        assert p.returncode != 0 and "No module named 'sci_venv_probe'" in p.stderr
    finally:
        shutil.rmtree(shared, ignore_errors=True)
