"""Restarting slurm-single-node on the same volume keeps finished jobs (sacct), queued jobs (squeue) and the
keys it generated at its first start."""

import pytest

from tests.images.slurm_containers import SingleNode, podman

pytestmark = pytest.mark.containers


def test_restart_keeps_jobs_and_generated_keys(fresh_single_node):
    node = fresh_single_node(mount_keys=False).start().wait_ready()
    assert "generating one into /var/lib/slurm-state/keys/munge.key" in node.logs()
    key_sum = node.exec("sha256sum", "/var/lib/slurm-state/keys/munge.key", "/etc/munge/munge.key").stdout.split()
    assert key_sum[0] == key_sum[2], "the generated key is not the one munged uses"

    done = node.sbatch("--wrap", "echo finished")
    node.wait_job(done, "COMPLETED")
    held = node.sbatch("--hold", "--wrap", "echo held")
    later = node.sbatch("--begin=now+2hours", "--wrap", "echo later")
    before = dict(line.split() for line in node.exec("squeue", "-h", "-o", "%i %T").stdout.strip().splitlines())
    assert before == {held: "PENDING", later: "PENDING"}, before

    # A new container on the same volume, as a rescheduled pod would be.
    node.stop()
    assert node.exit_code() == 0, node.logs()
    node.remove()
    again = SingleNode(node.name + "-b", node.image, node.files, node.network, node.volume, mount_keys=False)
    try:
        again.start().wait_ready()
        assert "generating" not in again.logs(), "a key was generated again although the volume has one"
        assert again.exec("sha256sum", "/etc/munge/munge.key").stdout.split()[0] == key_sum[0]
        assert again.sacct(done, "State") == "COMPLETED"
        queue = dict(line.split(" ", 1) for line in again.exec("squeue", "-h", "-o", "%i %T %r").stdout.strip().splitlines())
        assert queue.get(held, "").startswith("PENDING") and "Held" in queue[held], queue
        assert queue.get(later, "").startswith("PENDING") and "BeginTime" in queue[later], queue
        # The held job still runs once released.
        again.exec("scontrol", "release", held)
        again.wait_job(held, "COMPLETED")
    finally:
        again.remove()


def test_a_volume_whose_database_belongs_to_another_uid_still_starts(fresh_single_node):
    """An upgrade: the volume was written by an image whose `mysql` had another uid (Debian gives system uids
    out at install time; the image that dropped the mariadb-server package got another one)."""
    node = fresh_single_node().start().wait_ready()
    done = node.sbatch("--wrap", "echo finished")
    node.wait_job(done, "COMPLETED")
    node.stop()
    node.remove()
    podman("run", "--rm", "--entrypoint", "chown", "-v", f"{node.volume}:/s", node.image, "-R", "4321:4321", "/s/mysql")
    again = SingleNode(node.name + "-b", node.image, node.files, node.network, node.volume)
    try:
        again.start().wait_ready()
        assert "gave /var/lib/slurm-state/mysql to this image's mysql" in again.logs()
        assert again.sacct(done, "State") == "COMPLETED", "the accounting database did not survive"
    finally:
        again.remove()
