"""components/image_facts.py: dockerfiles/lib/facts.sh is made from the program's constants, and the image scripts
read the facts from it instead of spelling them out."""

import subprocess

from components import image_facts, keys, pods, restd, slurm_files
from components.image_facts import FACTS, FACTS_FILE, render


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


def test_restd_socket_is_declared_once_for_the_image_and_its_tests():
    assert image_facts.RESTD_SOCKET.startswith("/run/slurmrestd/")
