"""No image layer holds key material: every layer of both images (podman save) is read file by file.

A key deleted in a later layer is still in the earlier one, so the flattened view (podman image mount)
is not enough: each layer tar is scanned for key file names, for 1024-byte files under etc/munge, and for
the contents of the keys a running cluster uses.
"""

import io
import json
import os
import re
import tarfile
import tempfile

import pytest

from tests.images.slurm_containers import podman

pytestmark = pytest.mark.containers

KEY_NAMES = re.compile(r"(^|/)(munge\.key|slurm\.key|jwt[^/]*\.key|jwt_hs256\.key)$")


def layers(tag: str):
    """(layer name, tarfile) of every layer of an image, from `podman save --format docker-archive`."""
    with tempfile.TemporaryDirectory() as d:
        archive = os.path.join(d, "image.tar")
        podman("save", "--format", "docker-archive", "-o", archive, tag, timeout=600)
        with tarfile.open(archive) as outer:
            manifest = json.load(outer.extractfile("manifest.json"))
            for layer in manifest[0]["Layers"]:
                data = outer.extractfile(layer).read()
                with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                    yield layer, inner


@pytest.mark.parametrize("image", ["slurm-single-node", "slurm-client"])
def test_no_layer_contains_key_material(images, single_node, image):
    known = {single_node.files.munge_key, single_node.files.jwt_key}  # the keys the running cluster uses
    found, scanned = [], 0
    for layer, tar in layers(images[image]):
        for member in tar:
            scanned += 1
            name = member.name.lstrip("./")
            if KEY_NAMES.search(name):
                found.append(f"{layer}: {name} (a key file name)")
            if not member.isfile():
                continue
            if name.startswith("etc/munge/") and member.size == 1024:
                found.append(f"{layer}: {name} (1024 bytes under /etc/munge)")
            if 32 <= member.size <= 4096 and tar.extractfile(member).read() in known:
                found.append(f"{layer}: {name} (holds the cluster's key)")
    assert scanned > 1000, f"only {scanned} files scanned in {image}: the layer export did not work"
    assert not found, "key material in the image layers:\n" + "\n".join(found)
