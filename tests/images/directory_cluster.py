"""A slurm-single-node with the user directory and a shared /home, as the program deploys them (issue 10), for
the image tests that act as the directory's users (test_identity, test_configless, test_hostile).

The fixtures `cluster` and `as_user` (tests/images/conftest.py) start one per test module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

from components.directory import User, render_files
from components.slurm_files import AUTH_MUNGE
from tests.images.slurm_containers import SingleNode, make_files, podman

USERS = {"alice": 2001, "bob": 2002}  # uid = gid (user private groups)
GROUPS = {"physics": 3000}
DIRECTORY = [User(name, uid, uid, ("physics",)) for name, uid in USERS.items()]
CAROL_UID = 2003  # carol is in no directory
JOB = "#!/bin/bash\nid\npwd\n"
MISMATCH = "munge key mismatch"


def write_directory(path: str, users=DIRECTORY) -> None:
    """The directory's files as the program renders them into its ConfigMap (components/directory.py)."""
    os.makedirs(path, exist_ok=True)
    for name, text in render_files(users, GROUPS).items():
        with open(os.path.join(path, name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(path, name), 0o644)
    os.chmod(path, 0o755)


class Cluster:
    """A slurm-single-node with the directory at /var/lib/extrausers and the volume `home` at /home."""

    def __init__(self, image: str, version: str, network: str, nodes: int = 1, throughput: bool = True,
                 auth_type: str = AUTH_MUNGE, **node_fields):
        """`nodes`, `throughput`, `auth_type`: make_files'; `node_fields`: further SingleNode fields (capabilities,
        ...)."""
        suffix = uuid.uuid4().hex[:6]
        self.directory = tempfile.mkdtemp(prefix="sci-directory-")
        write_directory(self.directory)
        self.home = f"sci-home-{suffix}"
        files = make_files(version, f"id-{suffix}", nodes=nodes, cluster_name="idtest", throughput=throughput,
                           auth_type=auth_type)
        self.node = SingleNode(f"sci-id-{suffix}", image, files, network, f"sci-id-state-{suffix}",
                               run_args=("-v", f"{self.directory}:/var/lib/extrausers:ro", "-v", f"{self.home}:/home"),
                               **node_fields)

    def remove(self):
        self.node.remove()
        podman("volume", "rm", "-f", self.node.volume, self.home, check=False)
        self.node.files.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)
