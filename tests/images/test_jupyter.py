"""slurm-jupyter: JupyterLab serves only with its token, and jupyterlab-slurm drives a real Slurm.

Real containers (podman): the images from dockerfiles/, a slurm-single-node rendered by
components/slurm_files.py, and slurm-jupyter started as Kubernetes would start it (JUPYTER_TOKEN from a Secret,
/etc/slurm-config and /etc/slurm-keys mounted read-only). SLURM_VERSION selects the version (default 24.11).
"""

import os
import secrets
import shutil
import tempfile

import pytest
import requests

from components.directory import NAME_MAX, User, render_files
from components.images import CLIENT_BASED as JUPYTER_IMAGES
from tests.images.jupyter_fixtures import (
    add_cluster_user,
    client_args,
    processes,
    run_entrypoint,
    submit_as,
    upstream_squeue,
)
from tests.images.slurm_containers import podman, wait_until

pytestmark = pytest.mark.containers

TOKEN = secrets.token_hex(24)
JOB_SCRIPT = """#!/bin/bash
#SBATCH --job-name={name}
#SBATCH --chdir=/tmp
#SBATCH --output=/tmp/{name}-%j.out
id
sleep 300
"""


@pytest.mark.parametrize("image", JUPYTER_IMAGES)
def test_the_terminal_has_curl_for_slurmrestd(jupyter_images, image):
    p = podman("run", "--rm", "--entrypoint", "curl", jupyter_images[image], "--version", check=False)
    assert p.returncode == 0 and p.stdout.startswith("curl "), p.stderr


@pytest.mark.parametrize("image", JUPYTER_IMAGES)
def test_the_lock_is_installed_whole_and_without_rfc3987_syntax(jupyter_images, image):
    """requirements.in: rfc3987-syntax (and its lark) left out, since it builds a grammar at import (1 s of each server
    start); everything else of the lock is there and consistent (pip check); the control: the import without it
    works, as jsonschema treats that checker as optional."""
    script = ("import importlib.util as u, jsonschema, jupyter_events, jupyter_server.serverapp; "
              "print(u.find_spec('rfc3987_syntax'), u.find_spec('lark'))")
    p = podman("run", "--rm", "--entrypoint", "/opt/jupyter/bin/python", jupyter_images[image], "-c", script,
               check=False)
    assert p.returncode == 0 and p.stdout.split() == ["None", "None"], p.stdout + p.stderr
    p = podman("run", "--rm", "--entrypoint", "/opt/jupyter/bin/pip", jupyter_images[image], "check", check=False)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.fixture(scope="module")
def lab(jupyter_images, slurm_cluster, start_jupyter):
    return start_jupyter(jupyter_images["slurm-jupyter"], *client_args(slurm_cluster), "-e", f"JUPYTER_TOKEN={TOKEN}")


def api(lab, method, path, token=TOKEN, **kw):
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"token {token}"
    return requests.request(method, lab.url + path, headers=headers, timeout=30, allow_redirects=False, **kw)


def test_jupyterlab_fetches_no_news_and_checks_no_updates(lab):
    """A managed deployment: no first-start pop-up offering to fetch Jupyter news from the internet
    (overrides.json changes the defaults of the notification settings)."""
    r = api(lab, "GET", "/lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert r.status_code == 200, r.text
    defaults = {k: v.get("default") for k, v in r.json()["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False, defaults


# --- authentication ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("env, message", [
    ([], "refusing to start JupyterLab without authentication"),
    (["-e", "JUPYTER_TOKEN="], "refusing to start JupyterLab without authentication"),
    (["-e", "JUPYTER_TOKEN=tooshort"], "shorter than 16 characters"),
    (["-e", "JUPYTER_TOKEN=a token with spaces in it"], "must not contain white space"),
    (["-e", "JUPYTER_TOKEN_FILE=/nonexistent"], "is not a readable file"),
], ids=["unset", "empty", "short", "spaces", "missing-file"])
def test_refuses_to_start_without_a_usable_token(jupyter_images, slurm_cluster, env, message):
    p = run_entrypoint(jupyter_images["slurm-jupyter"], *client_args(slurm_cluster), *env)
    assert p.returncode != 0, f"started without a usable token:\n{p.stdout}\n{p.stderr}"
    assert message in p.stderr, p.stderr
    assert "ServerApp" not in p.stderr, "JupyterLab must not have been started"


def test_started_as_a_uid_outside_the_user_directory_it_refuses(jupyter_images, slurm_cluster):
    """Non-root is JupyterHub's user-pod mode: the uid must be a user of the directory (none is mounted here).
    --passwd=false: podman would otherwise add the uid to /etc/passwd, which Kubernetes does not do."""
    p = run_entrypoint(jupyter_images["slurm-jupyter"], "--user", "2345", "--passwd=false",
                       *client_args(slurm_cluster), "-e", f"JUPYTER_TOKEN={TOKEN}")
    assert p.returncode != 0 and "uid 2345 is not in the user directory" in p.stderr, p.stderr


@pytest.mark.parametrize("mode, gid", [(0o444, 0), (0o440, 100)], ids=["world-readable", "fsGroup-100"])
def test_refuses_a_munge_key_the_notebook_user_can_read(jupyter_images, slurm_cluster, mode, gid):
    """A key readable by others, or by gid 100 (what a Kubernetes fsGroup: 100 does to Secret files)."""
    with tempfile.TemporaryDirectory() as keys:
        os.chmod(keys, 0o755)  # as a Kubernetes Secret volume: the directory is traversable
        key = os.path.join(keys, "munge.key")
        with open(key, "wb") as f:
            f.write(slurm_cluster.files.munge_key)
        os.chown(key, 0, gid)
        os.chmod(key, mode)
        p = run_entrypoint(jupyter_images["slurm-jupyter"], *client_args(slurm_cluster, keys_dir=keys),
                           "-e", f"JUPYTER_TOKEN={TOKEN}")
    assert p.returncode != 0, f"started with a readable munge key:\n{p.stderr}"
    assert "/etc/slurm-keys/munge.key readable by jovyan" in p.stderr, p.stderr


def test_lab_and_api_only_with_the_token(lab):
    # Without a token: the UI redirects to the login page, the APIs answer 403.
    r = api(lab, "GET", "/lab", token=None)
    assert r.status_code == 302 and "/login" in r.headers["Location"], (r.status_code, r.headers)
    for path in ("/api/status", "/api/contents", "/jupyterlab_slurm/squeue", "/api/terminals"):
        assert api(lab, "GET", path, token=None).status_code == 403, path
    # A wrong token is no better.
    assert api(lab, "GET", "/api/status", token="0" * 48).status_code == 403
    assert requests.get(f"{lab.url}/api/status?token={'0' * 48}", timeout=10).status_code == 403
    # The token in the URL or in the Authorization header.
    assert requests.get(f"{lab.url}/api/status?token={TOKEN}", timeout=10).status_code == 200
    assert api(lab, "GET", "/api/status").status_code == 200
    r = requests.get(f"{lab.url}/lab?token={TOKEN}", timeout=10)
    assert r.status_code == 200 and "JupyterLab" in r.text


def test_token_from_a_file(jupyter_images, slurm_cluster, start_jupyter):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "token")
        file_token = secrets.token_hex(20)
        with open(path, "w") as f:
            f.write(file_token + "\n")
        os.chmod(path, 0o400)
        c = start_jupyter(jupyter_images["slurm-jupyter"], *client_args(slurm_cluster),
                          "-v", f"{path}:/run/secrets/jupyter-token:ro", "-e", "JUPYTER_TOKEN_FILE=/run/secrets/jupyter-token")
        assert api(c, "GET", "/api/status", token=file_token).status_code == 200
        assert api(c, "GET", "/api/status", token=None).status_code == 403


def test_runs_as_jovyan_with_munge_as_munge(lab):
    procs = processes(lab)
    assert {u for u, a in procs if "jupyter-lab" in a and not a.startswith("tini")} == {"jovyan"}, procs
    assert {u for u, a in procs if "munged" in a.split(" ")[0]} == {"munge"}, procs
    assert lab.exec("stat", "-c", "%U:%G %a", "/etc/munge/munge.key").stdout.strip() == "munge:munge 400"
    # The notebook user cannot read the key, so cannot forge credentials.
    assert lab.exec("cat", "/etc/munge/munge.key", user="jovyan", check=False).returncode != 0


# --- jupyterlab-slurm against the running cluster -----------------------------------------------------------
def test_extension_submits_lists_and_cancels_a_job(lab, slurm_cluster):
    r = api(lab, "GET", "/jupyterlab_slurm/status")
    assert r.status_code == 200 and r.json()["data"]["name"] == "jupyterlab_slurm", r.text

    # A job script saved through the contents API, submitted through the extension's sbatch endpoint.
    name = f"lab-{secrets.token_hex(3)}"
    r = api(lab, "PUT", f"/api/contents/{name}.sh",
            json={"type": "file", "format": "text", "content": JOB_SCRIPT.format(name=name)})
    assert r.status_code in (200, 201), r.text
    r = api(lab, "POST", "/jupyterlab_slurm/sbatch",
            json={"inputPath": f"/home/jovyan/{name}.sh", "outputPath": "/home/jovyan"})
    body = r.json()
    assert r.status_code == 200 and body["success"], body
    job_id = body["data"]["jobId"]

    # squeue through the extension lists it, as jovyan.
    def listed():
        r = api(lab, "GET", "/jupyterlab_slurm/squeue")
        assert r.status_code == 200, r.text
        rows = r.json()["data"]["rows"]
        return next((row for row in rows if row[0] == job_id), None)
    row = wait_until(listed, 30, f"squeue (jupyterlab_slurm) to list job {job_id}", lab.logs)
    cols = dict(zip(["JOBID", "PARTITION", "NAME", "USER", "ST"], row, strict=False))
    assert cols["NAME"] == name and cols["USER"] == "jovyan" and cols["PARTITION"] == "debug", row
    # ... and the cluster agrees: it runs as uid 1000 on the node.
    slurm_cluster.wait_job(job_id, "RUNNING", 30)
    out = slurm_cluster.wait_for(lambda: slurm_cluster.exec("cat", f"/tmp/{name}-{job_id}.out", check=False).stdout,
                                 "the job's output file", 30)
    assert "uid=1000(jovyan)" in out, out

    # scancel through the extension.
    r = api(lab, "DELETE", "/jupyterlab_slurm/scancel", json={"job_ids": [job_id]})
    assert r.status_code == 200 and r.json()["success"], r.text
    slurm_cluster.wait_job(job_id, "CANCELLED", 30)
    assert listed() is None

    # Job History as the UI asks for it: the session's user (the Unix user, not an anonymous name), then sacct -u.
    r = api(lab, "GET", "/jupyterlab_slurm/user")
    assert r.status_code == 200 and r.json()["data"]["user"] == "jovyan", r.text
    r = api(lab, "GET", "/jupyterlab_slurm/sacct", params={"user": "jovyan"})
    assert r.status_code == 200 and r.json()["success"], r.text
    data = r.json()["data"]
    history = {row["JobID"]: row for row in (dict(zip(data["columns"], v, strict=True)) for v in data["rows"])}
    assert job_id in history and history[job_id]["State"].startswith("CANCELLED"), history


# --- the queue shows each job's real owner and name (jupyterlab_slurm_squeue) --------------------------------
# A user of the directory with a name of the longest length it allows, who runs the lab; and mallory, who names her
# jobs to look like someone else's in the queue (her "x alice R" showed USER alice in jupyterlab-slurm's row).
LONG_USER = "a-thirty-two-character-user-name"
QUEUE_USERS = {LONG_USER: 2101, "mallory": 2102}
SPOOFING_NAMES = ["x alice R", """a "b" 'c'""", f"x {LONG_USER} R", "  <b>|tab\there|</b>  ",
                  "2 lines\n999999 debug x alice R"]


@pytest.fixture(scope="module")
def queue_lab(jupyter_images, slurm_cluster, start_jupyter):
    """The lab as LONG_USER (NB_USER, from the directory mounted as in Kubernetes); the users on the cluster too."""
    assert len(LONG_USER) == NAME_MAX
    directory = tempfile.mkdtemp(prefix="sci-jt-directory-")
    try:
        for name, text in render_files([User(n, uid, uid) for n, uid in QUEUE_USERS.items()], {}).items():
            with open(os.path.join(directory, name), "w") as f:
                f.write(text)
            os.chmod(os.path.join(directory, name), 0o644)
        os.chmod(directory, 0o755)
        for name, uid in QUEUE_USERS.items():
            add_cluster_user(slurm_cluster, name, uid)
        yield start_jupyter(jupyter_images["slurm-jupyter"], *client_args(slurm_cluster),
                            "-v", f"{directory}:/var/lib/extrausers:ro", "-e", f"NB_USER={LONG_USER}",
                            "-e", f"JUPYTER_TOKEN={TOKEN}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_queue_shows_the_real_owner_and_exact_name_of_every_job(queue_lab, slurm_cluster):
    """Through the endpoint the Slurm panel polls (/jupyterlab_slurm/squeue): mallory's jobs named like another user's,
    with quotes, markup, a tab, edge blanks and a newline (sbatch -J takes them all) are mallory's with those exact
    names; a 32-character user is whole, and "my jobs" (USER == /jupyterlab_slurm/user) is exactly theirs.
    Control: jupyterlab-slurm's own parser, on the same queue, shows alice, a cut user name, a made-up row."""
    jobs = {submit_as(slurm_cluster, "mallory", name): ("mallory", name) for name in SPOOFING_NAMES}
    mine = submit_as(slurm_cluster, LONG_USER, "mine")
    jobs[mine] = (LONG_USER, "mine")
    try:
        def listed():
            r = api(queue_lab, "GET", "/jupyterlab_slurm/squeue")
            assert r.status_code == 200 and r.json()["success"], r.text
            data = r.json()["data"]
            rows = {row["JOBID"]: row for row in (dict(zip(data["columns"], v, strict=True)) for v in data["rows"])}
            return jobs.keys() <= rows.keys() and rows
        rows = wait_until(listed, 30, f"squeue (jupyterlab_slurm) to list jobs {sorted(jobs)}", queue_lab.logs)
        for job_id, (user, name) in jobs.items():
            assert (rows[job_id]["USER"], rows[job_id]["NAME"]) == (user, name), rows[job_id]
            assert rows[job_id]["PARTITION"] == "debug" and rows[job_id]["ST"] in ("R", "PD"), rows[job_id]
        me = api(queue_lab, "GET", "/jupyterlab_slurm/user").json()["data"]["user"]
        assert me == LONG_USER
        assert {j for j, row in rows.items() if row["USER"] == me} == {mine}, rows

        # Control: the same queue through jupyterlab-slurm 4.1.0's SqueueHandler.run_command, unreplaced.
        upstream = upstream_squeue(queue_lab, f"{QUEUE_USERS[LONG_USER]}:{QUEUE_USERS[LONG_USER]}")
        cols = upstream["data"]["columns"]
        urows = {row[0]: dict(zip(cols, row, strict=True)) for row in upstream["data"]["rows"]}
        spoofed = [j for j, (_, name) in jobs.items() if name == "x alice R"][0]
        assert urows[spoofed]["USER"] == "alice", urows[spoofed]
        mimic = [j for j, (_, name) in jobs.items() if name == f"x {LONG_USER} R"][0]
        assert urows[mine]["USER"] == LONG_USER[:20] != me, urows[mine]
        assert urows[mimic]["USER"] == LONG_USER, urows[mimic]
        # A newline in a name even made a whole row up: job 999999 of alice, which does not exist.
        assert urows["999999"]["USER"] == "alice" and "999999" not in rows, urows["999999"]
    finally:
        slurm_cluster.exec("scancel", *jobs, check=False)
