"""The values this program gives the JupyterHub chart pass the chart's own values schema.

Helm deep-merges the chart's values.yaml with the user's values (a null deletes a key) and validates the
result against values.schema.json before rendering anything: a value the schema rejects fails `pulumi up`
on a live cluster. This does the same offline with the chart's reference files in ../shared/reference/z2jh/.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from components import pods
from components.chart_values import helm_merge
from components.jupyterhub import jupyterhub_values, slurm_egress, split_image_ref
from tests.helm import chart_reference
from tests.unit.stacks import run

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def chart():
    defaults, schema = chart_reference("values.yaml"), chart_reference("values.schema.yaml")
    jsonschema.Draft7Validator.check_schema(schema)
    return defaults, jsonschema.Draft7Validator(schema)


def schema_errors(chart, values) -> list[str]:
    defaults, validator = chart
    merged = helm_merge(defaults, json.loads(json.dumps(values)))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(merged)]


def sample_values(**changes):
    name, tag = split_image_ref(f"registry.example.com/hpc/slurm-cloud-integration/slurm-jupyter-notebook@{DIGEST}", "dev")
    args = dict(image_name=name, image_tag=tag,
                config_files={"slurm.conf": "ClusterName=dev\n", "cgroup.conf": "\n", "slurm-image.env": "A=1\n"},
                munge_key_base64="bXVuZ2U=", hub_password="p" * 32,
                egress=slurm_egress(single_node_app="slurm-single-node", single_node_ports=[6817, 6819, 6818]))
    return jupyterhub_values(**{**args, **changes})


@pytest.mark.parametrize("pull_secret", [None, "images-pull-0a1b2c3d"])
def test_values_pass_the_chart_schema(chart, pull_secret):
    errors = schema_errors(chart, sample_values(image_pull_secret=pull_secret))
    assert not errors, "the chart's schema rejects our values:\n" + "\n".join(errors)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_values_of_the_committed_stacks_pass_the_chart_schema(chart, stack):
    values = run(stack).one("kubernetes:helm.sh/v3:Release").plain["values"]
    errors = schema_errors(chart, values)
    assert not errors, f"{stack}: the chart's schema rejects our values:\n" + "\n".join(errors)


def test_the_schema_check_can_fail(chart):
    bad = sample_values()
    bad["singleuser"]["extraFiles"]["munge-key"]["mode"] = "0400"  # a string, the schema wants a number
    bad["singleuser"]["image"].pop("tag")
    bad["singleuser"]["imageTypo"] = {}
    errors = schema_errors(chart, bad)
    assert any("mode" in e for e in errors) and any("imageTypo" in e for e in errors), errors


def test_notebook_image_is_pinned_by_digest():
    image = sample_values()["singleuser"]["image"]
    assert image["name"] == "registry.example.com/hpc/slurm-cloud-integration/slurm-jupyter-notebook"
    assert image["tag"] == f"dev@{DIGEST}"
    # The chart joins name:tag, which gives a reference whose digest the runtime pulls.
    assert f"{image['name']}:{image['tag']}".endswith(f":dev@{DIGEST}")


@pytest.mark.parametrize("ref", ["registry/x/img:latest", "registry/x/img@sha256:abc", "img@md5:" + "0" * 32])
def test_unpinned_references_are_refused(ref):
    with pytest.raises(ValueError, match="not pinned by a sha256 digest"):
        split_image_ref(ref, "dev")


def test_a_tag_in_the_reference_is_replaced():
    assert split_image_ref(f"127.0.0.1:5000/r/img:old@{DIGEST}", "new") == ("127.0.0.1:5000/r/img", f"new@{DIGEST}")


def test_extra_files_follow_the_image_contract(chart):
    defaults, _ = chart
    singleuser = helm_merge(defaults, sample_values())["singleuser"]
    files = singleuser["extraFiles"]
    assert files["munge-key"] == {"mountPath": "/etc/slurm-keys/munge.key", "binaryData": "bXVuZ2U=", "mode": 0o400}
    assert {f["mountPath"] for f in files.values() if "stringData" in f} == {
        f"{pods.CONFIG_MOUNT}/{n}" for n in ("slurm.conf", "cgroup.conf", "slurm-image.env")}
    assert all(f["mode"] == 0o644 for f in files.values() if "stringData" in f)
    # The notebook entrypoint starts as root; fsGroup 0 is no group of jovyan's, so the key stays root-only.
    assert singleuser["uid"] == 0 and singleuser["fsGid"] == 0
    assert singleuser["cmd"] == "jupyterhub-singleuser"
    # The chart's own label that lets notebooks reach the hub survives our extraLabels.
    assert singleuser["extraLabels"]["hub.jupyter.org/network-access-hub"] == "true"


def test_values_hold_no_null_because_pulumi_drops_them():
    """A null in a Release's values never reaches Helm, so it cannot delete a chart default (fsGid: 100 stayed)."""
    def nulls(tree, path=""):
        if isinstance(tree, dict):
            return [p for k, v in tree.items() for p in nulls(v, f"{path}.{k}")]
        return [path] if tree is None else []
    assert nulls(sample_values()) == []
    assert nulls({"a": {"b": None}}) == [".a.b"]  # control: the walk finds one


def test_hub_is_not_open(chart):
    defaults, _ = chart
    merged = helm_merge(defaults, sample_values())
    config = merged["hub"]["config"]
    assert config["JupyterHub"]["authenticator_class"] == "shared-password"
    assert config["SharedPasswordAuthenticator"] == {"user_password": "p" * 32, "allow_all": True}
    # allow_all for the dummy authenticator only: another one chosen in jupyterhub.values does not inherit it.
    assert "Authenticator" not in config
    assert merged["proxy"]["service"]["type"] == "ClusterIP"


def test_user_pods_get_no_privileged_init_container(chart):
    """The metadata server is blocked by the singleuser NetworkPolicy, not by a privileged iptables container."""
    defaults, _ = chart
    single = helm_merge(defaults, sample_values())["singleuser"]
    assert single["cloudMetadata"]["blockWithIptables"] is False
    assert single["networkPolicy"]["enabled"] is True
    assert single["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
