"""The real Pulumi CLI on the `local` stack: preview, up, a no-op up, secrets in state, rotation, bad config.

Runs `scripts/pulumi` (the CLI, language host and providers built by scripts/bootstrap) against the local
file backend. `pulumi up` really builds the images with podman and pushes them to the registry on
127.0.0.1, and renders the Kubernetes objects to $SCI_CACHE/rendered/local.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import project_env
from tests.project_env import PREFIX, ROOT

pytestmark = pytest.mark.pulumi


def pulumi(*args: str, config_file: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return project_env.pulumi(*args, stack="local", config_file=config_file, check=check)


def config_copy(tmp_path: Path, **changes) -> Path:
    """A copy of Pulumi.local.yaml (salt and all) with some keys changed or (value None) removed."""
    doc = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            doc["config"].pop(PREFIX + key, None)
        else:
            doc["config"][PREFIX + key] = value
    path = tmp_path / "Pulumi.local.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def deployed():
    """preview, then up: the stack as `scripts/run-local` leaves it."""
    pulumi("preview", "--diff")
    pulumi("up", "--yes", "--skip-preview")
    return json.loads(pulumi("stack", "output", "--json").stdout)


def test_up_renders_the_objects_and_pushes_the_images(deployed):
    rendered = Path(os.environ["SCI_CACHE"]) / "rendered" / "local"
    kinds = {yaml.safe_load(p.read_text()).get("kind") for p in rendered.rglob("*.yaml")}
    assert {"Namespace", "Secret", "ConfigMap"} <= kinds, f"rendered kinds: {sorted(kinds)}"
    for name, ref in deployed["images"].items():
        assert "@sha256:" in ref and ref.startswith("127.0.0.1:5000/"), f"{name} is not pinned by digest: {ref}"


def test_second_up_changes_nothing(deployed):
    proc = pulumi("up", "--yes", "--expect-no-changes", check=False)
    assert proc.returncode == 0, f"a second `pulumi up` wanted changes:\n{proc.stdout[-4000:]}"


def _keys_from_state() -> list[str]:
    state = json.loads(pulumi("stack", "export", "--show-secrets").stdout)
    # `--show-secrets` shows a secret as {"<sig>": ..., "plaintext": "<the value, JSON-encoded>"}.
    keys = [json.loads(r["outputs"]["base64"]["plaintext"]) for r in state["deployment"]["resources"]
            if r["type"] == "random:index/randomBytes:RandomBytes"]
    assert len(keys) == 2, "expected the munge key and the JWT key in the state"
    return keys


def test_no_key_in_plain_text_in_state_or_outputs(deployed):
    keys = _keys_from_state()
    exported = pulumi("stack", "export").stdout
    outputs = pulumi("stack", "output", "--json").stdout
    for key in keys:
        raw = base64.b64decode(key)
        for text, where in ((exported, "the exported state"), (outputs, "the stack outputs")):
            for form in (key, raw.hex(), base64.b64encode(raw[:24]).decode()):
                assert form not in text, f"a key appears in plain text in {where}"
    assert "ciphertext" in exported, "secrets should be stored encrypted in the state"


def test_rotation_replaces_both_keys_and_their_secrets(deployed, tmp_path):
    current = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"].get(PREFIX + "keyRotation", "1")
    proc = pulumi("preview", "--json", config_file=config_copy(tmp_path, keyRotation=f"{current}-rotated"))
    steps = json.loads(proc.stdout)["steps"]
    replaced = {s["urn"].split("::")[-1] for s in steps if s["op"] in ("replace", "create-replacement")}
    for name in ("slurm-keys-munge", "slurm-keys-jwt"):
        assert name in replaced, f"{name} (RandomBytes) is not replaced by rotation: {sorted(replaced)}"
    secrets = {s["urn"].split("::")[-1] for s in steps if s["urn"].split("::")[2].endswith("Secret")
               and s["op"] in ("replace", "create-replacement")}
    assert {"slurm-keys-munge", "slurm-keys-jwt"} <= secrets, f"key Secrets not replaced: {sorted(secrets)}"


@pytest.mark.parametrize("changes, key", [
    ({"clusterName": "Bad_Name"}, "clusterName"),
    ({"slurmVersion": "21.08"}, "slurmVersion"),
    ({"images": None}, "images"),
    ({"components": {"singleNode": False, "jupyterhub": False}}, "components.singleNode"),
    ({"nodes": 0}, "nodes"),
])
def test_bad_config_fails_preview_naming_the_key(changes, key, tmp_path):
    proc = pulumi("preview", config_file=config_copy(tmp_path, **changes), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, f"preview accepted a bad {key}"
    assert f"config key '{PREFIX}{key}'" in text and "Fix:" in text, text[-3000:]
    assert "Traceback" not in text, "a config error should be a message, not a stack trace"


def test_preview_warns_that_changing_nodes_ends_the_running_jobs(deployed, tmp_path):
    assert deployed["slurmNodes"] == 2
    proc = pulumi("preview", config_file=config_copy(tmp_path, nodes=3))
    assert "nodes goes from 2 to 3: the single node's pod is replaced" in proc.stdout, proc.stdout[-3000:]
    # Control: the same preview without the change says nothing of it (the stack reads its own last update).
    assert "nodes goes from" not in pulumi("preview").stdout


def test_preview_on_a_cluster_plans_the_removal_of_the_hubs_user_servers(deployed, tmp_path):
    """components/user_servers.py's dynamic provider under the real CLI: the local stack pointed at a cluster (none
    answers; preview needs none) plans its UserServers, with that cluster's kubeconfig. Control: rendering, it has
    none (no server can run)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "none", "user": {"token": "none"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}]}))
    config = config_copy(tmp_path, kubernetes={"kubeconfig": str(kubeconfig)})
    steps = json.loads(pulumi("preview", "--json", config_file=config).stdout)["steps"]
    servers = [s for s in steps if s["urn"].endswith("::own-hub-servers")]
    assert [s["op"] for s in servers] == ["create"], [s["urn"] for s in steps]
    assert servers[0]["newState"]["inputs"]["kubeconfig"] == str(kubeconfig)
    assert not [s for s in json.loads(pulumi("preview", "--json").stdout)["steps"] if "UserServers" in s["urn"]]
