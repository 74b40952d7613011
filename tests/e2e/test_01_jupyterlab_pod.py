"""Scenario 1: in the slurm-jupyter pod, with the generated munge key and slurm.conf, `sinfo` shows the single-node
cluster and `sbatch test.slurm` (the example) from a directory of the user's home runs to COMPLETED as that user,
visible in `sacct`, its output beside it in the home the Slurm nodes share."""

import hashlib

import pytest

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
        assert d.kube.exec(d.jupyter, "cat", path, user=d.lab_user, check=False).returncode != 0, path


def test_sinfo_in_the_jupyterlab_pod_shows_the_single_node_cluster(deployment):
    d = deployment
    out = d.kube.exec(d.jupyter, "sinfo", "-h", "-N", "-o", "%N %P %t", user=d.lab_user).stdout
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert sorted(r[0] for r in rows) == sorted(d.node_names()), out
    assert {r[2] for r in rows} == {"idle"}, f"every node idle:\n{out}"
    cluster = d.kube.exec(d.jupyter, "scontrol", "show", "config", user=d.lab_user).stdout
    assert f"ClusterName             = {d.image_env()['SLURM_CLUSTER_NAME']}" in cluster


def test_the_example_from_a_directory_of_the_home_completes_with_its_output_there(deployment):
    d = deployment
    user, home = d.lab_user, f"/home/{d.lab_user}"
    assert d.kube.exec(d.jupyter, "stat", "-c", "%U %a", home).stdout.split() == [user, "700"]
    job = d.sbatch(d.jupyter, (ROOT / "examples" / "test.slurm").read_text(), workdir="p")
    state = d.wait_job(job, pod=d.jupyter)  # sacct as the user, in the JupyterLab pod
    assert state.startswith("COMPLETED")
    who, node = d.sacct(job, "User,NodeList").split("|")
    assert who == user and node in d.node_names(), (who, node)
    # Written by the node, read in JupyterLab: the same file of the shared home.
    out = d.kube.exec(d.jupyter, "cat", f"{home}/p/test-{job}.out", user=user).stdout
    assert f"job {job} on {node} (host {d.slurm.hostname}) as {user}" in out, out
    assert d.kube.exec(d.slurm, "stat", "-c", "%U", f"{home}/p/test-{job}.out").stdout.strip() == user
