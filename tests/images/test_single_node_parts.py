"""slurm-single-node's entrypoint parts (/usr/local/lib/slurm-single-node/*.sh), each alone, as root in a container
of the image: no Slurm daemon runs. The parts that only call Slurm commands are tested with stand-ins:
tests/unit/test_image_scripts.py."""

import os
import tempfile
import uuid

import pytest

from components.image_facts import FACTS
from components.slurm_files import version_facts
from tests.images.slurm_containers import podman

pytestmark = pytest.mark.containers

PARTS = "/usr/local/lib/slurm-single-node"
FACT = {f.name: f.value for f in FACTS}


def part(image: str, *cmd: str, mounts=(), env=(), check=True, timeout=60):
    """podman run IMAGE CMD (a part, or bash -c) as root, with MOUNTS (source, target) and ENV (NAME=VALUE)."""
    args = ["run", "--rm", "--no-healthcheck", "--entrypoint", cmd[0]]
    for src, dst in mounts:
        args += ["-v", f"{src}:{dst}"]
    for e in env:
        args += ["-e", e]
    return podman(*args, image, *cmd[1:], check=check, timeout=timeout)


# --- homes.sh -------------------------------------------------------------------------------------------------
DIRECTORY = """# the directory's users
alice:x:2001:2001::/home/alice:/bin/bash
bob:x:2002:2002::/home/bob:/bin/bash
carol:x:2003:2003::/home/carol:/bin/bash
dave:x:2004:2004::/home/dave:/bin/bash
erin:x:2005:2005::/home/erin:/bin/bash
mallory:x:2006:2006::/etc/mallory:/bin/bash
frank:x:2007:2007::/home/frank:/bin/bash
grace:x:2008:2008::/home/grace:/bin/bash
"""


def test_homes_made_alone_are_the_users_and_what_users_left_is_never_followed(images, tmp_path):
    image = images["slurm-single-node"]
    home, target = tmp_path / "home", tmp_path / "target"
    home.mkdir(mode=0o777)
    os.chmod(home, 0o777)  # as a volume may come (local-path-shared)
    target.mkdir(mode=0o755)
    (home / "bob").symlink_to("/target")  # bob's home: a link to a directory root must not give away
    (home / "carol").write_text("not a directory")
    (home / "dave").mkdir()
    os.chown(home / "dave", 3000, 3000)  # someone else's
    (home / "erin").mkdir(mode=0o750)
    os.chown(home / "erin", 2005, 2005)  # already hers
    (home / "frank").mkdir(mode=0o750)  # root's and empty: what the kubelet makes for a pod's subPath mount
    (home / "grace").mkdir(mode=0o750)
    (home / "grace" / "kept").write_text("root's")  # root's but not empty: not a home to give away
    (tmp_path / "passwd").write_text(DIRECTORY)
    p = part(image, f"{PARTS}/homes.sh", mounts=[(home, "/home"), (target, "/target"),
                                                  (tmp_path / "passwd", f"{FACT['EXTRAUSERS_DIR']}/passwd:ro")])
    logs = p.stdout
    assert (home.stat().st_uid, oct(home.stat().st_mode & 0o777)) == (0, "0o755")
    alice = (home / "alice").stat()
    assert (alice.st_uid, alice.st_gid, oct(alice.st_mode & 0o777)) == (2001, 2001, "0o700")
    assert "WARNING: /home/bob is a symbolic link, left as it is" in logs, logs
    assert (target.stat().st_uid, oct(target.stat().st_mode & 0o777)) == (0, "0o755")  # not followed
    assert "WARNING: /home/carol is not a directory, left as it is" in logs, logs
    assert "WARNING: /home/dave belongs to uid 3000, not to dave (2004): left as it is" in logs, logs
    assert (home / "dave").stat().st_uid == 3000
    assert "erin" not in logs and oct((home / "erin").stat().st_mode & 0o777) == "0o750"  # hers, as she left it
    assert not os.path.exists("/etc/mallory")  # a home outside /home is not made, and said so
    assert "WARNING: the home of mallory is /etc/mallory, not /home/mallory: none made" in logs, logs
    frank = (home / "frank").stat()
    assert (frank.st_uid, frank.st_gid, oct(frank.st_mode & 0o777)) == (2007, 2007, "0o700") and "frank" not in logs
    assert "WARNING: /home/grace belongs to uid 0, not to grace (2008): left as it is" in logs, logs
    assert (home / "grace").stat().st_uid == 0
    assert len(logs.splitlines()) == 5, logs
    # Control: what a naive `install -d` as root did follows bob's link and gives the directory away.
    part(image, "install", "-d", "-m", "0700", "-o", "2002", "-g", "2002", "/home/bob",
         mounts=[(home, "/home"), (target, "/target")])
    assert target.stat().st_uid == 2002


def test_homes_without_a_directory_only_make_home_roots(images, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o777)
    p = part(images["slurm-single-node"], f"{PARTS}/homes.sh", mounts=[(home, "/home")])
    assert p.stdout == "" and os.listdir(home) == [] and oct(home.stat().st_mode & 0o777) == "0o755"


# --- state.sh -------------------------------------------------------------------------------------------------
KEYS = (f"stat -c '%n %U %a %s' /etc/munge/munge.key {FACT['JWT_KEY_PATH']} {FACT['STATE_DIR']}/slurmctld "
        f"{FACT['STATE_DIR']}/slurmd/c1 {FACT['STATE_DIR']}/slurmd/c2 {FACT['STATE_DIR']}/keys; "
        f"sha256sum {FACT['STATE_DIR']}/keys/{FACT['MUNGE_KEY_FILE']} /etc/munge/munge.key")


@pytest.fixture
def volume():
    name = f"sci-parts-{uuid.uuid4().hex[:6]}"
    yield name
    podman("volume", "rm", "-f", name, check=False)


def test_state_alone_generates_the_keys_once_and_keeps_them_on_the_volume(images, volume):
    image = images["slurm-single-node"]
    run = [(volume, FACT["STATE_DIR"])]
    first = part(image, "bash", "-c", f"{PARTS}/state.sh c1 c2 && {KEYS}", mounts=run)
    assert f"generating one into {FACT['STATE_DIR']}/keys/{FACT['MUNGE_KEY_FILE']}" in first.stdout
    stats = first.stdout.splitlines()[2:8]
    assert stats == [f"/etc/munge/munge.key munge 400 {FACT['MUNGE_KEY_BYTES']}",
                     f"{FACT['JWT_KEY_PATH']} slurm 600 {FACT['JWT_KEY_BYTES']}",
                     f"{FACT['STATE_DIR']}/slurmctld slurm 700 4096", f"{FACT['STATE_DIR']}/slurmd/c1 root 755 4096",
                     f"{FACT['STATE_DIR']}/slurmd/c2 root 755 4096", f"{FACT['STATE_DIR']}/keys root 700 4096"], first.stdout
    generated, installed = (line.split()[0] for line in first.stdout.splitlines()[8:10])
    assert generated == installed
    again = part(image, "bash", "-c", f"{PARTS}/state.sh c1 c2 && {KEYS}", mounts=run)
    assert "generating" not in again.stdout and again.stdout.splitlines()[-1].split()[0] == generated
    # Control: a mounted key is the one installed, and nothing is generated.
    with tempfile.TemporaryDirectory() as keys:
        for name, size in ((FACT["MUNGE_KEY_FILE"], 1024), (FACT["JWT_KEY_FILE"], 32)):
            with open(os.path.join(keys, name), "wb") as f:
                f.write(b"k" * size)
        mounted = part(image, "bash", "-c", f"{PARTS}/state.sh c1 && sha256sum /etc/munge/munge.key",
                       mounts=[*run, (keys, f"{FACT['KEYS_MOUNT']}:ro")])
    assert "generating" not in mounted.stdout and mounted.stdout.split()[0] != generated


# --- database.sh ----------------------------------------------------------------------------------------------
def test_database_alone_gives_slurmdbd_its_database_and_a_changed_password(images, version, volume):
    socket = version_facts(version).mariadb_socket
    login = f"mariadb --socket={socket} -u slurm -p\"$1\" -N -e 'SELECT DATABASE()' slurm_acct_db"
    script = (f"set -e; {PARTS}/database.sh slurm_acct_db slurm \"$PW\"; login() {{ {login}; }}; "
              # the server again, to log in as slurmdbd does
              f"source /usr/local/lib/slurm-image/lib.sh; source {PARTS}/database.sh; mariadb_command; "
              f"sup_start mariadb '' '' \"${{MARIADB[@]}}\"; sup_wait MariaDB sql -e 'SELECT 1'; login \"$PW\"; "
              f"login wrong 2>&1 || echo refused; sup_stop_all")
    env = [f"MARIADB_SOCKET={socket}"]
    first = part(images["slurm-single-node"], "bash", "-c", script, mounts=[(volume, FACT["STATE_DIR"])],
                 env=[*env, "PW=first-pass"])
    assert "first start: the image's new database" in first.stdout, first.stdout + first.stderr
    assert "slurm_acct_db\n" in first.stdout and "refused" in first.stdout, first.stdout + first.stderr
    again = part(images["slurm-single-node"], "bash", "-c", script, mounts=[(volume, FACT["STATE_DIR"])],
                 env=[*env, "PW=second-pass"])
    assert "first start" not in again.stdout and "slurm_acct_db\n" in again.stdout, again.stdout + again.stderr
