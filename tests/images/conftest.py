"""Fixtures of the image tests (tests/images/test_*.py): real podman containers, no mocks.

SLURM_VERSION (environment; default components.slurm_files.DEFAULT_SLURM_VERSION) selects the Slurm version,
so the Debian suite the images are built from. Images are tagged localhost/<image>:<version>.
"""

from __future__ import annotations

import shutil
import uuid

import pytest

from tests.images.directory_cluster import Cluster
from tests.images.slurm_containers import (
    SingleNode,
    build_image,
    image_size,
    make_files,
    new_network,
    podman,
    slurm_version,
)
from tests.ldap_directory import LdapDirectory


def pytest_report_header(config):
    return f"image tests: SLURM_VERSION={slurm_version()}"


@pytest.fixture(scope="session")
def version() -> str:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: run scripts/bootstrap (scripts/test does)", pytrace=False)
    return slurm_version()


@pytest.fixture(scope="session")
def images(version) -> dict[str, str]:
    """slurm-single-node and slurm-client built for the version (podman build; cached layers are reused)."""
    tags = {}
    for image in ("slurm-single-node", "slurm-client"):
        tag, seconds = build_image(image, version)
        print(f"built {tag} in {seconds:.1f}s, {image_size(tag) / 1e6:.0f} MB")
        tags[image] = tag
    return tags


@pytest.fixture(scope="session")
def network():
    name = new_network()
    yield name
    podman("network", "rm", "-f", name, check=False)


def _single_node(images, version, network, mount_keys=True, nodes=2, run_args=(), **more):
    suffix = uuid.uuid4().hex[:6]
    files = make_files(version, f"sn-{suffix}", nodes=nodes)
    node = SingleNode(f"sci-sn-{suffix}", images["slurm-single-node"], files, network, f"sci-state-{suffix}",
                      mount_keys=mount_keys, run_args=tuple(run_args), **more)
    return node


@pytest.fixture(scope="session")
def single_node(images, version, network):
    """One running slurm-single-node with 2 nodes and mounted keys, shared by the tests that only use it."""
    node = _single_node(images, version, network)
    node.start()
    try:
        node.wait_ready()
        yield node
    finally:
        node.remove()
        podman("volume", "rm", "-f", node.volume, check=False)
        node.files.cleanup()


@pytest.fixture
def fresh_single_node(images, version, network):
    """A factory for private single-node containers (tests that stop or break them); all removed after."""
    made: list[SingleNode] = []

    def make(mount_keys=True, nodes=2, run_args=(), **more) -> SingleNode:
        """**more: further SingleNode fields (rest_listen)."""
        node = _single_node(images, version, network, mount_keys, nodes, run_args, **more)
        made.append(node)
        return node

    yield make
    for node in made:
        node.remove()
        podman("volume", "rm", "-f", node.volume, check=False)
        node.files.cleanup()


@pytest.fixture(scope="module")
def cluster(images, version, network):
    c = Cluster(images["slurm-single-node"], version, network)
    try:
        c.node.start().wait_ready()
        yield c
    finally:
        c.remove()


@pytest.fixture
def as_user(images, cluster):
    """as_user(uid, *cmd, token=None, env=(), mounts=()) -> CompletedProcess: a slurm-client container as uid
    (gid = uid), with the directory, /home and the client's Slurm files, SLURM_JWT=token; no key, no SLURM_CONF."""
    node = cluster.node

    def run(uid: int, *cmd: str, token: str | None = None, env=(), mounts=(), directory=True, timeout=60):
        args = ["run", "--rm", "--no-healthcheck", "--passwd=false", "--user", f"{uid}:{uid}",
                "--network", node.network, "--add-host", f"{node.files.controller_host}:{node.ip}",
                "-v", f"{node.files.client_config}:/etc/slurm-config:ro", "-v", f"{cluster.home}:/home"]
        if directory:
            args += ["-v", f"{cluster.directory}:/var/lib/extrausers:ro"]
        for src, dst in mounts:
            args += ["-v", f"{src}:{dst}:ro"]
        if token is not None:
            args += ["-e", f"SLURM_JWT={token}"]
        for e in env:
            args += ["-e", e]
        return podman(*args, images["slurm-client"], *cmd, check=False, timeout=timeout)
    return run


# The Jupyter images' fixtures (tests/images/test_jupyter*.py), defined once here so that the session-scoped
# ones (image builds, the private Slurm cluster) are shared by every module instead of made once per module.
from tests.images.jupyter_fixtures import jupyter_images, slurm_cluster, start_jupyter  # noqa: E402,F401

# The token service's (tests/images/test_slurm_token*.py): module-scoped, a hub and containers for each module.
from tests.images.token_service_fixtures import containers, hub, work  # noqa: E402,F401


@pytest.fixture(scope="module")
def ldap(images, network):
    """The site's LDAP directory (tests/ldap_directory.py), over ldaps:// with its test CA, for one module."""
    with LdapDirectory(network, tls=True) as server:
        yield server
