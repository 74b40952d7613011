"""Scenario 2: through the slurmrestd pod (its Service, with `kubectl port-forward`): ping with a
JWT minted for a user in the single node, a job submitted through the REST API completes, a missing or wrong token
is rejected. The client is tests/slurm_rest.py."""

import pytest

from components.slurm_files import SLURMRESTD_PORT
from tests.slurm_rest import SlurmRest, SlurmRestError, forged_token

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def rest_url(deployment):
    d = deployment
    service = d.service_of(d.restd)
    assert service != d.service_of(d.slurm), "slurmrestd must be its own Service, not the single node's"
    with d.kube.port_forward(f"service/{service}", SLURMRESTD_PORT) as local_port:
        yield f"http://127.0.0.1:{local_port}"


@pytest.fixture(scope="module")
def api(deployment):
    return deployment.image_env()["SLURM_REST_API_VERSION"]


@pytest.fixture(scope="module")
def user(deployment):
    return deployment.lab_user


def test_ping_with_a_token_minted_for_the_user(deployment, rest_url, api, user):
    client = SlurmRest(rest_url, api, user=user, token=deployment.token(user))
    assert client.ping(), "slurmrestd (its own pod) should see slurmctld UP for a valid token"
    assert client.authenticated()


def test_a_job_submitted_through_the_rest_api_completes(deployment, rest_url, api, user):
    client = SlurmRest(rest_url, api, user=user, token=deployment.token(user))
    job = client.submit("#!/bin/bash\necho rest-job on $(hostname) as $(id -un)\n", name="e2e-rest",
                        cwd=f"/home/{user}")
    assert client.wait_job(job, "COMPLETED", timeout=60) == "COMPLETED"
    state = deployment.wait_job(str(job))  # and in the accounting database
    assert state.startswith("COMPLETED")
    assert deployment.sacct(str(job), "User,JobName") == f"{user}|e2e-rest"


@pytest.mark.parametrize("token", [None, "not-a-jwt", "forged"])
def test_a_missing_or_wrong_token_is_rejected(deployment, rest_url, api, user, token):
    if token == "forged":
        token = forged_token(user)
    client = SlurmRest(rest_url, api, user=user, token=token)
    assert not client.authenticated(), f"slurmrestd accepted token {token!r}"
    with pytest.raises(SlurmRestError):
        client.submit("#!/bin/bash\ntrue\n", name="e2e-rejected")
    assert "e2e-rejected" not in deployment.kube.exec(deployment.slurm, "squeue", "-h", "-o", "%j").stdout
    # and the user's real token still works afterwards
    assert SlurmRest(rest_url, api, user=user, token=deployment.token(user)).authenticated()
