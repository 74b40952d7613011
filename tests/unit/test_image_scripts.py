"""The image scripts' library (dockerfiles/lib/lib.sh) and slurm-single-node's entrypoint parts, each alone, with
this machine's bash: the Slurm commands they call are stand-ins on PATH that record their arguments (the parts in
the image, as root: tests/images/test_single_node_parts.py)."""

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


# --- accounting.sh --------------------------------------------------------------------------------------------
PASSWD = """root:x:0:0:root:/root:/bin/bash
slurm:x:64030:64030::/nonexistent:/usr/sbin/nologin
daemonish:x:999:999::/:/bin/false
jovyan:x:1000:100::/home/jovyan:/bin/bash
alice:x:2001:2001::/home/alice:/bin/bash
bob:x:2002:2002::/home/bob:/bin/bash
last:x:60000:60000::/home/last:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"""


def accounting_stubs(bin_dir: Path, clusters: str, assocs: str) -> None:
    stub(bin_dir, "getent", f"cat <<'EOF'\n{PASSWD}\nEOF")
    (bin_dir / "clusters").write_text(clusters)
    (bin_dir / "assocs").write_text(assocs)
    stub(bin_dir, "sacctmgr", f"""case "$*" in
  *"show cluster"*) cat {bin_dir}/clusters;;
  *"show assoc"*) cat {bin_dir}/assocs;;
esac""")


def test_accounting_adds_the_missing_users_and_removes_the_others_but_root(bin_dir):
    accounting_stubs(bin_dir, "scitest\n", "|root\nusers|\nusers|alice\nusers|carol\n")
    p = run(str(PARTS / "accounting.sh"), "scitest", bin_dir=bin_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    changes = [c for c in calls(bin_dir) if " -i " in c]
    assert changes == ["sacctmgr -i add user name=bob,jovyan account=users cluster=scitest",
                       "sacctmgr -i delete user name=carol"], calls(bin_dir)
    assert "accounting users: 3 (added 2, removed 1)" in p.stdout  # uids 1000 to 59999: jovyan, alice, bob


def test_accounting_registers_a_new_cluster_and_its_account_first(bin_dir):
    accounting_stubs(bin_dir, "other\n", "")
    p = run(str(PARTS / "accounting.sh"), "scitest", bin_dir=bin_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    assert [c for c in calls(bin_dir) if " -i " in c] == [
        "sacctmgr -i add cluster scitest",
        "sacctmgr -i add account users cluster=scitest description=users of the directory organization=none",
        "sacctmgr -i add user name=alice,bob,jovyan account=users cluster=scitest"]


def test_control_accounting_that_already_holds_the_users_is_left_alone(bin_dir):
    accounting_stubs(bin_dir, "scitest\n", "|root\nusers|\nusers|alice\nusers|bob\nusers|jovyan\n")
    p = run(str(PARTS / "accounting.sh"), "scitest", bin_dir=bin_dir)
    assert p.returncode == 0 and "added 0, removed 0" in p.stdout, p.stdout + p.stderr
    assert [c for c in calls(bin_dir) if " -i " in c] == []


def test_accounting_stops_the_start_when_slurmdbd_cannot_list_the_users(bin_dir):
    stub(bin_dir, "getent", f"cat <<'EOF'\n{PASSWD}\nEOF")
    stub(bin_dir, "sacctmgr", 'case "$*" in *"show cluster"*) echo scitest;; *) exit 1;; esac')
    p = run(str(PARTS / "accounting.sh"), "scitest", bin_dir=bin_dir)
    assert p.returncode == 1 and "slurm-single-node: ERROR: sacctmgr show assoc failed" in p.stderr, p.stderr


# --- directory.sh: the site's directory followed, by parts (the single node all, the distributed roles one each) ---
DAVE = "dave:*:10004:10004:dave:/home/dave:/bin/bash"
IMAGE_PASSWD = "\n".join(line for line in PASSWD.splitlines() if not line.startswith(("alice:", "bob:", "last:")))


def directory_stubs(bin_dir: Path) -> None:
    """The directory (getent -s ldap) lists dave, whom accounting lacks; mkdir, chown and chmod only record (the homes
    are the image test's: tests/images/test_distributed_ldap.py), so nothing here touches this machine's /home."""
    stub(bin_dir, "getent", f"""case "$*" in
  "-s ldap passwd") echo '{DAVE}';;
  "-s files passwd") cat <<'EOF'\n{IMAGE_PASSWD}\nEOF
;;
  *) exit 2;;
esac""")
    stub(bin_dir, "sacctmgr", 'case "$*" in *"show assoc"*) printf "|root\\nusers|\\nusers|jovyan\\n";; esac')
    for name in ("mkdir", "chown", "chmod"):
        stub(bin_dir, name, "")


def changes(bin_dir: Path) -> list[str]:
    return [c for c in calls(bin_dir) if c.startswith(("mkdir", "chown -h", "sacctmgr -i"))]


HOME_MADE = ["mkdir -m 0700 /home/dave", "chown -h 10004:10004 /home/dave"]
ASSOCIATED = ["sacctmgr -i add user name=dave account=users cluster=scitest"]


@pytest.mark.parametrize("args, made", [
    (("all", "scitest"), HOME_MADE + ASSOCIATED),  # the single node: both in its one pod
    (("homes",), HOME_MADE),  # a distributed node pod: it mounts the shared home, and has no slurmdbd.conf
    (("accounting", "scitest"), ASSOCIATED),  # the distributed accounting pod: slurmdbd's, no home mounted
])
def test_a_directory_sync_does_only_its_parts(bin_dir, args, made):
    directory_stubs(bin_dir)
    p = run(str(PARTS / "directory.sh"), *args, bin_dir=bin_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    assert changes(bin_dir) == made, calls(bin_dir)
    assert any(c.startswith("sacctmgr") for c in calls(bin_dir)) == (args[0] != "homes"), "a node pod asks no slurmdbd"


@pytest.mark.parametrize("args, words", [(("accounting",), "no cluster named"), (("users", "x"), "is not all")])
def test_a_directory_sync_refuses_unknown_parts_and_accounting_without_a_cluster(bin_dir, args, words):
    directory_stubs(bin_dir)
    p = run(str(PARTS / "directory.sh"), *args, bin_dir=bin_dir)
    assert p.returncode == 1 and words in p.stderr, p.stdout + p.stderr
    assert changes(bin_dir) == []


# Several syncs in one shell, as directory_sync_loop runs them: listing N of the directory is the file listing.N
# (getent -s ldap passwd), and accounting is a file the stand-in sacctmgr reads and changes (a delete fails while
# the file `busy` exists: the user still has jobs).
SYNCS = """set -euo pipefail
PROG=slurm-single-node
source "$SLURM_IMAGE_LIB/lib.sh"
for part in homes accounting directory; do source "$PARTS/$part.sh"; done
for i in $(seq "$1"); do
  echo "sync $i" >> "$CALLS"
  sync_directory all scitest || echo "sync $i failed" >> "$CALLS"
done
"""


def syncing_stubs(bin_dir: Path, listings: list[list[str]], assocs: list[str], busy: bool = False) -> None:
    d = bin_dir.parent
    for i, names in enumerate(listings, 1):
        (d / f"listing.{i}").write_text("".join(f"{n}:*:{10000 + sum(map(ord, n))}:10000:{n}:/home/{n}:/bin/bash\n"
                                                for n in names))
    (d / "n").write_text("0")
    (d / "assocs").write_text("|root\nusers|\n" + "".join(f"users|{a}\n" for a in assocs))
    if busy:
        (d / "busy").touch()
    stub(bin_dir, "getent", f"""case "$*" in
  "-s ldap passwd") n=$(( $(cat {d}/n) + 1 )); echo $n > {d}/n; cat {d}/listing.$n;;
  "-s files passwd") cat <<'EOF'\n{IMAGE_PASSWD}\nEOF
;;
  *) exit 2;;
esac""")
    stub(bin_dir, "sacctmgr", f"""args="$*"; names="${{args#*name=}}"; names="${{names%% *}}"
case "$*" in
  *"show assoc"*) cat {d}/assocs;;
  *"delete user"*) [[ ! -e {d}/busy ]] || exit 1
    for n in ${{names//,/ }}; do sed -i "/^users|$n\\$/d" {d}/assocs; done;;
  *"add user"*) for n in ${{names//,/ }}; do echo "users|$n" >> {d}/assocs; done;;
esac""")
    for name in ("mkdir", "chown", "chmod"):
        stub(bin_dir, name, "")


def run_syncs(bin_dir: Path, n: int, **env: str) -> subprocess.CompletedProcess:
    script = bin_dir.parent / "syncs.sh"
    script.write_text(SYNCS)
    return run(str(script), str(n), bin_dir=bin_dir, PARTS=str(PARTS), **env)


def by_sync(bin_dir: Path) -> dict[int, list[str]]:
    """The accounting changes (and asks) of each sync."""
    out: dict[int, list[str]] = {}
    for c in calls(bin_dir):
        if c.startswith("sync "):
            out[int(c.split()[1])] = []
        elif c.startswith("sacctmgr"):
            out[max(out)].append(c.replace("sacctmgr -n -P show assoc cluster=scitest format=account,user", "show"))
    return out


LOOP_RESTARTED = """set -euo pipefail
PROG=slurm-single-node
source "$SLURM_IMAGE_LIB/lib.sh"
for part in homes accounting directory; do source "$PARTS/$part.sh"; done
sync_directory all scitest || true  # follow_directory's first sync, in the entrypoint's shell
for run in 1 2; do (directory_sync_loop all scitest) || true; done  # the loop, and sup_watch starting it again
"""


def test_a_sync_loop_started_again_removes_no_one_on_its_first_listing(bin_dir):
    # dave is added after the start; the loop dies after two listings (sleep's stand-in ends it, as a `die` in
    # sync_users would) and, started again, lists the directory once without him: kept, as after any start.
    syncing_stubs(bin_dir, [["alice"], ["alice", "dave"], ["alice", "dave"], ["alice"]], ["alice", "jovyan"])
    stub(bin_dir, "sleep", f'n=$(( $(cat {bin_dir.parent}/slept 2>/dev/null || echo 0) + 1 )); '
                           f'echo $n > {bin_dir.parent}/slept; [ $n -lt 2 ] || kill "$PPID"')
    script = bin_dir.parent / "restarted.sh"
    script.write_text(LOOP_RESTARTED)
    p = run(str(script), bin_dir=bin_dir, PARTS=str(PARTS))
    assert p.returncode == 0, p.stdout + p.stderr
    assert calls(bin_dir).count("getent -s ldap passwd") == 4, calls(bin_dir)
    assert "sacctmgr -i add user name=dave account=users cluster=scitest" in calls(bin_dir)
    assert not [c for c in calls(bin_dir) if "delete" in c], calls(bin_dir)


def test_one_listing_lacking_a_user_removes_no_one_and_two_consecutive_ones_do(bin_dir):
    # carol is in accounting but not in the directory; dave is listed, then missing from two listings in a row.
    syncing_stubs(bin_dir, [["dave", "erin"], ["erin"], ["erin"], ["erin"]], ["carol", "dave", "erin", "jovyan"])
    p = run_syncs(bin_dir, 4)
    assert p.returncode == 0, p.stdout + p.stderr
    deletes = {i: [c for c in cs if "delete" in c] for i, cs in by_sync(bin_dir).items()}
    assert deletes == {
        1: [],  # the first listing since the start: nothing to compare it with, it removes no one
        2: ["sacctmgr -i delete user name=carol"],  # in neither listing; dave, missing from this one only, is kept
        3: ["sacctmgr -i delete user name=dave"],  # missing from two consecutive listings
        4: []}, calls(bin_dir)
    assert by_sync(bin_dir)[4] == [], "an unchanged directory costs one listing, no slurmdbd call"


def test_a_user_missing_from_one_listing_only_keeps_their_association(bin_dir):
    syncing_stubs(bin_dir, [["dave", "erin"], ["dave", "erin"], ["erin"], ["dave", "erin"], ["dave", "erin"]],
                  ["dave", "erin", "jovyan"])
    p = run_syncs(bin_dir, 5)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not [c for c in calls(bin_dir) if "delete" in c], calls(bin_dir)
    assert "users|dave" in (bin_dir.parent / "assocs").read_text()


def test_a_directory_of_only_local_names_is_synced_once_not_taken_for_in_step(bin_dir):
    # The directory lists only an entry with an image user's name (slurm): nothing of its own to sync, but the sync
    # still runs (jovyan's association added), as "synced to an empty list" is not "never synced".
    syncing_stubs(bin_dir, [["slurm"]], [])
    p = run_syncs(bin_dir, 1)
    assert p.returncode == 0, p.stdout + p.stderr
    assert by_sync(bin_dir)[1] == ["show", "sacctmgr -i add user name=jovyan account=users cluster=scitest"]


@pytest.mark.parametrize("resync_s, attempts", [("0", 2), (None, 1)])
def test_an_unchanged_directory_is_synced_again_after_the_resync_period(bin_dir, resync_s, attempts):
    # carol's removal is refused (she has jobs): the list does not change, the sync after DIRECTORY_RESYNC_S tries
    # again. Control: within the period (default 300 s) an unchanged list is left alone.
    syncing_stubs(bin_dir, [["dave"]] * 3, ["carol", "dave", "jovyan"], busy=True)
    p = run_syncs(bin_dir, 3, **({"DIRECTORY_RESYNC_S": resync_s} if resync_s else {}))
    assert p.returncode == 0, p.stdout + p.stderr
    assert [c for c in calls(bin_dir) if "delete" in c] == ["sacctmgr -i delete user name=carol"] * attempts
    assert p.stdout.count("WARNING: could not remove carol from accounting") == attempts


def test_a_home_that_is_not_the_home_roots_name_is_not_made_and_is_named(bin_dir):
    directory_stubs(bin_dir)
    stub(bin_dir, "getent", f"""case "$*" in
  "-s ldap passwd") printf '%s\n' '{DAVE}' 'frank:*:10007:10007::/u/frank:/bin/bash' \
    'trudy:*:10008:10008::/home/dave:/bin/bash';;
  "-s files passwd") cat <<'EOF'\n{IMAGE_PASSWD}\nEOF
;;
  *) exit 2;;
esac""")
    p = run(str(PARTS / "directory.sh"), "homes", bin_dir=bin_dir)
    assert p.returncode == 0, p.stdout + p.stderr
    assert changes(bin_dir) == HOME_MADE, calls(bin_dir)  # control: dave's is made
    assert "WARNING: the home of frank is /u/frank, not /home/frank: none made" in p.stdout, p.stdout
    assert "WARNING: the home of trudy is /home/dave, not /home/trudy: none made" in p.stdout, p.stdout


# --- lost-jobs.sh ---------------------------------------------------------------------------------------------
def test_jobs_that_ran_when_the_container_stopped_end_with_their_nodes_down(bin_dir):
    stub(bin_dir, "squeue", "printf '12 c1\\n13 c[1-2]\\n'")
    stub(bin_dir, "scontrol", "")
    p = run(str(PARTS / "lost-jobs.sh"), "c1", "c2", bin_dir=bin_dir)
    assert p.returncode == 0, p.stderr
    assert calls(bin_dir)[1] == ("scontrol update NodeName=c1,c2 State=DOWN "
                                 "Reason=slurm-single-node restarted while jobs ran")
    assert "ended 2 job(s) that ran when the previous container stopped (NODE_FAIL): 12 c1 13 c[1-2]" in p.stdout


def test_control_without_running_jobs_no_node_goes_down(bin_dir):
    stub(bin_dir, "squeue", "")
    stub(bin_dir, "scontrol", "")
    p = run(str(PARTS / "lost-jobs.sh"), "c1", "c2", bin_dir=bin_dir)
    assert p.returncode == 0 and p.stdout == "", p.stdout + p.stderr
    assert [c.split()[0] for c in calls(bin_dir)] == ["squeue"]


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


def with_lib(tmp_path, body: str, start_timeout: int) -> subprocess.CompletedProcess:
    """Runs `body` as a bash script (set -euo pipefail, PROG=t) that has sourced lib.sh, with that start timeout."""
    script = tmp_path / "s"
    script.write_text(f'set -euo pipefail\nPROG=t\nsource "$SLURM_IMAGE_LIB/lib.sh"\n{body}')
    return subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=20,
                          env={**os.environ, "SLURM_IMAGE_LIB": str(LIB), "SLURM_START_TIMEOUT": str(start_timeout)})


def test_a_wait_that_times_out_names_what_it_waited_for_and_stops_the_daemons(tmp_path):
    t0 = time.monotonic()
    p = with_lib(tmp_path, 'sup_start sleeper "" "" sleep 300\nsup_wait "Godot" false\necho not reached\n', 1)
    assert p.returncode == 1 and "t: ERROR: timed out after 1s waiting for Godot" in p.stderr, p.stderr
    assert "stopped sleeper" in p.stdout and "not reached" not in p.stdout
    assert time.monotonic() - t0 < 10


def test_control_a_wait_whose_condition_comes_true_returns(tmp_path):
    p = with_lib(tmp_path, 'touch "$0.later" & sup_wait "a file" test -e "$0.later"\necho reached\n', 5)
    assert p.returncode == 0 and p.stdout == "reached\n", p.stdout + p.stderr


def test_a_daemon_that_dies_during_a_wait_ends_the_script_at_once(tmp_path):
    t0 = time.monotonic()
    p = with_lib(tmp_path, 'sup_start quitter "" "" bash -c "exit 3"\nsup_wait "Godot" false\n', 30)
    assert p.returncode == 1 and "ERROR: quitter (pid" in p.stderr and "exited with status 3" in p.stderr, p.stderr
    assert time.monotonic() - t0 < 10
