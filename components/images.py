"""SlurmImages: builds the project's images from dockerfiles/ and pushes them; pods use them by digest."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

from components.config import Images, StackConfig

DOCKERFILES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dockerfiles")
CLIENT = "slurm-client"
SINGLE_NODE = "slurm-single-node"
JUPYTER = "slurm-jupyter"
NOTEBOOK = "slurm-jupyter-notebook"
CLIENT_BASED = (JUPYTER, NOTEBOOK)  # built FROM slurm-client


# Images that copy the image scripts' library, dockerfiles/lib (lib.sh, and facts.sh from components/image_facts.py):
# their build context is dockerfiles/ itself. The Jupyter images have it from slurm-client.
WITH_LIBRARY = (CLIENT, SINGLE_NODE)


def build_dir(image: str) -> str:
    """The directory under dockerfiles/ an image's Dockerfile is in: the Jupyter images share one Dockerfile, whose
    targets are named after them (dockerfiles/slurm-jupyter/Dockerfile)."""
    return JUPYTER if image in CLIENT_BASED else image


def build_context(image: str) -> str:
    """The directory an image is built from: dockerfiles/ for those that copy the scripts' library (their
    Dockerfiles name files as DIRECTORY/FILE), else the Dockerfile's own directory."""
    return DOCKERFILES if image in WITH_LIBRARY else os.path.join(DOCKERFILES, build_dir(image))


def dockerfile(image: str) -> str:
    return os.path.join(DOCKERFILES, build_dir(image), "Dockerfile")


def extra_ca_certs() -> str:
    """PEM text of the CA certificates this machine added to its trust store (Debian's
    /usr/local/share/ca-certificates), e.g. of a TLS-inspecting proxy in front of PyPI. The Jupyter images'
    venv step trusts them (build arg EXTRA_CA_CERTS; the file is gone after that step); empty where there are none."""
    paths = sorted(glob.glob("/usr/local/share/ca-certificates/**/*.crt", recursive=True))
    return "\n".join(open(p, encoding="utf-8").read().strip() for p in paths)


@dataclass
class SlurmImagesArgs:
    images: Images
    debian_suite: str  # selects the Slurm version (components/slurm_files.py)
    names: tuple[str, ...]  # which images to build; slurm-client is always built

    @staticmethod
    def from_config(cfg: StackConfig) -> "SlurmImagesArgs":
        wanted = {SINGLE_NODE: cfg.components.slurm,  # the single node's, or the distributed roles' (one image)
                  JUPYTER: cfg.components.jupyter,
                  NOTEBOOK: cfg.components.jupyterhub or cfg.components.token_service}  # the token service's too
        return SlurmImagesArgs(images=cfg.images, debian_suite=cfg.debian_suite,
                               names=(CLIENT, *[n for n, on in wanted.items() if on]))


class SlurmImages(pulumi.ComponentResource):
    """`refs[name]` is each built image's `registry/repository/name@sha256:...` reference. The pods' pull
    Secret is components/registry.py's."""

    def __init__(self, name: str, args: SlurmImagesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmImages", name, None, opts)
        registry = None
        if args.images.username:
            registry = docker.RegistryArgs(server=args.images.registry, username=args.images.username,
                                           password=args.images.password)
        ca_certs = extra_ca_certs()
        built: dict[str, docker.Image] = {}
        for image in (CLIENT, *[n for n in args.names if n != CLIENT]):
            build_args = {"DEBIAN_SUITE": args.debian_suite}
            depends = []
            if image in CLIENT_BASED:
                # By digest: a changed slurm-client changes this input, so the images built on it are rebuilt.
                build_args["BASE_IMAGE"] = built[CLIENT].repo_digest
                build_args["EXTRA_CA_CERTS"] = ca_certs
                depends = [built[CLIENT]]
            built[image] = docker.Image(
                image,
                image_name=args.images.name(image),
                build=docker.DockerBuildArgs(
                    context=build_context(image),
                    dockerfile=dockerfile(image),
                    target=image if image in CLIENT_BASED else None,
                    args=build_args,
                    platform="linux/amd64",
                    # podman's Docker API has no BuildKit sessions; the classic builder works everywhere.
                    builder_version=docker.BuilderVersion.BUILDER_V1,
                ),
                registry=registry,
                opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
            )
        self.refs: dict[str, pulumi.Output[str]] = {n: img.repo_digest for n, img in built.items()}

        self.register_outputs({"refs": self.refs})
