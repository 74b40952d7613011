"""A small slurmrestd client that works with every Slurm version of components/slurm_files.VERSIONS.

Used by the image tests and meant for the end-to-end tests. What differs between API versions (seen on
Debian's 22.05.8, 24.11.5 and 26.05.5):
- submit payload: v0.0.38 has `script` beside `job` and `environment` as an object; v0.0.40+ put `script`
  inside `job` and `environment` is a list of "NAME=value".
- submit answer: v0.0.38 and v0.0.42+ give a top-level `job_id`, v0.0.40/41 `result.job_id`.
- `job_state` is a string in v0.0.38 and a list of flags in v0.0.40+.
- a wrong token: 22.05 answers HTTP 500; 24.11+ answer /ping with HTTP 200 and `"pinged": "DOWN"` and
  /diag with HTTP 511. No token: HTTP 401 everywhere. `authenticated()` hides this.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Optional

import requests

TEN_YEARS = 315360000  # seconds: the lifespan of a token that must never be minted for a user
# A job body whose job.group_id is a string: Debian trixie's slurmrestd 24.11.5 aborts on it ("fatal: invalid type")
# before any authentication (fixed upstream in 25.05.3; 26.05 answers 511).
BAD_SUBMIT = {"job": {"name": "x", "group_id": "users", "current_working_directory": "/tmp",
                      "environment": ["PATH=/usr/bin:/bin"], "script": "#!/bin/bash\ntrue\n"}}


# A shell command printing the pid of the slurmrestd process of a container (none: nothing), without procps.
SLURMRESTD_PID = 'for p in /proc/[0-9]*; do [ "$(cat $p/comm)" = slurmrestd ] && echo ${p#/proc/}; done; true'


def minted_token(scontrol_output: str) -> str:
    """The token `scontrol token` printed (its `SLURM_JWT=...` line), or '' if it printed none."""
    return next((line.split("=", 1)[1] for line in scontrol_output.splitlines() if line.startswith("SLURM_JWT=")), "")


def jwt_lifespan(token: str) -> int:
    """A JWT's `exp` - `iat`, seconds."""
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return claims["exp"] - claims["iat"]


def hs256_token(key: bytes, user: str, lifetime: int = 600) -> str:
    """A Slurm JWT for `user` as `scontrol token` makes it (HS256; claims iat, exp, sun; Slurm's jwt.html), signed
    with `key`, valid `lifetime` seconds from now (negative: expired): for tokens Slurm would not mint."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signed = header + "." + b64(json.dumps({"iat": now - 60, "exp": now + lifetime, "sun": user}).encode())
    return f"{signed}.{b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())}"


def forged_token(user: str) -> str:
    """A well-formed HS256 JWT for `user`, signed with a key that is not the cluster's."""
    return hs256_token(os.urandom(32), user)


class SlurmRestError(RuntimeError):
    def __init__(self, message: str, status: int = 0, body: object = None):
        super().__init__(message)
        self.status, self.body = status, body


class SlurmRest:
    def __init__(self, base_url: str, api_version: str, user: str = "root", token: Optional[str] = None,
                 timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version  # "v0.0.38", "v0.0.42", ...
        self.user, self.token, self.timeout = user, token, timeout

    # --- HTTP -----------------------------------------------------------------------------------------------
    def _headers(self) -> dict:
        h = {"X-SLURM-USER-NAME": self.user}
        if self.token is not None:
            h["X-SLURM-USER-TOKEN"] = self.token
        return h

    def request(self, method: str, path: str, json: Optional[dict] = None) -> requests.Response:
        """METHOD /slurm/<api_version>/<path>; the raw response."""
        url = f"{self.base_url}/slurm/{self.api_version}/{path.lstrip('/')}"
        return requests.request(method, url, headers=self._headers(), json=json, timeout=self.timeout)

    def _json(self, method: str, path: str, json: Optional[dict] = None) -> dict:
        r = self.request(method, path, json)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        errors = body.get("errors") if isinstance(body, dict) else None
        if r.status_code >= 400 or errors:
            raise SlurmRestError(f"{method} {path}: HTTP {r.status_code}: {errors or body}", r.status_code, body)
        return body

    # --- operations -----------------------------------------------------------------------------------------
    def ping(self) -> bool:
        """True when slurmrestd answers and slurmctld is UP for this token."""
        body = self._json("GET", "ping")
        pings = body.get("pings") or []
        return bool(pings) and all((p.get("pinged") or p.get("ping")) == "UP" for p in pings)

    def authenticated(self) -> bool:
        """Does slurmctld accept this token? (False for a missing or wrong one, on every version.)"""
        r = self.request("GET", "diag")
        if r.status_code != 200:
            return False
        body = r.json()
        return not body.get("errors")

    def submit(self, script: str, name: str = "rest-job", partition: Optional[str] = None,
               cwd: str = "/tmp", environment: Optional[dict] = None) -> int:
        """Submit a batch script; returns the job id."""
        env = environment or {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        job: dict = {"name": name, "current_working_directory": cwd}
        if partition:
            job["partition"] = partition
        if self.api_version == "v0.0.38":
            job["environment"] = dict(env)
            payload = {"job": job, "script": script}
        else:
            job["environment"] = [f"{k}={v}" for k, v in env.items()]
            job["script"] = script
            payload = {"job": job}
        body = self._json("POST", "job/submit", payload)
        job_id = body.get("job_id") or (body.get("result") or {}).get("job_id")
        if not job_id:
            raise SlurmRestError(f"job/submit answered without a job id: {body}", 200, body)
        return int(job_id)

    def job_state(self, job_id: int) -> str:
        """The job's state as slurmctld knows it (COMPLETED, RUNNING, PENDING, ...)."""
        jobs = self._json("GET", f"job/{job_id}").get("jobs") or []
        if not jobs:
            raise SlurmRestError(f"job {job_id} is unknown to slurmctld")
        state = jobs[0].get("job_state")
        return state[0] if isinstance(state, list) else str(state)

    def wait_job(self, job_id: int, state: str = "COMPLETED", timeout: float = 60) -> str:
        final = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            last = self.job_state(job_id)
            if last == state:
                return last
            if last in final:
                raise SlurmRestError(f"job {job_id} ended {last}, expected {state}")
            time.sleep(0.2)
        raise SlurmRestError(f"timed out after {timeout}s waiting for job {job_id} to be {state} (last {last})")
