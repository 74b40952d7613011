"""SlurmKeys: the munge key (or, with AuthType=auth/slurm, the slurm.key) and the JWT HS256 key, as Pulumi secrets
and Kubernetes Secrets only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.labels import labels

MUNGE_KEY_BYTES = 1024
JWT_KEY_BYTES = 32
MUNGE_KEY_FILE = "munge.key"
JWT_KEY_FILE = "jwt_hs256.key"
# AuthType=auth/slurm (Slurm's own authentication, no munged): the key the daemons and the clients' sackd sign and
# check credentials with (Slurm's authentication.html; the images' slurm-client-setup): an existing cluster's, or the
# stack's own, as long as a munge key (Slurm's docs make both of 1024 random bytes).
SLURM_KEY_FILE = "slurm.key"
SLURM_KEY_BYTES = 1024


@dataclass
class SlurmKeysArgs:
    namespace: pulumi.Input[str]
    rotation: str  # changing it generates new keys (pulumi-random keepers)
    munge_key: Optional[pulumi.Input[str]] = None  # base64 key of an existing cluster; None = generate
    jwt: bool = True  # make a JWT key Secret (the stack's own Slurm, or JupyterHub's token service)
    jwt_key: Optional[pulumi.Input[str]] = None  # base64 JWT key of an existing cluster; None = generate
    # base64 slurm.key of an existing cluster whose AuthType is auth/slurm: the clients' key Secret holds it (as
    # slurm.key) instead of a munge key, and no munge key is made.
    slurm_key: Optional[pulumi.Input[str]] = None
    auth_slurm: bool = False  # the stack's own Slurm runs auth/slurm (config authType): generate a slurm.key instead


class SlurmKeys(pulumi.ComponentResource):
    """Generates (or adopts) the cluster's keys and stores them in Kubernetes Secrets.

    Outputs, all secret: `munge_key_base64` (the base64 text JupyterHub's extraFiles binaryData takes),
    `jwt_key_base64`. Secret names: `munge_secret_name` (the cluster's key: munge.key, or with `slurm_key` or
    `auth_slurm` a slurm.key; `key_file` names the file), `jwt_secret_name`. The Secrets are auto-named,
    so new keys make new Secrets and every pod that mounts them rolls.
    """

    def __init__(self, name: str, args: SlurmKeysArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("slurm-cloud-integration:index:SlurmKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        keepers = {"rotation": args.rotation}

        self.key_file = MUNGE_KEY_FILE
        if args.slurm_key is not None:
            self.key_file = SLURM_KEY_FILE
            self.munge_key_base64 = pulumi.Output.secret(args.slurm_key)
        elif args.auth_slurm:
            self.key_file = SLURM_KEY_FILE
            key = random.RandomBytes(f"{name}-slurm", length=SLURM_KEY_BYTES, keepers=keepers, opts=child)
            self.munge_key_base64 = pulumi.Output.secret(key.base64)
        elif args.munge_key is None:
            munge = random.RandomBytes(f"{name}-munge", length=MUNGE_KEY_BYTES, keepers=keepers, opts=child)
            self.munge_key_base64 = pulumi.Output.secret(munge.base64)
        else:
            self.munge_key_base64 = pulumi.Output.secret(args.munge_key)

        self.munge_secret = self._secret(f"{name}-munge", args.namespace, self.key_file, self.munge_key_base64, child)
        self.munge_secret_name = self.munge_secret.metadata.name
        outputs = {"munge_key_base64": self.munge_key_base64, "munge_secret_name": self.munge_secret_name}

        self.jwt_key_base64: Optional[pulumi.Output[str]] = None
        self.jwt_secret_name: Optional[pulumi.Output[str]] = None
        if args.jwt:
            if args.jwt_key is None:
                jwt = random.RandomBytes(f"{name}-jwt", length=JWT_KEY_BYTES, keepers=keepers, opts=child)
                self.jwt_key_base64 = pulumi.Output.secret(jwt.base64)
            else:
                self.jwt_key_base64 = pulumi.Output.secret(args.jwt_key)
            jwt_secret = self._secret(f"{name}-jwt", args.namespace, JWT_KEY_FILE, self.jwt_key_base64, child)
            self.jwt_secret_name = jwt_secret.metadata.name
            outputs |= {"jwt_key_base64": self.jwt_key_base64, "jwt_secret_name": self.jwt_secret_name}

        self.register_outputs(outputs)

    @staticmethod
    def _secret(name: str, namespace, file: str, base64_value, opts) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(namespace=namespace, labels=labels("slurm-keys", "keys")),
            type="Opaque",
            data={file: base64_value},
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["data"])),
        )
