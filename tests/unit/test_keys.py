"""SlurmKeys under Pulumi mocks: sizes, rotation keepers, secrecy, and an existing cluster's adopted keys."""

import base64
import json

from tests.unit.config_values import EXISTING, JWT, MINIMAL, MUNGE, with_
from tests.unit.harness import is_secret, run_stack

KEYS = "slurm-cloud-integration:index:SlurmKeys"
BYTES = "random:index/randomBytes:RandomBytes"
SECRET = "kubernetes:core/v1:Secret"


def key_secrets(result):
    return [s for s in result.of_type(SECRET) if s.parent == KEYS]


def test_generates_both_keys_under_the_component():
    result = run_stack(with_(keyRotation="7"))
    munge, jwt = result.one(BYTES, "slurm-keys-munge"), result.one(BYTES, "slurm-keys-jwt")
    assert munge.plain["length"] == 1024 and jwt.plain["length"] == 32
    assert munge.parent == KEYS and jwt.parent == KEYS
    assert munge.plain["keepers"] == {"rotation": "7"} == jwt.plain["keepers"]  # rotation replaces both
    data = {name: s.inputs["data"] for s in key_secrets(result) for name in s.plain["data"]}
    assert set(data) == {"munge.key", "jwt_hs256.key"}
    assert all(is_secret(v) for v in data.values()), "Secret data must stay a Pulumi secret"
    assert data["munge.key"]["value"] == {"munge.key": munge.plain["base64"]}
    assert data["jwt_hs256.key"]["value"] == {"jwt_hs256.key": jwt.plain["base64"]}


def test_no_key_in_an_unsecret_output():
    result = run_stack(MINIMAL)
    keys = [r.plain["base64"] for r in result.of_type(BYTES)]
    for name, (value, secret) in result.outputs.items():
        text = json.dumps(value, default=str)
        assert secret or not any(k in text for k in keys), f"output {name} shows a key in plain text"


def test_existing_cluster_keys_are_adopted_not_generated(tmp_path):
    """The munge key for the Slurm clients, the JWT key for JupyterHub's token service: both the site's own."""
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=ctl(10.0.0.1)\nAuthAltTypes=auth/jwt\n")
    result = run_stack(with_(**EXISTING), {"mungeKey", "jwtKey"}, str(tmp_path))
    assert not [r.name for r in result.of_type(BYTES) if r.parent == KEYS]
    secrets = {s.name: s for s in key_secrets(result)}
    assert set(secrets) == {"slurm-keys-munge", "slurm-keys-jwt"}
    assert all(is_secret(s.inputs["data"]) for s in secrets.values())
    assert secrets["slurm-keys-munge"].plain["data"] == {"munge.key": MUNGE}
    assert secrets["slurm-keys-jwt"].plain["data"] == {"jwt_hs256.key": JWT}
    assert base64.b64decode(MUNGE) == bytes(range(256)) * 4


def test_existing_cluster_without_the_token_service_gets_no_jwt_key(tmp_path):
    (tmp_path / "slurm.conf").write_text("SlurmctldHost=ctl(10.0.0.1)\nAuthAltTypes=auth/jwt\n")
    components = {"singleNode": False, "jupyterhub": False, "tokenService": False}
    result = run_stack(with_(**{**EXISTING, "jwtKey": None, "components": components}),
                       {"mungeKey"}, str(tmp_path))
    assert not [r.name for r in result.of_type(BYTES) if r.parent == KEYS]
    (secret,) = key_secrets(result)
    assert secret.plain["data"] == {"munge.key": MUNGE}
