"""slurmrestd in slurm-single-node: JWT from `scontrol token`, rejection without it, a job through REST.

The same client code (tests/slurm_rest.py) for every version's API; the version comes from the facts table.
"""

import pytest

from components.slurm_files import SLURMRESTD_PORT, version_facts
from tests.slurm_rest import SlurmRest

pytestmark = pytest.mark.containers


@pytest.fixture
def rest(single_node, version):
    def make(token):
        return SlurmRest(f"http://{single_node.ip}:{SLURMRESTD_PORT}", version_facts(version).rest_api_version,
                         user="root", token=token)
    return make


def test_ping_with_scontrol_token(single_node, rest):
    api = rest(single_node.token())
    assert api.ping()
    assert api.authenticated()


def test_missing_token_is_rejected(rest):
    api = rest(None)
    assert api.request("GET", "ping").status_code == 401
    assert not api.authenticated()


def test_wrong_token_is_rejected(single_node, rest):
    # A well-formed JWT signed with another key, and plain garbage.
    other = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjQxMDI0NDQ4MDAsImlhdCI6MTcwMDAwMDAwMCwic3VuIjoicm9vdCJ9." \
            "c2lnbmVkLXdpdGgtYW5vdGhlci1rZXktYWFhYWFhYWFhYWFhYWFhYWFh"
    for token in (other, "garbage"):
        api = rest(token)
        assert not api.authenticated(), f"token {token[:12]}... was accepted"
        r = api.request("GET", "ping")
        ok_body = r.status_code == 200 and all(
            (p.get("pinged") or p.get("ping")) == "UP" for p in r.json().get("pings", []))
        assert not ok_body, f"ping with a wrong token answered UP: {r.status_code} {r.text[:300]}"


def test_job_submitted_through_rest_completes(single_node, rest, version):
    api = rest(single_node.token())
    job_id = api.submit("#!/bin/bash\necho rest-job on $SLURMD_NODENAME\n", name="rest-test")
    api.wait_job(job_id, "COMPLETED", timeout=60)
    single_node.wait_job(str(job_id), "COMPLETED", timeout=30)
    if version != "22.05":  # 22.05.8's sacct shows "allocation" although slurmdbd stored the name
        assert single_node.sacct(str(job_id), "JobName") == "rest-test"
