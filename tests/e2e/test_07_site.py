"""Scenario 7: an existing Slurm cluster that the program did not deploy ("the site", tests/site_cluster.py: its
own controller, slurmdbd, MariaDB and two compute nodes in podman containers on a network of their own, outside
Kubernetes, with its own keys and a site-written slurm.conf). The `site` stack (Pulumi.site.yaml, like `prod`)
deploys only the clients, slurmrestd, JupyterLab and the token service (signing with the site's JWT key), into
this machine's Kubernetes, first with a copy of the site's slurm.conf, then configless (the clients fetch it from
the site's slurmctld). In each mode:
- a munge key that is not the site's stops `pulumi up` with the message that names the munge key, before any
  client rolls out;
- with the site's key: JupyterLab's `sinfo` shows the site's nodes, `sbatch examples/test.slurm` from alice's home
  runs on the site (its sacct) and its output is read back in JupyterLab, a two-node job runs on both nodes;
- the stack's slurmrestd: ping and a job with a token the site minted complete, a token signed with another key is
  refused;
- JupyterHub (tests/e2e/hub_deployment.py, from the stack's chart values): alice's server runs as her with her home
  from the site's /home and no key of the site; from its terminal `sinfo` shows the site's nodes and a job written
  in her home runs on the site as her (with only her JWT, configless too), its output read through the contents API.
Then `pulumi destroy` leaves the site as it was (running, its jobs in its accounting) until the tests stop it,
after which nothing of it is left."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from components import jupyter, restd
from components.pods import CONFIG_MOUNT, KEYS_MOUNT
from tests.e2e.deployment import TIMINGS
from tests.e2e.hub_deployment import (
    HubUser,
    chart_values,
    crash_check,
    hub_images,
    hub_logs,
    in_pod,
    job_script,
    password,
    running_hub,
    start_and_time,
)
from tests.e2e.site_stack import HOME_VOLUME, USER, SiteStack, site_home_volume
from tests.hub_egress import hub_users_egress
from tests.project_env import ROOT
from tests.site_cluster import USERS as SITE_USERS
from tests.site_cluster import SiteCluster
from tests.slurm_rest import SlurmRestError, forged_token

pytestmark = pytest.mark.e2e



@pytest.fixture(scope="module")
def site(cluster):
    """The site, running; at the end stopped, with nothing of it left (SiteCluster.stop() checks)."""
    with SiteCluster() as s:
        TIMINGS["outside cluster start to both nodes idle"] = s.timings["idle"]
        yield s


@pytest.fixture(scope="module")
def stack(site, tmp_path_factory):
    """The site's home as the site admin offers it to Kubernetes (a PersistentVolume), and the stack; at the end
    `pulumi destroy`, after which the site still runs and still knows its jobs."""
    with site_home_volume(site):
        s = SiteStack(site, tmp_path_factory.mktemp("site-stack") / "Pulumi.site.yaml")
        yield s
        s.destroy()
        nodes = site.exec("sinfo", "-h", "-N", "-o", "%N %t").stdout.split()
        assert nodes == ["cn1", "idle", "cn2", "idle"], f"the site changed with the stack's destroy: {nodes}"
        assert s.jobs and all(site.sacct_state(j) == "COMPLETED" for j in s.jobs), "the site's accounting lost a job"


@pytest.fixture(scope="class", params=[False, True], ids=["copied slurm.conf", "configless"])
def configless(request):
    return request.param


@pytest.fixture(scope="module")
def hub_images_built(stack):
    """The hub's and proxy's images, and the stack's notebook image (tests/e2e/hub_deployment.hub_images)."""
    t0 = time.monotonic()
    refs = hub_images(stack)
    TIMINGS["JupyterHub images built and pushed (site)"] = time.monotonic() - t0
    return refs


@dataclass
class SiteHub:
    user: HubUser  # USER, logged in, their server running
    login_seconds: float  # from login to the server answering through the proxy


@pytest.fixture(scope="class")
def hub(stack, site, configless, hub_images_built):
    """JupyterHub (tests/e2e/hub_deployment.py) from the chart values for the stack as this mode deployed it (the
    tests before it in the class), the user pods' egress to the site's ports; USER logged in with a running server.
    Afterwards their server is stopped and the hub removed with the pods KubeSpawner made (running_hub): before the
    next mode's `pulumi up` and the stack's destroy."""
    values = chart_values(stack, hub_images_built["notebook"], stack.output("slurmTokenUrl"),
                          egress=hub_users_egress(site_ports=site.ports, restd=True))
    with running_hub(stack, hub_images_built, values) as url:
        user = HubUser(url, USER)
        seconds = start_and_time(user, password(values), crash_check(stack, USER), logs=hub_logs(stack))
        TIMINGS[f"site ({mode_name(configless)}): JupyterHub login to {USER}'s server ready"] = seconds
        yield SiteHub(user, seconds)
        user.hub_api("DELETE", f"/users/{USER}/server")


def mode_name(configless: bool) -> str:
    return "configless" if configless else "copied slurm.conf"


def user_pod_exec(stack: SiteStack, script: str, check: bool = True) -> str:
    """`bash -c SCRIPT` in USER's server pod as the pod runs (their uid), as their terminal; its stdout."""
    return in_pod(stack, USER, script, check).stdout


@pytest.mark.usefixtures("configless")  # every test once per mode, in this order: pytest groups by the class fixture
class TestSite:
    def test_another_munge_key_stops_pulumi_up_saying_so_before_the_clients_roll_out(self, stack, configless):
        def munge_clients():  # the Deployments that mount the munge key (the token service holds only the JWT key)
            return {d["metadata"]["name"]: d["metadata"]["generation"] for d in stack.kube.of_kind("deployment")
                    if d["metadata"]["labels"].get("app.kubernetes.io/name") in (restd.APP, jupyter.APP)}
        before = munge_clients()
        proc = stack.up(munge_key=secrets.token_bytes(1024), configless=configless, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, f"pulumi up with another munge key succeeded:\n{out[-3000:]}"
        assert "munge key mismatch" in out and "site-check" in out, out[-3000:]  # the check Job said it
        assert munge_clients() == before, "the clients rolled out with a munge key the site refuses"

    def test_the_sites_key_deploys_the_clients(self, stack, site, configless):
        stack.up(munge_key=site.munge_key, configless=configless)
        files = stack.config_files()
        assert ("slurm.conf" in files) != configless, sorted(files)
        if configless:
            env = {e["name"]: e.get("value") for e in stack.app(jupyter.APP).spec["containers"][0]["env"]}
            assert env["SLURM_CONF_SERVER"] == site.conf_server

    def test_jupyterlab_sees_the_sites_nodes(self, stack):
        assert stack.exec("sinfo", "-h", "-N", "-o", "%N").split() == ["cn1", "cn2"]

    def test_a_job_from_the_home_runs_on_the_site_and_its_output_is_read_in_jupyterlab(self, stack, site):
        stack.exec("mkdir -p p && cat > p/test.slurm", input=(ROOT / "examples" / "test.slurm").read_text())
        job = stack.exec("cd p && sbatch --parsable test.slurm").strip().split(";")[0]
        stack.jobs.append(job)
        site.wait_job(job, timeout=90)
        out = stack.exec(f"cat p/test-{job}.out")
        assert f"as {USER}" in out and "held 1024 MiB" in out, out

    def test_a_two_node_job_runs_on_both_site_nodes(self, stack, site):
        stack.exec("mkdir -p p && cat > p/two-nodes.slurm", input=(ROOT / "examples" / "two-nodes.slurm").read_text())
        job = stack.exec("cd p && sbatch --parsable two-nodes.slurm").strip().split(";")[0]
        site.wait_job(job)
        assert site.nodes_of(job) == ["cn1", "cn2"]
        out = stack.exec(f"cat p/two-nodes-{job}.out")
        assert sorted(line.split()[-1] for line in out.splitlines()) == ["cn1", "cn2"], out

    def test_the_stacks_slurmrestd_takes_the_sites_tokens_only(self, stack, site):
        client = stack.rest(site.token(USER))
        assert client.ping(), "slurmrestd should see the site's slurmctld UP"
        job = client.submit("#!/bin/bash\necho rest job as $(id -un) on $SLURMD_NODENAME\n", name="site-rest",
                            cwd=f"/home/{USER}")
        assert client.wait_job(job, "COMPLETED", timeout=60) == "COMPLETED"
        assert site.sacct_state(str(job)) == "COMPLETED"
        with pytest.raises(SlurmRestError):
            stack.rest(forged_token(USER)).submit("#!/bin/bash\ntrue\n", name="forged", cwd=f"/home/{USER}")

    def test_a_hub_users_server_runs_as_them_on_the_sites_home_with_no_key(self, stack, site, hub, configless):
        pod = stack.kube.pod(f"jupyter-{USER}")  # KubeSpawner's pod_name_template, the chart leaves it
        container = pod.spec["containers"][0]
        context = {**pod.spec.get("securityContext", {}), **container["securityContext"]}
        assert (context["runAsUser"], context["runAsGroup"]) == (SITE_USERS[USER], SITE_USERS[USER]), context
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod.spec["volumes"]}
        home = mounts[f"/home/{USER}"]
        claim = volumes[home["name"]]["persistentVolumeClaim"]["claimName"]
        assert home["subPath"] == USER and claim == stack.home_claim()
        assert stack.kube.get("pvc", claim)["spec"]["volumeName"] == HOME_VOLUME  # the site's /home
        # What the pod writes in its home is in the site's home, as USER.
        mark = f"from-the-hub-{secrets.token_hex(3)}"
        assert user_pod_exec(stack, f"id -u && cd ~{USER} && pwd && touch {mark}").split() == [str(SITE_USERS[USER]),
                                                                                      f"/home/{USER}"]
        assert (Path(site.home) / USER / mark).stat().st_uid == SITE_USERS[USER]
        # No key of the site: not in the spec, not in any file or the environment of the pod.
        spec = json.dumps(pod.spec)
        env = user_pod_exec(stack, "cat /proc/1/environ | tr '\\0' '\\n'; env")
        for key_name, key in (("munge.key", site.munge_key), ("jwt_hs256.key", site.jwt_key)):
            assert stack.secret_with(key_name)[0] not in spec, f"{key_name}'s Secret in the user pod"
            assert key.hex() not in env and base64.b64encode(key).decode() not in env, key_name
        assert KEYS_MOUNT not in spec
        found = user_pod_exec(stack, "ls /etc/munge /etc/slurm-keys /run/munge 2>/dev/null; "
                                     "find / -xdev \\( -name 'munge.key' -o -name 'jwt*.key' \\) 2>/dev/null; true")
        assert found.strip() == "", found
        # The Slurm files: a copy of slurm.conf, or (configless) none, and where to fetch it from.
        files = user_pod_exec(stack, f"ls {CONFIG_MOUNT}").split()
        assert files == sorted(stack.config_files()) and ("slurm.conf" in files) != configless, files
        server = user_pod_exec(stack, "printenv SLURM_CONF_SERVER", check=False).strip()
        assert server == (site.conf_server if configless else ""), server

    def test_a_hub_users_job_from_their_home_runs_on_the_site_as_them(self, stack, site, hub, configless):
        """sinfo from the terminal shows the site's nodes; a job written in ~/p through the contents API and
        submitted from the terminal runs on the site as USER; its output is read back through the contents API."""
        user, t0 = hub.user, time.monotonic()
        assert user_pod_exec(stack, "timeout 20 sinfo -h -N -o %N").split() == ["cn1", "cn2"]
        name = f"hub-{secrets.token_hex(2)}"
        r = user.server("PUT", "/api/contents/p", json={"type": "directory"})
        assert r.status_code in (200, 201), r.text
        r = user.server("PUT", f"/api/contents/p/{name}.sh", json={"type": "file", "format": "text",
                                                                     "content": job_script(name)})
        assert r.status_code in (200, 201), r.text
        job = user_pod_exec(stack, f"cd ~{USER}/p && sbatch --parsable {name}.sh").strip().split(";")[0]
        stack.jobs.append(job)
        site.wait_job(job, timeout=90)
        TIMINGS[f"site ({mode_name(configless)}): JupyterHub login to {USER}'s first job COMPLETED"] = (
            hub.login_seconds + time.monotonic() - t0)
        acct = site.exec("sacct", "-n", "-X", "-P", "-j", job, "-o", "User,JobName").stdout.split()
        assert acct == [f"{USER}|{name}"], acct
        r = user.server("GET", f"/api/contents/p/{name}-{job}.out")
        assert r.status_code == 200, (r.status_code, r.text[:300])
        assert re.fullmatch(rf"{name} on cn[12] as {USER} in /home/{USER}/p", r.json()["content"].strip()), r.text
