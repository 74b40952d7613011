"""components/image_facts.py: dockerfiles/lib/facts.sh is made from the program's constants, and the image scripts
read the facts from it instead of spelling them out."""

import re
import subprocess

import pytest

from components import image_facts, keys, pods, restd, slurm_files
from components.image_facts import FACTS, FACTS_FILE, render
from tests.project_env import ROOT

DOCKERFILES = ROOT / "dockerfiles"


def image_scripts() -> dict[str, str]:
    """The bash scripts under dockerfiles/ (entrypoints, their parts, the library) but facts.sh: path -> text."""
    out = subprocess.run(["git", "ls-files", "-z", "dockerfiles"], cwd=ROOT, capture_output=True, check=True).stdout
    scripts = {}
    for rel in filter(None, out.decode().split("\0")):
        path = ROOT / rel
        if path.is_file() and path.name != "facts.sh" and path.read_bytes().startswith(b"#!/bin/bash"):
            scripts[rel] = path.read_text()
    return scripts


def test_facts_sh_is_the_file_the_code_makes():
    assert FACTS_FILE.read_text() == render(), "dockerfiles/lib/facts.sh is stale: run python -m components.image_facts"
    # Control: a fact changed in the code makes another file.
    changed = tuple(f._replace(value=2048) if f.name == "MUNGE_KEY_BYTES" else f for f in FACTS)
    assert "FACT_MUNGE_KEY_BYTES=2048 " in render(changed) and render(changed) != FACTS_FILE.read_text()


def test_the_facts_are_the_programs_constants():
    facts = {f.name: f.value for f in FACTS}
    assert facts["CONFIG_MOUNT"] == pods.CONFIG_MOUNT and facts["KEYS_MOUNT"] == pods.KEYS_MOUNT
    assert (facts["MUNGE_KEY_BYTES"], facts["JWT_KEY_BYTES"]) == (keys.MUNGE_KEY_BYTES, keys.JWT_KEY_BYTES)
    assert facts["SLURMRESTD_PORT"] == slurm_files.SLURMRESTD_PORT and facts["RESTD_BACKEND"] == restd.BACKEND
    assert facts["STATE_DIR"] == slurm_files.STATE_DIR and facts["JWT_KEY_PATH"] == slurm_files.JWT_KEY_PATH


def test_bash_reads_each_fact_as_the_program_wrote_it():
    names = " ".join(f"FACT_{f.name}" for f in FACTS)
    out = subprocess.run(["bash", "-c", f'source "$0"; for v in {names}; do printf "%s\\n" "${{!v}}"; done',
                          str(FACTS_FILE)], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [str(f.value) for f in FACTS]


def test_every_fact_is_read_by_an_image_script():
    # or by a Dockerfile, which sources facts.sh (slurm-single-node: the exporter's uid for its useradd)
    dockerfiles = [p.read_text() for p in sorted((ROOT / "dockerfiles").glob("*/Dockerfile"))]
    text = "\n".join([*image_scripts().values(), *dockerfiles])
    assert [f.name for f in FACTS if f"FACT_{f.name}" not in text] == []


# The facts a script must not spell out: every path and port, the JWT backend's address, the munge key's size and
# the end of the accounting uids. Not the bare file names (munge's own /etc/munge/munge.key has the same), and not
# the numbers 32 and 1000, which scripts also use as plain numbers (milliseconds).
SPELLED = {f.name: re.compile(rf"(?<![\w.]){re.escape(str(f.value))}(?![\w-])") for f in FACTS
           if "/" in str(f.value) or ":" in str(f.value) or f.name.endswith("_PORT")
           or f.name in ("MUNGE_KEY_BYTES", "ACCOUNTING_UID_END")}


def spelled_out(text: str) -> list[str]:
    """Lines of a script (comments aside) that spell out a fact: 'FACT_NAME: line'."""
    found = []
    for line in text.splitlines():
        code = "" if line.lstrip().startswith("#") else re.sub(r"\s#\s.*", "", line)  # a comment is only words
        found += [f"FACT_{name}: {line.strip()}" for name, pattern in SPELLED.items() if pattern.search(code)]
    return found


def test_no_image_script_spells_out_a_fact():
    assert {"CONFIG_MOUNT", "STATE_DIR", "RUN_DIR", "SLURMCTLD_PORT", "RESTD_BACKEND", "HOME_ROOT"} <= set(SPELLED)
    assert {path: found for path, text in image_scripts().items() if (found := spelled_out(text))} == {}


@pytest.mark.parametrize("line", ['port="${port:-6817}"', 'install -d -m 0755 /run/slurm', 'stat -c %u /home',
                                  'KEYS_DIR="${SLURM_KEYS_DIR:-/etc/slurm-keys}"', 'head -c 1024 /dev/urandom'])
def test_control_a_fact_written_by_hand_is_found(line):
    assert spelled_out(f"#!/bin/bash\n{line}\n")
    assert not spelled_out(f"#!/bin/bash\n# {line}\ntrue  # {line}\n")  # in a comment it is only words


def test_paths_that_merely_begin_like_a_fact_are_not_facts():
    assert not spelled_out('install -d /run/slurmrestd /run/slurm-rest-gate /home2 "$FACT_RUN_DIR/conf"\n')


def test_restd_socket_is_declared_once_for_the_image_and_its_tests():
    assert image_facts.RESTD_SOCKET.startswith("/run/slurmrestd/")
