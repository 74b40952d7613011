"""Raw stack configuration values, as Pulumi gives them to the program, for the unit tests: a minimal stack, an
existing cluster's keys, and ways to change them."""

import base64
import json

from tests.helm import VERSION as CHART_VERSION

MINIMAL = {"clusterName": "dev", "images": json.dumps({"registry": "127.0.0.1:5000"}),
           "jupyterhub": json.dumps({"chartVersion": CHART_VERSION}),
           "users": json.dumps([{"name": "alice", "uid": 2001}])}
MUNGE = base64.b64encode(bytes(range(256)) * 4).decode()
JWT = base64.b64encode(bytes(range(32))).decode()
# The changes that make MINIMAL an existing cluster's clients (its slurm.conf is the test's to write).
EXISTING = dict(existingCluster={"slurmConf": "slurm.conf"}, mungeKey=MUNGE, jwtKey=JWT, home={"claim": "site-home"},
                components={"singleNode": False})


def raw(value):
    """A config value as Pulumi gives it to the program: objects and lists as JSON text."""
    return json.dumps(value) if isinstance(value, (dict, list)) else value


def changed(values: dict, **changes) -> dict:
    """A copy of raw config `values` with `changes` made (None removes a key)."""
    values = dict(values)
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = raw(value)
    return values


def with_(**changes):
    """MINIMAL with `changes` made."""
    return changed(MINIMAL, **changes)
