"""slurm-client against slurm-single-node: the same munge key works, another key fails with a clear message."""

import os
import shutil
import time

import pytest

from components.slurm_files import version_facts
from tests.images.slurm_containers import client_restd, image_size, podman, run_client, wait_until, write_key_dir
from tests.slurm_rest import SlurmRest

pytestmark = pytest.mark.containers
MISMATCH = "munge key mismatch: slurmctld at"


def test_client_runs_sinfo_and_sbatch(images, single_node):
    files = single_node.files
    p = run_client(images["slurm-client"], files, single_node, "sinfo", "-h", "-N", "-o", "%N %t")
    assert p.returncode == 0, p.stdout + p.stderr
    states = dict(line.split() for line in p.stdout.splitlines())
    assert states == {n: "idle" for n in files.nodes}, p.stdout
    p = run_client(images["slurm-client"], files, single_node, "sbatch", "--parsable", "--wrap", "echo from-client")
    assert p.returncode == 0, p.stdout + p.stderr
    job = p.stdout.strip().split(";")[0]
    single_node.wait_job(job, "COMPLETED")
    p = run_client(images["slurm-client"], files, single_node, "sacct", "-n", "-X", "-P", "-j", job, "-o", "State")
    assert p.stdout.strip() == "COMPLETED", p.stdout + p.stderr


@pytest.mark.parametrize("cmd", [("sinfo",), ("sbatch", "--wrap", "true"), ("squeue",), ("sacct", "-X"),
                                 ("scontrol", "ping")])
def test_other_munge_key_says_the_keys_differ(images, single_node, cmd):
    bad = write_key_dir(os.urandom(1024))
    try:
        p = run_client(images["slurm-client"], single_node.files, single_node, *cmd, keys_dir=bad)
    finally:
        shutil.rmtree(bad)
    assert p.returncode != 0, p.stdout
    assert MISMATCH in p.stderr, f"stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    assert "Protocol authentication error" not in p.stderr and "Zero Bytes" not in p.stderr, p.stderr


def test_munge_check_tells_mismatch_from_unreachable(images, single_node):
    bad = write_key_dir(os.urandom(1024))
    try:
        p = run_client(images["slurm-client"], single_node.files, single_node, "slurm-munge-check", keys_dir=bad)
        assert p.returncode == 3 and MISMATCH in p.stderr, p.stderr
        p = run_client(images["slurm-client"], single_node.files, single_node, "slurm-munge-check")
        assert p.returncode == 0, p.stderr
    finally:
        shutil.rmtree(bad)


def test_client_slurmrestd_serves_with_jwt(images, single_node, version):
    name = f"{single_node.name}-restd"
    with client_restd(images["slurm-client"], single_node, name) as url:
        api = SlurmRest(url, version_facts(version).rest_api_version, token=single_node.token())
        wait_until(api.ping, 30, "the client's slurmrestd to answer ping",
                   lambda: podman("logs", name, check=False).stderr)
        procs = [line.split() for line in podman("top", name, "user", "comm").stdout.splitlines()[1:]]
        assert [u for u, c in procs if c == "slurmrestd"] == ["slurmrestd"], procs
        assert not SlurmRest(api.base_url, api.api_version, token="garbage").authenticated()
        # SIGTERM stops it (tini is PID 1; slurmrestd as PID 1 would ignore it until the SIGKILL).
        t0 = time.monotonic()
        podman("stop", "-t", "20", name, timeout=60)
        assert time.monotonic() - t0 < 10, f"podman stop took {time.monotonic() - t0:.1f}s"


def test_client_image_is_small(images):
    size = image_size(images["slurm-client"])
    assert size < 150e6, f"slurm-client is {size / 1e6:.0f} MB, the target is < 150 MB"
