"""What every suite and scripts/bench share: the checkout (`ROOT`), the Pulumi config prefix,
`pulumi()` (the project's CLI wrapper), and `enter()`, which runs a script as scripts/test runs pytest.

Standard library only: scripts import this before `enter()` has switched to the project's virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "slurm-cloud-integration:"  # of every config key in Pulumi.<stack>.yaml (Pulumi.yaml's name)


def pulumi_command(*args: str, stack: str, config_file: Optional[Path] = None) -> list[str]:
    """The argv of `scripts/pulumi ARGS --stack STACK --non-interactive [--config-file FILE]` (run it in ROOT)."""
    cmd = [str(ROOT / "scripts" / "pulumi"), *args, "--stack", stack, "--non-interactive"]
    return cmd + (["--config-file", str(config_file)] if config_file else [])


def pulumi(*args: str, stack: str, config_file: Optional[Path] = None, check: bool = True,
           timeout: float = 3600) -> subprocess.CompletedProcess:
    """`scripts/pulumi ARGS --stack STACK --non-interactive [--config-file FILE]` in ROOT, output captured;
    with `check`, a non-zero exit raises AssertionError with the command and the output's tail."""
    cmd = pulumi_command(*args, stack=stack, config_file=config_file)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(['scripts/pulumi', *cmd[1:]])} exited {proc.returncode}:\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def enter(script: str) -> None:
    """Re-executes `script` with .venv's python and scripts/env.sh's variables, unless already so."""
    if "CONTAINERS_CONF" not in os.environ:
        env = subprocess.run(["bash", "-c", f"source {ROOT}/scripts/env.sh && env -0"], capture_output=True,
                             check=True)
        os.environ.update(kv.split("=", 1) for kv in env.stdout.decode().split("\0") if "=" in kv)
    if os.path.abspath(sys.prefix) != str(ROOT / ".venv"):
        python = str(ROOT / ".venv" / "bin" / "python")
        os.execv(python, [python, script, *sys.argv[1:]])
