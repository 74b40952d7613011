"""`python -m components.config --readme`: rewrites README.md's generated sections (components/config/readme.py)."""

import sys

from components.config.readme import COMMAND, write_readme

if sys.argv[1:] != ["--readme"]:
    sys.exit(f"usage: {COMMAND}   (rewrites README.md's generated sections)")
write_readme()
