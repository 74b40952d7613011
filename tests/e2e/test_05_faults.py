"""Scenario 5, faults: the slurm-single-node pod is deleted (`kubectl delete pod`) and its StatefulSet makes it again
on the same volume: finished jobs stay in sacct, a held job is not lost, and a job that was running ends
NODE_FAIL instead of running again. A client pod whose munge key is
not the cluster's fails with a message that says so."""

import base64
import copy
import os

import pytest

from components import restd

pytestmark = pytest.mark.e2e


def test_restarting_the_single_node_pod_keeps_finished_and_queued_jobs(deployment):
    d = deployment
    done = d.sbatch(d.jupyter, "#!/bin/bash\necho before the restart\n", "--job-name=e2e-before")
    d.wait_job(done)
    held = d.sbatch(d.jupyter, "#!/bin/bash\necho held across the restart as $(id -un)\n", "--hold",
                    "--job-name=e2e-held", "--output=e2e-held-%j.out")
    assert d.squeue(held) == "PENDING JobHeldUser"
    running = d.sbatch(d.jupyter, "#!/bin/bash\nsleep 600\n", "--job-name=e2e-running")
    d.wait_job(running, "RUNNING")

    old = d.slurm
    new = d.kube.restart(old)  # kubectl delete pod: its StatefulSet makes it again
    assert new.uid != old.uid, "the pod was not made again"
    assert (new.name, new.claims) == (old.name, old.claims) and new.claims, "a StatefulSet pod keeps its name and PVC"

    assert d.sacct(done).startswith("COMPLETED"), "a finished job is gone from sacct after the restart"
    assert d.squeue(held) == "PENDING JobHeldUser", "the held job did not survive the restart"
    # The job that ran in the deleted pod ends with its node; it is not run again by itself (JobRequeue=0).
    d.wait_job(running, "NODE_FAIL")
    assert d.squeue(running, "%T") in ("", "NODE_FAIL"), "the job that ran when the pod was deleted is queued again"
    # The other pods reach the new controller without being restarted themselves.
    d.kube.exec(d.jupyter, "scontrol", "release", held, user=d.lab_user)
    d.wait_job(held, pod=d.jupyter)
    out = d.kube.exec(d.jupyter, "cat", f"/home/{d.lab_user}/e2e/e2e-held-{held}.out", user=d.lab_user).stdout
    assert f"held across the restart as {d.lab_user}" in out, out


def client_pod(deployment, name: str, munge_secret: str) -> dict:
    """A one-shot `sinfo` pod made from the slurmrestd Deployment's pod template (the slurm-client image with the
    stack's Slurm files), its munge key taken from Secret `munge_secret`."""
    d = deployment
    template = next(o for o in d.kube.of_kind("deployment")
                    if o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name") == restd.APP)
    spec = copy.deepcopy(template["spec"]["template"]["spec"])
    cluster_secret, _ = d.secret_with("munge.key")
    for vol in spec["volumes"]:
        for source in (vol.get("projected") or {}).get("sources", []):
            if (source.get("secret") or {}).get("name") == cluster_secret:
                source["secret"]["name"] = munge_secret
    container = spec["containers"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        container.pop(probe, None)
    container["args"] = ["sinfo"]
    spec["restartPolicy"] = "Never"
    # slurmrestd's name, so the single node's NetworkPolicy admits it as a Slurm client; no part-of, so neither the
    # slurmrestd Service nor its Deployment selects it.
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": d.namespace, "labels": {"app.kubernetes.io/name": restd.APP}},
            "spec": spec}


def run_client(deployment, name: str, munge_secret: str) -> tuple[int, str]:
    d = deployment
    d.kube.create(client_pod(deployment, name, munge_secret))
    try:
        pod = d.kube.pod(name)
        code = d.kube.wait_exited(pod, timeout=120)
        return code, d.kube.logs(pod, 40)
    finally:
        d.kube.delete("pod", name)


def test_a_client_pod_with_a_different_munge_key_fails_saying_so(deployment):
    d = deployment
    cluster_secret, _ = d.secret_with("munge.key")
    # Control: the same pod with the cluster's key works, so what fails below is the key.
    code, logs = run_client(d, "e2e-right-key", cluster_secret)
    assert code == 0 and "idle" in logs, logs

    d.kube.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": "e2e-other-munge-key", "namespace": d.namespace},
                     "data": {"munge.key": base64.b64encode(os.urandom(1024)).decode()}})
    try:
        code, logs = run_client(d, "e2e-wrong-key", "e2e-other-munge-key")
    finally:
        d.kube.delete("secret", "e2e-other-munge-key")
    assert code != 0, f"sinfo with another munge key succeeded:\n{logs}"
    assert "munge key mismatch" in logs, f"the failure does not say the munge key differs:\n{logs}"
