"""For the scripts that use the test helpers (scripts/bench-*): run them as scripts/test runs pytest, with
scripts/env.sh's environment and the project's virtualenv, however they were started."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def enter(script: str) -> None:
    """Re-executes `script` with .venv's python and scripts/env.sh's variables, unless already so."""
    if "CONTAINERS_CONF" not in os.environ:
        env = subprocess.run(["bash", "-c", f"source {ROOT}/scripts/env.sh && env -0"], capture_output=True,
                             check=True)
        os.environ.update(kv.split("=", 1) for kv in env.stdout.decode().split("\0") if "=" in kv)
    if os.path.abspath(sys.prefix) != os.path.join(ROOT, ".venv"):
        python = os.path.join(ROOT, ".venv", "bin", "python")
        os.execv(python, [python, script, *sys.argv[1:]])
