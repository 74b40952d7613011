"""The program's facts that the images' shell scripts need (mount points, paths, ports, key sizes), made into
`dockerfiles/lib/facts.sh` so the scripts read them instead of repeating them by hand.

Each fact names the constant it comes from; a fact only the images know (the single node's slurmrestd socket) is
declared here, once, and the tests import it from here. `python -m components.image_facts` writes the file
(checked in, beside the scripts' library `dockerfiles/lib/lib.sh`, which sources it; both are copied into
slurm-client and slurm-single-node, and the Jupyter images have them through slurm-client). tests/unit/
test_image_facts.py fails when the file is not what this module makes, or when a script spells a fact out.
Per-deployment facts (Slurm version, cluster name, API version, MariaDB socket) are not here: they are rendered
with the Slurm files into slurm-image.env (configs/slurm-image.env.j2).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import NamedTuple

from components import directory, keys, pods, restd, slurm_files

FACTS_FILE = Path(__file__).resolve().parents[1] / "dockerfiles" / "lib" / "facts.sh"

# The single node's slurmrestd listens here by default (SLURMRESTD_LISTEN), in a directory of its own user (0700):
# only root in the container (its health check) reaches it.
RESTD_SOCKET = "/run/slurmrestd/slurmrestd.socket"
# Accounting holds exactly the users the single node resolves with a uid in [ACCOUNTING_UIDS): jovyan (1000, the
# Jupyter images' user) and the directory's users (directory.MIN_ID up to, but not including, directory.MAX_ID).
ACCOUNTING_UIDS = (1000, directory.MAX_ID)


class Fact(NamedTuple):
    name: str  # FACT_<name> in the scripts
    value: str | int
    source: str  # where the program defines it


FACTS: tuple[Fact, ...] = (
    Fact("CONFIG_MOUNT", pods.CONFIG_MOUNT, "components.pods.CONFIG_MOUNT"),
    Fact("KEYS_MOUNT", pods.KEYS_MOUNT, "components.pods.KEYS_MOUNT"),
    Fact("MUNGE_KEY_FILE", keys.MUNGE_KEY_FILE, "components.keys.MUNGE_KEY_FILE"),
    Fact("MUNGE_KEY_BYTES", keys.MUNGE_KEY_BYTES, "components.keys.MUNGE_KEY_BYTES"),
    Fact("JWT_KEY_FILE", keys.JWT_KEY_FILE, "components.keys.JWT_KEY_FILE"),
    Fact("JWT_KEY_BYTES", keys.JWT_KEY_BYTES, "components.keys.JWT_KEY_BYTES"),
    Fact("JWT_KEY_PATH", slurm_files.JWT_KEY_PATH, "components.slurm_files.JWT_KEY_PATH"),
    Fact("STATE_DIR", slurm_files.STATE_DIR, "components.slurm_files.STATE_DIR"),
    Fact("LOG_DIR", slurm_files.LOG_DIR, "components.slurm_files.LOG_DIR"),
    Fact("RUN_DIR", slurm_files.RUN_DIR, "components.slurm_files.RUN_DIR"),
    Fact("SLURMCTLD_PORT", slurm_files.SLURMCTLD_PORT, "components.slurm_files.SLURMCTLD_PORT"),
    Fact("SLURMRESTD_PORT", slurm_files.SLURMRESTD_PORT, "components.slurm_files.SLURMRESTD_PORT"),
    Fact("RESTD_BACKEND", restd.BACKEND, "components.restd.BACKEND"),
    Fact("RESTD_SOCKET", RESTD_SOCKET, "components.image_facts.RESTD_SOCKET"),
    Fact("EXTRAUSERS_DIR", directory.EXTRAUSERS_DIR, "components.directory.EXTRAUSERS_DIR"),
    Fact("HOME_ROOT", directory.HOME_ROOT, "components.directory.HOME_ROOT"),
    Fact("ACCOUNTING_UID_MIN", ACCOUNTING_UIDS[0], "components.image_facts.ACCOUNTING_UIDS"),
    Fact("ACCOUNTING_UID_END", ACCOUNTING_UIDS[1], "components.image_facts.ACCOUNTING_UIDS (directory.MAX_ID)"),
)

HEADER = """\
# shellcheck shell=bash disable=SC2034
# The program's facts the image scripts use, sourced by lib.sh. Made from the Python side by
# `python -m components.image_facts`: do not edit (tests/unit/test_image_facts.py compares the two).
"""


def render(facts: tuple[Fact, ...] = FACTS) -> str:
    """The text of facts.sh: one FACT_<name>=<value> line per fact, with the constant it comes from."""
    width = max(len(f"FACT_{f.name}={shlex.quote(str(f.value))}") for f in facts)
    lines = [f"{f'FACT_{f.name}={shlex.quote(str(f.value))}':{width}}  # {f.source}" for f in facts]
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:]:
        sys.exit("usage: python -m components.image_facts   (rewrites dockerfiles/lib/facts.sh)")
    FACTS_FILE.write_text(render())
