"""Scenario 1: in the slurm-jupyter pod, with the generated munge key and slurm.conf, `sinfo` shows the single-node
cluster and `sbatch examples/test.slurm` runs to COMPLETED, visible in `sacct`."""

import hashlib

import pytest

from tests.e2e.deployment import NB_USER
from tests.project_env import ROOT

pytestmark = pytest.mark.e2e


def sha256_in(deployment, pod, path):
    return deployment.kube.exec(pod, "sha256sum", path).stdout.split()[0]


def test_the_pods_run_the_generated_slurm_conf_and_munge_key(deployment):
    d = deployment
    slurm_conf = d.config_files()["slurm.conf"].encode()
    _, munge_key = d.secret_with("munge.key")
    assert len(munge_key) == 1024, "the generated munge key is 1024 bytes"
    for pod in (d.slurm, d.jupyter, d.restd):
        assert sha256_in(d, pod, "/etc/slurm/slurm.conf") == hashlib.sha256(slurm_conf).hexdigest(), pod.name
        assert sha256_in(d, pod, "/etc/munge/munge.key") == hashlib.sha256(munge_key).hexdigest(), pod.name
    # The notebook user can read neither the key nor the files with secrets.
    for path in ("/etc/munge/munge.key", "/etc/slurm-keys/munge.key"):
        assert d.kube.exec(d.jupyter, "cat", path, user=NB_USER, check=False).returncode != 0, path


def test_sinfo_in_the_jupyterlab_pod_shows_the_single_node_cluster(deployment):
    d = deployment
    out = d.kube.exec(d.jupyter, "sinfo", "-h", "-N", "-o", "%N %P %t", user=NB_USER).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert sorted(r[0] for r in rows) == sorted(d.node_names()), out
    assert {r[2] for r in rows} == {"idle"}, f"every node idle:\n{out}"
    cluster = d.kube.exec(d.jupyter, "scontrol", "show", "config", user=NB_USER).stdout
    assert f"ClusterName             = {d.image_env()['SLURM_CLUSTER_NAME']}" in cluster


def test_sbatch_of_the_example_from_the_jupyterlab_pod_completes(deployment):
    d = deployment
    script = (ROOT / "examples" / "test.slurm").read_text()
    job = d.sbatch(d.jupyter, script)
    state = d.wait_job(job, pod=d.jupyter)  # sacct as the notebook user, in the JupyterLab pod
    assert state.startswith("COMPLETED")
    user, node = d.sacct(job, "User,NodeList").split("|")
    assert user == NB_USER and node in d.node_names(), (user, node)
    out = d.kube.exec(d.slurm, "cat", f"/tmp/test-{job}.out").stdout
    assert f"job {job} on {node} (host {d.slurm.hostname}) as {NB_USER}" in out, out
