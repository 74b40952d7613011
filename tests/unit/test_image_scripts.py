"""The image scripts' library (dockerfiles/lib/lib.sh) alone, with this machine's bash."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.project_env import ROOT

LIB = ROOT / "dockerfiles" / "lib"
PARTS = ROOT / "dockerfiles" / "slurm-single-node"


def stub(bin_dir: Path, name: str, body: str) -> None:
    """A stand-in command NAME: records `NAME ARGS` in $CALLS, then runs BODY (bash)."""
    path = bin_dir / name
    path.write_text(f'#!/bin/bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    return d


def run(script: str, *args: str, bin_dir: Path, timeout: float = 20, **env: str) -> subprocess.CompletedProcess:
    calls = bin_dir.parent / "calls"
    calls.touch()
    environ = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(calls), "SLURM_IMAGE_LIB": str(LIB),
               **env}
    return subprocess.run(["bash", script, *args], capture_output=True, text=True, env=environ, timeout=timeout)


def calls(bin_dir: Path) -> list[str]:
    return (bin_dir.parent / "calls").read_text().splitlines()


# --- the library's supervision --------------------------------------------------------------------------------
SUPERVISOR = """set -euo pipefail
PROG=test-supervisor
source "$SLURM_IMAGE_LIB/lib.sh"
sup_stop_on_signals
sup_start first "$LOGS/first.out" "$LOGS/first.log" bash -c 'echo first says hi >> "$0"; exec sleep 300' "$LOGS/first.log"
sup_start second "" "" sleep 300
sup_start third "$LOGS/third.out" "$LOGS/third.out" sleep 300
sup_wait "a file that comes" test -e "$LOGS/go"
echo "${SUP_PID[first]} ${SUP_PID[second]} ${SUP_PID[third]}" > "$LOGS/pids"
log "ready"
sup_watch second
"""


@pytest.fixture
def supervisor(tmp_path):
    """Starts SUPERVISOR (three sleeping daemons, `second` restartable), its output in LOGS/{out,err}; yields
    (process, LOGS)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "go").touch()
    script = tmp_path / "supervisor"
    script.write_text(SUPERVISOR)
    env = {**os.environ, "SLURM_IMAGE_LIB": str(LIB), "LOGS": str(logs)}
    with open(logs / "out", "w") as out, open(logs / "err", "w") as err:
        p = subprocess.Popen(["bash", str(script)], stdout=out, stderr=err, env=env, start_new_session=True)
    try:
        yield p, logs
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def started(logs) -> list[int]:
    """The pids of first, second and third, once the supervisor is ready."""
    wait_for(lambda: (logs / "pids").exists() and (logs / "pids").read_text().endswith("\n"))
    return [int(pid) for pid in (logs / "pids").read_text().split()]


def test_a_restartable_daemon_is_started_again_and_another_ends_the_script_with_its_log(supervisor):
    p, logs = supervisor
    first, second, third = started(logs)
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: "started second again" in (logs / "out").read_text())
    assert p.poll() is None  # the others run on
    os.kill(first, signal.SIGKILL)
    assert p.wait(timeout=15) == 1
    out, err = (logs / "out").read_text(), (logs / "err").read_text()
    assert f"test-supervisor: second exited with status 137 (pid {second}); starting it again" in err
    assert f"test-supervisor: ERROR: first (pid {first}) exited with status 137; its log:" in err
    assert f"--- tail of {logs}/first.log\nfirst says hi" in err
    assert "stopped third" in out and "stopped second" in out  # the others, stopped on the way out
    assert out.index("stopped third") < out.index("stopped second")  # in the reverse order of their starts


def test_a_daemon_that_dies_while_another_is_started_again_still_ends_the_script(supervisor):
    p, logs = supervisor
    first, second, _ = started(logs)
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: "starting it again" in (logs / "err").read_text())
    os.kill(first, signal.SIGKILL)  # during the half second before second starts again
    assert p.wait(timeout=15) == 1, (logs / "err").read_text()
    assert f"ERROR: first (pid {first}) exited with status 137" in (logs / "err").read_text()


def test_sigterm_stops_every_daemon_in_the_reverse_order_of_their_starts(supervisor):
    p, logs = supervisor
    started(logs)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=15) == 0
    out = (logs / "out").read_text()
    stopped = [line.split("] stopped ")[1].split()[0] for line in out.splitlines() if "] stopped " in line]
    assert stopped == ["third", "second", "first"], out


def test_a_wait_that_times_out_names_what_it_waited_for_and_stops_the_daemons(tmp_path):
    script = tmp_path / "s"
    script.write_text('set -euo pipefail\nPROG=t\nsource "$SLURM_IMAGE_LIB/lib.sh"\n'
                      'sup_start sleeper "" "" sleep 300\nsup_wait "Godot" false\necho not reached\n')
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=20,
                       env={**os.environ, "SLURM_IMAGE_LIB": str(LIB), "SLURM_START_TIMEOUT": "1"})
    assert p.returncode == 1 and "t: ERROR: timed out after 1s waiting for Godot" in p.stderr, p.stderr
    assert "stopped sleeper" in p.stdout and "not reached" not in p.stdout
    assert time.monotonic() - t0 < 10


def test_control_a_wait_whose_condition_comes_true_returns(tmp_path):
    script = tmp_path / "s"
    script.write_text('set -euo pipefail\nPROG=t\nsource "$SLURM_IMAGE_LIB/lib.sh"\n'
                      'touch "$0.later" & sup_wait "a file" test -e "$0.later"\necho reached\n')
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=20,
                       env={**os.environ, "SLURM_IMAGE_LIB": str(LIB), "SLURM_START_TIMEOUT": "5"})
    assert p.returncode == 0 and p.stdout == "reached\n", p.stdout + p.stderr


def test_a_daemon_that_dies_during_a_wait_ends_the_script_at_once(tmp_path):
    script = tmp_path / "s"
    script.write_text('set -euo pipefail\nPROG=t\nsource "$SLURM_IMAGE_LIB/lib.sh"\n'
                      'sup_start quitter "" "" bash -c "exit 3"\nsup_wait "Godot" false\n')
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=20,
                       env={**os.environ, "SLURM_IMAGE_LIB": str(LIB), "SLURM_START_TIMEOUT": "30"})
    assert p.returncode == 1 and "ERROR: quitter (pid" in p.stderr and "exited with status 3" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 10
