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

from components import directory, keys, pods, restd, single_node, slurm_files

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


def constant(module, attr: str, name: str = "") -> Fact:
    """The fact FACT_<name or attr> of the program's constant module.attr."""
    return Fact(name or attr, getattr(module, attr), f"{module.__name__}.{attr}")


FACTS: tuple[Fact, ...] = (
    *(constant(pods, a) for a in ("CONFIG_MOUNT", "KEYS_MOUNT")),
    *(constant(keys, a) for a in ("MUNGE_KEY_FILE", "MUNGE_KEY_BYTES", "JWT_KEY_FILE", "JWT_KEY_BYTES",
                                  "SLURM_KEY_FILE", "SLURM_KEY_BYTES")),
    *(constant(slurm_files, a) for a in ("JWT_KEY_PATH", "STATE_DIR", "LOG_DIR", "RUN_DIR", "SLURMCTLD_PORT",
                                         "SLURMRESTD_PORT")),
    constant(restd, "BACKEND", "RESTD_BACKEND"),
    Fact("RESTD_SOCKET", RESTD_SOCKET, "components.image_facts.RESTD_SOCKET"),
    *(constant(directory, a) for a in ("EXTRAUSERS_DIR", "HOME_ROOT")),
    Fact("ACCOUNTING_UID_MIN", ACCOUNTING_UIDS[0], "components.image_facts.ACCOUNTING_UIDS"),
    Fact("ACCOUNTING_UID_END", ACCOUNTING_UIDS[1], "components.image_facts.ACCOUNTING_UIDS (directory.MAX_ID)"),
    constant(single_node, "EXPORTER_UID"),
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
